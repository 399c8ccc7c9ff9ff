"""The coordinators' console over the Flask test client: login, CSRF, scope, pages and exports."""
from __future__ import annotations

import csv
import io
import json
import re
import uuid

import pytest
from openpyxl import load_workbook

from tests.conftest import op

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    """A browser-like session: keeps the cookie and the CSRF token of the last page."""

    def __init__(self, client):
        self.client = client
        self.csrf = None

    def get(self, path, **kw):
        response = self.client.get(path, **kw)
        found = CSRF.search(response.get_data(as_text=True)) if response.mimetype == "text/html" else None
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path, data=None, csrf=True):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=data)

    def login(self, username="coord", password="password-123"):
        self.get("/console/login")
        response = self.post("/console/login", {"username": username, "password": password})
        self.get("/console/dashboard")
        return response


@pytest.fixture
def console(app):
    return Console(app.test_client())


def text(response) -> str:
    return response.get_data(as_text=True)


def test_pages_need_a_login(console):
    response = console.get("/console/households")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login")


def test_login_in_chinese_with_a_hardened_cookie(world, console):
    page = console.get("/console/login")
    assert "登录" in text(page) and 'lang="zh-CN"' in text(page)
    response = console.login()
    assert response.status_code == 303 and response.headers["Location"] == "/console/dashboard"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    dashboard = console.get("/console/dashboard")
    assert dashboard.status_code == 200 and "概览" in text(dashboard)
    assert dashboard.headers["X-Frame-Options"] == "DENY"
    assert dashboard.headers["Cache-Control"] == "no-store"


def test_wrong_password_and_members_are_refused(world, console):
    console.get("/console/login")
    wrong = console.post("/console/login", {"username": "coord", "password": "not-the-password"})
    assert wrong.status_code == 401 and "用户名或密码错误" in text(wrong)
    member = console.post("/console/login", {"username": "m1", "password": "password-123"})
    assert member.status_code == 401 and "仅供协调员" in text(member)
    assert console.get("/console/dashboard").status_code == 302


def test_a_post_without_the_csrf_token_is_rejected(world, console):
    console.get("/console/login")
    assert console.post("/console/login", {"username": "coord", "password": "password-123"},
                        csrf=False).status_code == 403
    console.login()
    household = world.household()
    for token in (None, "forged"):
        data = {"member_id": world.users["m1"]["id"]}
        if token:
            data["csrf_token"] = token
        response = console.post(f"/console/households/{household['id']}/pairing", data, csrf=False)
        assert response.status_code == 403
    assert world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()["member_id"] is None


def test_login_returns_to_the_page_asked_for(world, console):
    redirected = console.get("/console/households?q=x")
    target = redirected.headers["Location"]
    console.get(target)
    response = console.post("/console/login", {"username": "coord", "password": "password-123",
                                               "next": "/console/households?q=x"})
    assert response.status_code == 303 and response.headers["Location"] == "/console/households?q=x"
    console.get("/console/login")
    outside = console.post("/console/login", {"username": "coord", "password": "password-123",
                                              "next": "https://elsewhere.example/"})
    assert outside.headers["Location"] == "/console/dashboard"


def test_logout_ends_the_session_and_its_token(world, console):
    console.login()
    response = console.post("/console/logout")
    assert response.status_code == 303
    assert console.get("/console/dashboard").status_code == 302


def test_another_communitys_coordinator_sees_404(world, console):
    household = world.household()
    console.login("coord2")
    response = console.get(f"/console/households/{household['id']}")
    assert response.status_code == 404
    assert household["address"] not in text(response)
    assert household["address"] not in text(console.get("/console/households"))
    pair = console.post(f"/console/households/{household['id']}/pairing", {"member_id": ""})
    assert pair.status_code == 404


