"""Due visits (the sweep and its list), members' points, and coordinators' statistics."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from server.config import _days_by_tag
from server.extensions import db
from server.services.common import sync_settings
from server.services.sweeps import sweep_due_visits
from sync.models import Household, Request, Task, utcnow
from sync.requests import visit_interval_days
from sync.settings import SyncSettings
from tests.conftest import op


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def visit(tablet, household, visited_at=None, kind="routine"):
    visit_id = str(uuid.uuid4())
    result = tablet.push([op("visit", visit_id, data={"household_id": household["id"], "kind": kind,
                                                      "visited_at": iso(visited_at or utcnow())})])
    assert result["results"][0]["status"] == "applied", result
    return visit_id


def added_days_ago(household, days):
    db.session.execute(update(Household).where(Household.id == household["id"])
                       .values(created_at=utcnow() - dt.timedelta(days=days)))
    db.session.commit()


def due_tasks():
    db.session.expire_all()
    return list(db.session.scalars(select(Task).where(Task.kind == "due_visit")))


def test_sweep_opens_one_due_visit_task_per_overdue_household_and_a_visit_closes_it(world, runner):
    alone = world.household("幸福路1号", member="m1", tags=["独居老人"])  # every 7 days
    world.household("幸福路2号", member="m1")  # every 30 days
    nobody = world.household("幸福路3号", visit_interval_days=3)  # no member
    tablet = world.tablet("m1")
    later = utcnow() + dt.timedelta(days=8)

    report = sweep_due_visits(db.session, sync_settings(), later)
    db.session.commit()
    assert report == {"overdue": 2, "tasks_opened": 1, "unpaired_overdue": [nobody["id"]]}
    again = sweep_due_visits(db.session, sync_settings(), later + dt.timedelta(days=1))
    db.session.commit()
    assert again["tasks_opened"] == 0  # never a second task for the same household
    (task,) = due_tasks()
    assert (task.household_id, task.member_id, task.status) == (alone["id"], world.users["m1"]["id"], "open")
    assert "7" in task.message

    tablet.pull_all()
    assert tablet.replica[("task", task.id)]["kind"] == "due_visit"
    visit(tablet, alone)
    tablet.pull_all()
    assert tablet.replica[("task", task.id)]["status"] == "done"
    assert sweep_due_visits(db.session, sync_settings(), utcnow() + dt.timedelta(days=5))["tasks_opened"] == 0
    db.session.commit()

    result = runner.invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "0 households overdue" in result.output


def test_due_visit_task_moves_with_the_household(world):
    household = world.household(member="m1", tags=["独居老人"])
    sweep_due_visits(db.session, sync_settings(), utcnow() + dt.timedelta(days=8))
    db.session.commit()
    (task,) = due_tasks()
    old, new = world.tablet("m1"), world.tablet("m2")
    old.pull_all()
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    old.pull_all()
    new.pull_all()
    assert ("task", task.id) not in old.replica
    assert new.replica[("task", task.id)]["member_id"] == world.users["m2"]["id"]


def test_due_visits_list_shows_the_overdue_and_those_with_no_member(world):
    paired = world.household("幸福路1号", member="m1")
    unpaired = world.household("幸福路2号", tags=["残疾人"])
    world.household("幸福路3号", member="m1")  # added today: not due
    added_days_ago(paired, 40)
    added_days_ago(unpaired, 20)
    page = world.coordinator.get("/api/v1/due-visits").get_json()
    assert [d["household_id"] for d in page["items"]] == [paired["id"], unpaired["id"]]
    assert page["items"][0]["days_overdue"] == 10 and page["items"][0]["member_id"] == world.users["m1"]["id"]
    assert page["items"][1]["interval_days"] == 14 and page["items"][1]["member_id"] is None
    only = world.coordinator.get("/api/v1/due-visits?unpaired=true").get_json()
    assert [d["household_id"] for d in only["items"]] == [unpaired["id"]]
    assert world.other_coordinator.get("/api/v1/due-visits").get_json()["total"] == 0
    assert world.other_coordinator.get(f"/api/v1/due-visits?area_id={world.grid['id']}").status_code == 404


def test_visit_interval_rules():
    settings = SyncSettings(visit_interval_days={"独居老人": 7, "低保户": 14}, default_visit_interval_days=30)
    assert visit_interval_days(Household(tags=["低保户", "独居老人"]), settings) == 7
    assert visit_interval_days(Household(tags=["低保户"], visit_interval_days=3), settings) == 3
    assert visit_interval_days(Household(tags=["其他"]), settings) == 30
    assert _days_by_tag("独居老人:7, 残疾人:14") == {"独居老人": 7, "残疾人": 14}
    for bad in ("独居老人", "独居老人:0", ":7", "独居老人:seven"):
        with pytest.raises(RuntimeError):
            _days_by_tag(bad)


# --- points -----------------------------------------------------------------------------------------


def earn(world):
    household = world.household(member="m1", phone="13800000000")
    tablet = world.tablet("m1")
    approved, _ = visit(tablet, household), visit(tablet, household)
    world.coordinator.post(f"/api/v1/visits/{approved}/review", {"decision": "approved"})
    tablet.push([op("assistance_log", str(uuid.uuid4()), data={
        "household_id": household["id"], "category": "代缴水电费", "occurred_at": iso(utcnow())})])
    request = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "楼道照明",
                                                          "description": "灯坏了"}).get_json()
    world.coordinator.post(f"/api/v1/requests/{request['id']}/resolve", {"resolution": "已修好"})
    now = utcnow()
    result = tablet.push([op("request_event", str(uuid.uuid4()), recorded_at=iso(now), data={
        "request_id": request["id"], "action": "feedback_delivered", "occurred_at": iso(now)})],
        client_time=iso(now))
    assert result["results"][0]["status"] == "applied", result
    return household


def test_member_points_and_leaderboard(world, app, monkeypatch):
    earn(world)
    m1 = world.users["m1"]["id"]
    points = world.coordinator.get(f"/api/v1/members/{m1}/points").get_json()
    assert points == {"member_id": m1, "display_name": "m1", "area_id": world.grid["id"], "approved_visits": 1,
                      "assistance_logs": 1, "closed_requests": 1, "points": 2 + 1 + 3}
    board = world.coordinator.get(f"/api/v1/members/points?area_id={world.community['id']}").get_json()
    assert [(r["member_id"], r["points"]) for r in board["items"]] == [(m1, 6), (world.users["m2"]["id"], 0)]
    monkeypatch.setitem(app.config, "POINTS", {"approved_visit": 10, "assistance_log": 0, "closed_request": 5})
    assert world.coordinator.get(f"/api/v1/members/{m1}/points").get_json()["points"] == 15
    assert world.coordinator.get(f"/api/v1/members/{m1}/points?from=2100-01-01T00:00:00Z").get_json()["points"] == 0
    assert world.other_coordinator.get(f"/api/v1/members/{m1}/points").status_code == 404
    assert world.coordinator.get(f"/api/v1/members/{world.users['coord']['id']}/points").status_code == 404
    assert world.other_coordinator.get("/api/v1/members/points").get_json()["total"] == 0


# --- statistics -------------------------------------------------------------------------------------


def test_coverage_per_grid(world):
    tablet = world.tablet("m1")
    visited = world.household("幸福路1号", member="m1")
    forgotten = world.household("幸福路2号", member="m1", tags=["独居老人"])
    world.household("幸福路3号")  # no member, added today
    visit(tablet, visited)
    added_days_ago(forgotten, 10)
    answer = world.coordinator.get("/api/v1/stats/coverage").get_json()
    assert answer["area_id"] == world.community["id"]
    (grid,) = answer["grids"]
    assert grid["area_id"] == world.grid["id"] and grid["name"] == "第一网格"
    assert (grid["households"], grid["visited_within_interval"], grid["overdue"], grid["unpaired"]) == (3, 1, 1, 1)
    assert grid["coverage"] == pytest.approx(1 / 3, abs=1e-4) and answer["households"] == 3
    assert world.other_coordinator.get(f"/api/v1/stats/coverage?area_id={world.grid['id']}").status_code == 404
    assert world.other_coordinator.get("/api/v1/stats/coverage").get_json()["households"] == 0


def test_request_statistics(world):
    household = earn(world)  # one 楼道照明 request, closed
    office = lambda category: world.coordinator.post("/api/v1/requests", {  # noqa: E731
        "household_id": household["id"], "category": category, "description": "……"}).get_json()["id"]
    office("楼道照明")
    older = [office("加装电梯") for _ in range(3)]
    office("加装电梯")
    db.session.execute(update(Request).where(Request.id.in_(older))
                       .values(raised_at=utcnow() - dt.timedelta(days=40)))
    db.session.commit()
    answer = world.coordinator.get("/api/v1/stats/requests?days=30").get_json()
    assert answer["total"] == 3
    assert answer["by_category"] == {"楼道照明": 2, "加装电梯": 1}
    assert answer["by_status"] == {"closed": 1, "open": 2}
    assert answer["by_category_status"]["楼道照明"] == {"closed": 1, "open": 1}
    assert answer["median_hours_to_feedback"] is not None and answer["median_hours_to_feedback"] < 1
    assert answer["rising"] == [{"category": "楼道照明", "current": 2, "previous": 0}]  # 电梯 fell: 3 → 1
    assert world.coordinator.get("/api/v1/stats/requests?days=0").status_code == 422
    assert world.other_coordinator.get("/api/v1/stats/requests").get_json()["total"] == 0
