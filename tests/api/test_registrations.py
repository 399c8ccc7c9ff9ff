"""Members registered from their workplace (双报到): registration, its end (households unpaired, listed,
evicted from the member's tablet), and the service report as JSON, CSV and XLSX."""
from __future__ import annotations

import csv
import io
import uuid

from openpyxl import load_workbook

from tests.conftest import op


def register(world, member="m1", organisation="区教育局", kind="government", started_on="2026-11-01", by=None):
    by = by or world.coordinator
    return by.post("/api/v1/registrations", {
        "user_id": world.users[member]["id"], "area_id": world.community["id"], "home_organisation": organisation,
        "organisation_kind": kind, "started_on": started_on})


def serve(world, tablet, household_id):
    """One visit (approved by the coordinator) and one assistance log by the tablet's member."""
    visit_id = str(uuid.uuid4())
    results = tablet.push([
        op("visit", visit_id, data={"household_id": household_id, "visited_at": "2026-11-20T09:00:00+08:00",
                                    "kind": "routine", "summary": "身体不错"}),
        op("assistance_log", str(uuid.uuid4()), data={"household_id": household_id, "category": "代购",
                                                      "occurred_at": "2026-11-21T10:00:00+08:00"}),
    ])["results"]
    assert [r["status"] for r in results] == ["applied", "applied"]
    assert world.coordinator.post(f"/api/v1/visits/{visit_id}/review",
                                  {"decision": "approved"}).status_code == 200


def test_a_coordinator_registers_a_member_once_and_sees_who_registered(world):
    response = register(world)
    assert response.status_code == 201, response.get_json()
    registration = response.get_json()
    assert (registration["home_organisation"], registration["organisation_kind"], registration["started_on"],
            registration["ended_on"], registration["display_name"]) == ("区教育局", "government", "2026-11-01",
                                                                        None, "m1")
    again = register(world, organisation="区卫健委")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"

    listed = world.coordinator.get("/api/v1/registrations?active=true").get_json()
    assert [r["id"] for r in listed["items"]] == [registration["id"]] and listed["total"] == 1
    assert world.coordinator.get("/api/v1/registrations?active=false").get_json()["total"] == 0
    # another community's coordinator neither sees it nor may end it, nor register into this community
    assert world.other_coordinator.get("/api/v1/registrations").get_json()["total"] == 0
    ended = world.other_coordinator.post(f"/api/v1/registrations/{registration['id']}/end", {})
    assert ended.status_code == 404 and ended.get_json()["error"]["code"] == "not_found"
    assert register(world, member="m2", by=world.other_coordinator).status_code == 404


def test_bad_registrations_get_the_one_error_shape(world):
    cases = [
        {"user_id": world.users["m1"]["id"], "area_id": world.community["id"], "home_organisation": "",
         "started_on": "2026-11-01"},
        {"user_id": world.users["m1"]["id"], "area_id": world.community["id"], "home_organisation": "局",
         "started_on": "yesterday"},
        {"user_id": world.users["m1"]["id"], "area_id": world.community["id"], "home_organisation": "局",
         "started_on": "2026-11-01", "organisation_kind": "club"},
        {"user_id": world.users["coord"]["id"], "area_id": world.community["id"], "home_organisation": "局",
         "started_on": "2026-11-01"},
    ]
    for body in cases:
        response = world.coordinator.post("/api/v1/registrations", body)
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_failed", body
    assert world.coordinator.get("/api/v1/registrations/report?from=2026-12-02&to=2026-12-01").status_code == 422
    assert world.coordinator.get("/api/v1/registrations/report?format=pdf").status_code == 422