def test_household_search_page_timeline_and_pairing(world, console):
    household = world.household(address="和平路8号", member="m1", tags=["独居老人"])
    tablet = world.tablet("m1")
    tablet.push([op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                      "visited_at": "2026-12-01T09:00:00+08:00",
                                                      "summary": "老人精神很好"})])
    tablet.pull_all()
    console.login()
    found = console.get("/console/households?q=和平")
    assert "和平路8号" in text(found) and "共 1 户" in text(found)
    page = console.get(f"/console/households/{household['id']}")
    assert page.status_code == 200
    assert "老人精神很好" in text(page) and "独居老人" in text(page) and "2026-12-01 09:00" in text(page)
    moved = console.post(f"/console/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    assert moved.status_code == 303
    assert world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()["member_id"] == \
        world.users["m2"]["id"]
    evicted = [c for c in tablet.pull_all() if c["id"] == household["id"]]
    assert evicted and evicted[-1]["action"] == "evict"


def test_bad_form_input_comes_back_as_a_message_not_a_500(world, console):
    console.login()
    response = console.post("/console/members", {"username": "has space", "display_name": "x",
                                                 "area_id": world.grid["id"], "back": "/console/members"})
    assert response.status_code == 303 and response.headers["Location"] == "/console/members"
    assert "部分输入无效" in text(console.get("/console/members"))
    assert console.get("/console/households?page=abc").status_code == 422
    assert console.get("/console/exports/download?kind=visits&format=pdf").status_code == 422


def test_add_a_member_issue_a_code_with_a_qr_and_revoke_a_tablet(world, console):
    console.login()
    added = console.post("/console/members", {"username": "m3", "display_name": "李明华", "role": "member",
                                              "area_id": world.grid["id"], "password": "password-123"})
    assert added.status_code == 303
    users = world.coordinator.get("/api/v1/users?role=member").get_json()["items"]
    m3 = next(u for u in users if u["username"] == "m3")
    page = console.post(f"/console/members/{m3['id']}/enrollment-code")
    assert page.status_code == 200 and "<svg" in text(page)
    code = re.search(r'id="enrollment-code">([A-Z0-9-]+)<', text(page)).group(1)
    enrolled = console.client.post("/api/v1/devices/enroll", json={"code": code, "name": "李明华的平板"})
    assert enrolled.status_code == 201
    device = enrolled.get_json()
    listing = text(console.get("/console/members"))
    assert "李明华的平板" in listing
    assert console.post(f"/console/devices/{device['device_id']}/revoke").status_code == 303
    pulled = console.client.get("/api/v1/sync/pull", headers={"Authorization": f"Bearer {device['token']}"})
    assert pulled.status_code == 401 and pulled.get_json()["error"]["details"]["wipe"] is True


def test_requests_board_assign_and_resolve_reach_the_tablet(world, console):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    request_id = str(uuid.uuid4())
    tablet.push([op("request", request_id, data={"household_id": household["id"], "category": "楼道照明",
                                                 "description": "三楼灯坏了", "urgency": "normal"})])
    tablet.pull_all()
    console.login()
    board = console.get("/console/requests")
    assert "楼道照明" in text(board)
    assert console.post(f"/console/requests/{request_id}/assign",
                        {"handler": "物业王师傅", "due_date": "2026-12-20"}).status_code == 303
    assert console.post(f"/console/requests/{request_id}/resolve", {"resolution": "灯已更换"}).status_code == 303
    detail = text(console.get(f"/console/requests/{request_id}"))
    assert "已办结" in detail and "物业王师傅" in detail and "灯已更换" in detail
    tasks = [c for c in tablet.pull_all() if c["entity"] == "task"]
    assert tasks and "灯已更换" in tasks[-1]["data"]["message"]
    again = console.post(f"/console/requests/{request_id}/resolve", {"resolution": "再次办结"})
    assert again.status_code == 303  # not allowed from resolved: shown as a message, nothing changes
    assert "不能进行此操作" in text(console.get(f"/console/requests/{request_id}"))


def _seed_records(world):
    household = world.household(address="幸福路3号", member="m1")
    world.household(address="和平里9号", area=world.other_building, by=world.other_coordinator)
    tablet = world.tablet("m1")
    tablet.push([
        op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                             "visited_at": "2026-12-01T09:00:00+08:00", "summary": "=1+1 送米面油"}),
        op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "follow_up",
                                             "visited_at": "2026-11-01T09:00:00+08:00", "summary": "上月回访"}),
        op("assistance_log", str(uuid.uuid4()), data={"household_id": household["id"], "category": "代购药品",
                                                      "occurred_at": "2026-12-02T10:00:00+08:00"}),
        op("request", str(uuid.uuid4()), data={"household_id": household["id"], "category": "加装电梯",
                                               "description": "希望加装电梯"}),
    ])
    return household


def test_csv_export_reads_back_with_chinese_headers(world, console):
    _seed_records(world)
    console.login()
    response = console.get("/console/exports/download?kind=visits&format=csv&date_from=2026-12-01&date_to=2026-12-01")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    body = response.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:4] == ["走访时间", "区域", "地址", "户主"]
    assert len(rows) == 2  # the November visit is outside the range
    assert rows[1][0] == "2026-12-01 09:00" and rows[1][2] == "幸福路3号"
    assert rows[1][rows[0].index("摘要")] == "'=1+1 送米面油"  # no formula runs in a spreadsheet


