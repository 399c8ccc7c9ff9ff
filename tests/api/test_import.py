"""Importing household ledgers (台账): xlsx with a two-row merged header, GBK CSV, bad rows, re-import."""
import csv
import io
import json
import re

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from server.extensions import db
from sync.models import Household, Resident


def _xlsx(path, rows_after_header):
    wb = Workbook()
    ws = wb.active
    ws.append(["幸福里社区 困难群众台账"])  # a title line above the header, as ledgers have
    ws.append(["台账编号", "地址", "户主", "联系电话", "人员", None, None, None, "标签/类别", "身份证号"])
    ws.append([None, None, None, None, "姓名", "性别", "出生年份", "与户主关系", None, None])
    for cells in ("A2:A3", "B2:B3", "C2:C3", "D2:D3", "E2:H2", "I2:I3", "J2:J3"):
        ws.merge_cells(cells)
    for row in rows_after_header:
        ws.append(row)
    wb.save(path)
    return path


ROWS = [
    ["HX-001", "幸福路1号101室", "王秀英", "13800000001", "王秀英", "女", 1941, "户主", "独居老人", "110101194101011234"],
    [None, None, None, None, None, None, None, None, None, None],  # a blank line
    ["HX-002", "幸福路1号102室", "李建国", "138-0000-0002", "李建国", "男", "1950年3月", "户主", "残疾人、低保户", None],
    [None, None, None, None, "张桂兰", "女", "1952", "配偶", None, None],  # a member line: household cells merged down
    ["HX-003", "幸福路1号103室", "赵强", "12345", "赵强", "男", 1980, "户主", None, None],  # a bad phone
    [None, None, None, None, "赵小明", "男", 2010, "子女", None, None],  # belongs to the rejected household
    ["HX-002", "幸福路1号102室", "李建国", "13800000002", "李小红", "女", 1978, "子女", None, None],  # listed again
    ["HX-004", "幸福路1号104室", "孙丽", "13800000004", "孙丽", "X", 1990, "户主", None, None],  # a bad gender
]


@pytest.fixture
def admin_runner(world, runner):
    return runner


def _run(runner, *args):
    result = runner.invoke(args=["import-households", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):result.output.rindex("}") + 1])


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_xlsx_ledger_imports_good_rows_and_reports_bad_ones(world, admin_runner, tmp_path):
    path = _xlsx(tmp_path / "台账.xlsx", ROWS)
    summary = _run(admin_runner, path, "--area", world.building["id"])
    assert summary["households_created"] == 2  # HX-001, HX-002 (HX-003 has a bad phone, HX-004's line a bad gender)
    assert summary["duplicate_households"] == 1
    assert summary["residents_created"] == 4  # 王秀英, 李建国, 张桂兰, 李小红
    assert count(Household) == 2 and count(Resident) == 4
    assert summary["skipped_blank_rows"] == 1
    assert summary["rejected_rows"] == 3  # 赵强 (phone), 赵小明 (its household was rejected), 孙丽 (gender)
    assert summary["ignored_columns"] == ["身份证号"]
    report = list(csv.reader(io.StringIO((tmp_path / "台账.xlsx.errors.csv").read_text(encoding="utf-8-sig"))))
    assert report[0] == ["行号", "列", "问题", "原值"]
    problems = {(int(r[0]), r[1]) for r in report[1:]}
    assert problems == {(8, "联系电话"), (9, "地址"), (11, "性别")}
    household = db.session.scalar(select(Household).where(Household.ledger_id == "HX-002"))
    assert household.phone == "13800000002" and sorted(household.tags) == ["低保户", "残疾人"]
    names = sorted(db.session.scalars(select(Resident.name).where(Resident.household_id == household.id)))
    assert names == sorted(["李建国", "张桂兰", "李小红"])
    assert db.session.scalar(select(Resident.birth_year).where(Resident.name == "李建国")) == 1950
    assert count(Resident, Resident.name == "王秀英") == 1
    # the ID number never entered the database
    assert "110101194101011234" not in json.dumps([h.notes for h in db.session.scalars(select(Household))])


def test_dry_run_counts_and_writes_nothing(world, admin_runner, tmp_path):
    path = _xlsx(tmp_path / "l.xlsx", ROWS)
    summary = _run(admin_runner, path, "--area", world.building["id"], "--dry-run")
    assert summary["dry_run"] and summary["households_created"] == 2 and summary["residents_created"] == 4
    assert count(Household) == 0 and count(Resident) == 0