def test_ending_a_registration_unpairs_lists_and_evicts_the_members_households(world):
    registration = register(world).get_json()
    first = world.household("幸福路1号", member="m1")
    second = world.household("幸福路2号", member="m1")
    others = world.household("幸福路3号", member="m2")
    tablet = world.tablet("m1")
    tablet.pull_all()
    assert {first["id"], second["id"]} <= {key[1] for key in tablet.replica if key[0] == "household"}

    response = world.coordinator.post(f"/api/v1/registrations/{registration['id']}/end",
                                      {"ended_on": "2026-12-01", "reason": "调回单位"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["registration"]["ended_on"] == "2026-12-01" and body["registration"]["end_reason"] == "调回单位"
    assert sorted(h["id"] for h in body["unpaired_households"]) == sorted([first["id"], second["id"]])
    assert {h["address"] for h in body["unpaired_households"]} == {"幸福路1号", "幸福路2号"}

    unpaired = world.coordinator.get("/api/v1/households?unpaired=true").get_json()["items"]
    assert {h["id"] for h in unpaired} == {first["id"], second["id"]}
    assert world.coordinator.get(f"/api/v1/households/{others['id']}").get_json()["member_id"] == \
        world.users["m2"]["id"]
    changes = tablet.pull_all()
    evicted = {c["id"] for c in changes if c["entity"] == "household" and c["action"] == "evict"}
    assert evicted == {first["id"], second["id"]}
    assert not [key for key in tablet.replica if key[0] == "household"]

    again = world.coordinator.post(f"/api/v1/registrations/{registration['id']}/end", {})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert register(world, organisation="区卫健委", started_on="2026-12-02").status_code == 201  # a new one


def test_the_service_report_counts_within_the_period_and_the_registration(world):
    registration = register(world).get_json()
    register(world, member="m2", organisation="市第一中学", kind="school")
    household = world.household("幸福路1号", member="m1")
    serve(world, world.tablet("m1"), household["id"])

    report = world.coordinator.get("/api/v1/registrations/report?from=2026-11-01&to=2026-11-30").get_json()
    by_member = {row["member_id"]: row for row in report["rows"]}
    row = by_member[world.users["m1"]["id"]]
    assert (row["registration_id"], row["home_organisation"], row["visits"], row["approved_visits"],
            row["assistance_logs"], row["closed_requests"], row["points"]) == \
        (registration["id"], "区教育局", 1, 1, 1, 0, 2 + 1)
    assert by_member[world.users["m2"]["id"]]["points"] == 0
    assert report["totals"] == {"visits": 1, "approved_visits": 1, "assistance_logs": 1, "closed_requests": 0,
                                "points": 3}
    # a period before the service, or one organisation alone
    early = world.coordinator.get("/api/v1/registrations/report?to=2026-11-19").get_json()
    assert early["totals"]["points"] == 0
    school = world.coordinator.get("/api/v1/registrations/report?home_organisation=市第一中学").get_json()
    assert [r["home_organisation"] for r in school["rows"]] == ["市第一中学"]
    # service before the registration started does not count for it
    late = register(world, member="m1", organisation="区卫健委", started_on="2026-11-25")
    assert late.status_code == 409  # still registered; end it, then register later
    world.coordinator.post(f"/api/v1/registrations/{registration['id']}/end", {"ended_on": "2026-11-20"})
    clipped = world.coordinator.get(f"/api/v1/registrations/report?registration_id={registration['id']}").get_json()
    assert (clipped["rows"][0]["visits"], clipped["rows"][0]["assistance_logs"]) == (1, 0)  # the 21st is after


def test_the_service_report_as_csv_and_xlsx_with_chinese_headers(world):
    register(world)
    household = world.household("幸福路1号", member="m1")
    serve(world, world.tablet("m1"), household["id"])
    expected_headers = ["党员", "派出单位", "单位类别", "报到日期", "报到结束日期", "走访记录", "通过审核的走访",
                        "帮扶记录", "办结诉求", "积分"]

    response = world.coordinator.get("/api/v1/registrations/report?format=csv&from=2026-11-01&to=2026-11-30")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == expected_headers
    assert rows[1] == ["m1", "区教育局", "政府机关", "2026-11-01", "", "1", "1", "1", "0", "3"]

    response = world.coordinator.get("/api/v1/registrations/report?format=xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.get_data()), read_only=True).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == expected_headers
    assert values[1][:3] == ["m1", "区教育局", "政府机关"] and values[1][5:] == [1, 1, 1, 0, 3]


def test_members_and_tablets_may_not_register_or_read_reports(world):
    member = world.login("m1")
    assert member.get("/api/v1/registrations").status_code == 403
    assert member.get("/api/v1/registrations/report").status_code == 403
    assert world.tablet("m1").post("/api/v1/registrations", {}).status_code == 403


def test_the_console_registers_ends_and_prints_the_report(world, app):
    from tests.api.test_console import Console

    console = Console(app.test_client())
    console.login()
    page = console.get("/console/registrations")
    assert page.status_code == 200 and "双报到党员" in page.get_data(as_text=True)
    response = console.post("/console/registrations", {
        "user_id": world.users["m1"]["id"], "area_id": world.community["id"], "home_organisation": "区教育局",
        "organisation_kind": "school", "started_on": "2026-11-01"})
    assert response.status_code == 303
    (registration,) = world.coordinator.get("/api/v1/registrations").get_json()["items"]
    household = world.household("幸福路1号", member="m1")
    serve(world, world.tablet("m1"), household["id"])

    report = console.get("/console/registrations/report?from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert "服务报告" in report and "区教育局" in report and "学校" in report and "window.print()" in report
    assert "@media print" in report
    download = console.get("/console/registrations/report?format=xlsx&home_organisation=区教育局")
    sheet = load_workbook(io.BytesIO(download.get_data()), read_only=True).active
    assert [list(r) for r in sheet.iter_rows(values_only=True)][1][:3] == ["m1", "区教育局", "学校"]

    console.get("/console/registrations")
    ended = console.post(f"/console/registrations/{registration['id']}/end", {"ended_on": "2026-12-01"})
    assert ended.status_code == 200
    body = ended.get_data(as_text=True)
    assert "没有结对党员" in body and household["id"] in body and "幸福路1号" in body
    assert world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()["member_id"] is None