def test_xlsx_export_reads_back_and_stays_in_scope(world, console):
    _seed_records(world)
    console.login()
    for kind, header, expected in (("assistance_logs", "类别", "代购药品"), ("requests", "类别", "加装电梯")):
        response = console.get(f"/console/exports/download?kind={kind}&format=xlsx&area_id={world.grid['id']}")
        assert response.status_code == 200
        sheet = load_workbook(io.BytesIO(response.get_data()), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
        assert header in rows[0] and "地址" in rows[0]
        assert [row[rows[0].index(header)] for row in rows[1:]] == [expected]
    console.login("coord2")
    response = console.get("/console/exports/download?kind=visits&format=csv")
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[1:] == []
    assert console.get(f"/console/exports/download?kind=visits&area_id={world.grid['id']}").status_code == 404


def test_every_page_renders(world, console):
    household = _seed_records(world)
    console.login()
    for path in ("/console/dashboard", "/console/households", f"/console/households/{household['id']}",
                 "/console/members", "/console/exports", "/console/requests"):
        response = console.get(path)
        assert response.status_code == 200, path
        assert "联户工作台" in text(response)


def test_review_a_visit_and_the_author_pulls_it(world, console):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit_id = str(uuid.uuid4())
    tablet.push([op("visit", visit_id, data={"household_id": household["id"], "kind": "routine",
                                             "visited_at": "2026-12-01T09:00:00+08:00", "summary": "送慰问品"})])
    tablet.pull_all()
    console.login()
    listing = text(console.get(f"/console/visits?review=pending&member_id={world.users['m1']['id']}"
                               "&date_from=2026-12-01&date_to=2026-12-01"))
    assert visit_id in listing and "待审核" in listing
    assert visit_id not in text(console.get("/console/visits?date_from=2026-12-02"))
    assert console.post(f"/console/visits/{visit_id}/review", {"decision": "flagged", "comment": "请补充照片"}) \
        .status_code == 303
    assert "已标记" in text(console.get(f"/console/visits/{visit_id}"))
    reviews = [c for c in tablet.pull_all() if c["entity"] == "review"]
    assert reviews and reviews[-1]["data"]["comment"] == "请补充照片"


def test_choose_a_side_of_a_conflict(world, console):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.pull_all()
    version = tablet.replica[("household", household["id"])]["version"]
    edited = world.coordinator.patch(f"/api/v1/households/{household['id']}",
                                     {"base_version": version, "head_name": "李桂兰"})
    assert edited.status_code == 200
    result = tablet.push([op("household", household["id"], "update", {"head_name": "王桂兰"}, version,
                             recorded_at="2026-12-01T08:00:00+08:00")])
    assert result["results"][0]["status"] == "merged"
    console.login()
    page = text(console.get("/console/conflicts"))
    assert "李桂兰" in page and "王桂兰" in page
    conflict_id = re.search(r'data-conflict="([^"]+)"', page).group(1)
    assert console.post(f"/console/conflicts/{conflict_id}/resolve", {"choice": "discarded"}).status_code == 303
    assert world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()["head_name"] == "王桂兰"
    assert 'data-conflict' not in text(console.get("/console/conflicts"))


def test_quarantine_retry_corrected_and_discard(world, console):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    bad = [op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "chat",
                                                "visited_at": "2026-12-01T09:00:00+08:00"}),
           op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "party",
                                                "visited_at": "2026-12-01T10:00:00+08:00"})]
    assert [r["status"] for r in tablet.push(bad)["results"]] == ["rejected", "rejected"]
    console.login()
    page = text(console.get("/console/quarantine"))
    assert "validation_failed" in page
    entries = re.findall(r'data-quarantine="([^"]+)"', page)
    assert len(entries) == 2
    assert console.post(f"/console/quarantine/{entries[0]}/retry", {"data": "{not json"}).status_code == 303
    assert "不是有效的 JSON" in text(console.get("/console/quarantine"))
    retried = console.post(f"/console/quarantine/{entries[0]}/retry", {"data": json.dumps({
        "household_id": household["id"], "kind": "routine", "visited_at": "2026-12-01T10:00:00+08:00"})})
    assert retried.status_code == 303
    assert console.post(f"/console/quarantine/{entries[1]}/discard", {"reason": "重复记录"}).status_code == 303
    assert re.findall(r'data-quarantine="([^"]+)"', text(console.get("/console/quarantine"))) == []
    visits = [c for c in tablet.pull_all() if c["entity"] == "visit"]
    assert [v["data"]["kind"] for v in visits] == ["routine"]


def test_dashboard_shows_coverage_due_visits_requests_and_points(world, console):
    household = world.household(address="光明街2号", member="m1")
    world.household(address="光明街4号")
    tablet = world.tablet("m1")
    tablet.push([op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                      "visited_at": "2026-12-01T09:00:00+08:00"}),
                 op("request", str(uuid.uuid4()), data={"household_id": household["id"], "category": "加装电梯",
                                                        "description": "希望加装电梯"})])
    console.login()
    page = text(console.get("/console/dashboard"))
    for heading in ("走访覆盖率", "逾期未走访住户", "诉求状态分布", "待向居民反馈", "积分排行"):
        assert heading in page, heading
    assert "2 户中有 1 户按期走访" in page
    assert "<svg" in page and "m1" in page


def test_every_catalog_message_is_translated_and_compiled(app):
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    from server.console.i18n import TRANSLATIONS_DIR

    folder = TRANSLATIONS_DIR / "zh_Hans_CN" / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with open(folder / "messages.mo", "rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert po and all(po.values()), [k for k, v in po.items() if not v]
    assert po == mo, "messages.mo is stale: run pybabel compile -d server/console/translations"