def test_reimport_updates_in_place_and_tablets_receive_it(world, admin_runner, tmp_path):
    path = _xlsx(tmp_path / "l.xlsx", ROWS[:1])
    _run(admin_runner, path, "--area", world.building["id"])
    household_id = db.session.scalar(select(Household.id).where(Household.ledger_id == "HX-001"))
    world.coordinator.put(f"/api/v1/households/{household_id}/pairing", {"member_id": world.users["m1"]["id"]})
    tablet = world.tablet("m1")
    tablet.pull_all()
    again = _run(admin_runner, path, "--area", world.building["id"])
    assert again["households_unchanged"] == 1 and again["households_created"] == 0
    assert again["residents_created"] == 0
    updated = [["HX-001", "幸福路1号101室", "王秀英", "13900000009", "王秀英", "女", 1941, "户主", "独居老人、高龄", None]]
    summary = _run(admin_runner, _xlsx(tmp_path / "l2.xlsx", updated), "--area", world.building["id"])
    assert summary["households_updated"] == 1 and summary["households_created"] == 0
    assert count(Household) == 1
    changes = tablet.pull_all()
    data = tablet.replica[("household", household_id)]
    assert data["phone"] == "13900000009" and sorted(data["tags"]) == ["独居老人", "高龄"]
    assert [c["entity"] for c in changes] == ["household"]


def test_gbk_csv_with_address_key_and_a_mapping_file(world, admin_runner, tmp_path):
    text = "门牌,户主,电话,成员,性别,类别\r\n和平里3号,周淑珍,13700000001,周淑珍,女,独居老人\r\n" \
           ",,,周志强,男,\r\n\r\n和平里4号,吴德明,13700000002,吴德明,男,\r\n和平里3号,周淑珍,13700000001,周淑珍,女,独居老人\r\n"
    path = tmp_path / "ledger.csv"
    path.write_bytes(text.encode("gbk"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"门牌": "address", "成员": "name"}, ensure_ascii=False), encoding="utf-8")
    summary = _run(admin_runner, path, "--area", world.building["id"], "--mapping", mapping)
    assert summary["households_created"] == 2
    assert summary["residents_created"] == 3
    assert summary["duplicate_households"] == 1
    assert summary["skipped_blank_rows"] == 1 and summary["errors"] == 0
    assert db.session.scalar(select(Household.head_name).where(Household.address == "和平里3号")) == "周淑珍"
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text(text.replace("和平里", "光明街"), encoding="utf-8")
    assert _run(admin_runner, utf8, "--area", world.building["id"], "--mapping", mapping)["households_created"] == 2


def test_unknown_area_and_unreadable_layout_fail_cleanly(world, admin_runner, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    result = admin_runner.invoke(args=["import-households", str(path), "--area", world.building["id"]])
    assert result.exit_code != 0 and "header" in result.output
    good = _xlsx(tmp_path / "g.xlsx", ROWS[:1])
    result = admin_runner.invoke(args=["import-households", str(good), "--area", "没有这个区域"])
    assert result.exit_code != 0 and "No such area" in result.output


def test_the_console_imports_a_ledger_and_offers_the_error_report(world, app, tmp_path):
    from tests.api.test_console import Console

    console = Console(app.test_client())
    console.login()
    page = console.get("/console/import")
    assert page.status_code == 200 and "导入台账" in page.get_data(as_text=True)
    path = _xlsx(tmp_path / "web.xlsx", ROWS)
    with path.open("rb") as f:
        response = console.client.post("/console/import", data={
            "csrf_token": console.csrf, "area_id": world.building["id"], "file": (f, "台账.xlsx")},
            content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:500]
    assert "导入结果" in html, html
    assert count(Household) == 2
    link = re.search(r'href="(/console/import/reports/[^"]+\.csv)"', html).group(1)
    report = console.get(link)
    assert report.status_code == 200 and "联系电话" in report.get_data(as_text=True)
    # another session cannot fetch this report
    other = Console(app.test_client())
    other.login()
    assert other.get(link).status_code == 404
    # a dry run from the browser writes nothing
    with path.open("rb") as f:
        console.client.post("/console/import", data={"csrf_token": console.csrf, "area_id": world.building["id"],
                                                     "dry_run": "true", "file": (f, "again.xlsx")},
                            content_type="multipart/form-data")
    assert count(Household) == 2
