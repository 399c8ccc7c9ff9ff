"""The request loop: a tablet's request through the desk's assign and resolve, the feedback task in the
member's pull, feedback from the tablet, closed; late and out-of-order events; re-pairing midway."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from server.extensions import db
from sync.models import OutboxMessage, QuarantinedOp
from tests.conftest import op


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()


def push_at(tablet, ops_with_offsets):
    """Push ops recorded ``minutes`` from now by a tablet whose clock is right (``client_time`` now)."""
    now = dt.datetime.now(dt.timezone.utc)
    ops = [op(*args, recorded_at=iso(now + dt.timedelta(minutes=minutes)), **kw)
           for minutes, args, kw in ops_with_offsets]
    return tablet.push(ops, client_time=iso(now))["results"]


@pytest.fixture
def desk_clock(monkeypatch):
    """Move the desk's clock, so a coordinator's event can be placed before a tablet's."""
    from server.services import requests as service

    def set_offset(minutes: float):
        monkeypatch.setattr(service, "utcnow",
                            lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes))
    return set_offset


def raise_request(tablet, household, **data):
    request_id = str(uuid.uuid4())
    results = push_at(tablet, [(-5, ("request", request_id), {"data": {
        "household_id": household["id"], "category": "楼道照明", "description": "三楼楼道灯坏了", **data}})])
    assert results[0]["status"] == "applied", results
    return request_id


def event(request_id, action, **data):
    return ("request_event", str(uuid.uuid4())), {"data": {
        "request_id": request_id, "action": action, "occurred_at": "2026-12-01T09:00:00+08:00", **data}}


def pulled(tablet, entity):
    return {key[1]: value for key, value in tablet.replica.items() if key[0] == entity}


def test_request_from_a_tablet_through_assign_resolve_feedback_to_closed(world, desk_clock):
    household = world.household(member="m1", phone="13800000000", sms_consent=True)
    tablet = world.tablet("m1")
    tablet.pull_all()
    request_id = raise_request(tablet, household, urgency="urgent")

    desk_clock(-60)
    detail = world.coordinator.get(f"/api/v1/requests/{request_id}").get_json()
    assert detail["status"] == "open" and detail["source"] == "tablet"
    assert detail["due_at"] is not None and detail["task"] is None
    answer = world.coordinator.post(f"/api/v1/requests/{request_id}/assign", {"handler": "物业维修班"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "assigned" and answer.get_json()["handler"] == "物业维修班"
    desk_clock(-50)
    answer = world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已更换灯泡"})
    assert answer.status_code == 200, answer.get_json()
    detail = answer.get_json()
    assert detail["status"] == "resolved" and detail["feedback_due_at"] is not None
    assert [e["action"] for e in detail["events"]] == ["assign", "resolve"]
    assert detail["events"][1]["author_id"] == world.users["coord"]["id"]
    assert detail["events"][1]["origin_device_id"] is None
    assert detail["task"]["kind"] == "deliver_feedback" and detail["task"]["status"] == "open"
    assert "已更换灯泡" in detail["task"]["message"]

    # the member's next pull brings the task, the request's new status and the desk's events
    tablet.pull_all()
    tasks = pulled(tablet, "task")
    assert list(tasks) == [detail["task"]["id"]]
    assert tasks[detail["task"]["id"]]["message"] == detail["task"]["message"]
    assert pulled(tablet, "request")[request_id]["status"] == "resolved"
    assert len(pulled(tablet, "request_event")) == 2

    # the household agreed to SMS: the resolution is queued in the outbox with the task
    sms = db.session.query(OutboxMessage).all()
    assert [(m.kind, m.payload["to"], m.payload["request_id"]) for m in sms] == [("sms", "13800000000", request_id)]

    results = push_at(tablet, [(-1, *event(request_id, "feedback_delivered", channel="in_person", satisfaction=5))])
    assert results[0]["status"] == "applied", results
    detail = world.coordinator.get(f"/api/v1/requests/{request_id}").get_json()
    assert detail["status"] == "closed" and detail["satisfaction"] == 5 and detail["closed_at"] is not None
    assert detail["task"]["status"] == "done"
    tablet.pull_all()
    assert pulled(tablet, "task")[detail["task"]["id"]]["status"] == "done"
    assert pulled(tablet, "request")[request_id]["status"] == "closed"


def test_household_without_sms_consent_queues_nothing(world):
    household = world.household(member="m1", phone="13800000000")
    tablet = world.tablet("m1")
    request_id = raise_request(tablet, household)
    assert world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已办"}).status_code == 200
    assert db.session.query(OutboxMessage).count() == 0


def test_late_feedback_recorded_before_a_desk_reopen_is_kept_where_it_belongs(world, desk_clock):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    request_id = raise_request(tablet, household)
    desk_clock(-60)
    world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已协调"})
    desk_clock(-10)
    assert world.coordinator.post(f"/api/v1/requests/{request_id}/reopen", {"note": "居民再次反映"}).status_code == 200

    # the tablet delivered the feedback 30 minutes ago while offline: valid then, so it is kept
    results = push_at(tablet, [(-30, *event(request_id, "feedback_delivered", satisfaction=3))])
    assert results[0]["status"] == "applied", results
    detail = world.coordinator.get(f"/api/v1/requests/{request_id}").get_json()
    assert [e["action"] for e in detail["events"]] == ["resolve", "feedback_delivered", "reopen"]
    assert detail["status"] == "open" and detail["satisfaction"] == 3 and detail["closed_at"] is None


def test_out_of_order_events_from_two_tablets_apply_in_recorded_order(world, desk_clock):
    household = world.household(member="m1")
    first, second = world.tablet("m1"), world.tablet("m1")
    request_id = raise_request(first, household)
    desk_clock(-60)
    world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已协调"})
    # the later reopen arrives first, the earlier feedback after it
    assert push_at(second, [(-10, *event(request_id, "reopen", note="问题复发"))])[0]["status"] == "applied"
    assert push_at(first, [(-30, *event(request_id, "feedback_delivered"))])[0]["status"] == "applied"
    detail = world.coordinator.get(f"/api/v1/requests/{request_id}").get_json()
    assert [e["action"] for e in detail["events"]] == ["resolve", "feedback_delivered", "reopen"]
    assert detail["status"] == "open"
    # and a second resolve makes a fresh task, the first one being done
    desk_clock(0)
    assert world.coordinator.post(f"/api/v1/requests/{request_id}/resolve",
                                  {"resolution": "已彻底修好"}).get_json()["status"] == "resolved"
    first.pull_all()
    tasks = sorted(pulled(first, "task").values(), key=lambda t: t["status"])
    assert [t["status"] for t in tasks] == ["done", "open"] and "已彻底修好" in tasks[1]["message"]


def test_feedback_recorded_before_the_resolve_is_an_impossible_transition(world, desk_clock):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    request_id = raise_request(tablet, household)
    desk_clock(-60)
    world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已协调"})
    results = push_at(tablet, [(-90, *event(request_id, "feedback_delivered")),
                               (-1, *event(request_id, "comment", note="居民表示感谢"))])
    assert results[0]["status"] == "rejected"
    assert results[0]["error"]["code"] == "invalid_transition"
    assert results[0]["error"]["details"]["status"] == "open"
    assert results[1]["status"] == "applied"  # one bad op does not sink the others
    quarantined = db.session.query(QuarantinedOp).one()
    assert quarantined.error["code"] == "invalid_transition" and quarantined.op["data"]["request_id"] == request_id
    assert world.coordinator.get(f"/api/v1/requests/{request_id}").get_json()["status"] == "resolved"


@pytest.mark.parametrize("path, body", [
    ("assign", {"handler": "街道办"}),
    ("resolve", {"resolution": "再办一次"}),
])
def test_desk_cannot_assign_or_resolve_a_closed_request(world, path, body):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    request_id = raise_request(tablet, household)
    world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已办"})
    push_at(tablet, [(0, *event(request_id, "feedback_delivered"))])
    answer = world.coordinator.post(f"/api/v1/requests/{request_id}/{path}", body)
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "invalid_transition"
    assert world.coordinator.post(f"/api/v1/requests/{request_id}/reopen", {}).get_json()["status"] == "open"


def test_re_pairing_midway_moves_the_open_task_and_evicts_it_from_the_former_member(world):
    household = world.household(member="m1")
    old, new = world.tablet("m1"), world.tablet("m2")
    request_id = raise_request(old, household)
    task = world.coordinator.post(f"/api/v1/requests/{request_id}/resolve",
                                  {"resolution": "已联系社保所"}).get_json()["task"]
    old.pull_all()
    new.pull_all()
    assert task["id"] in pulled(old, "task") and not pulled(new, "task")

    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    evicted = {(c["entity"], c["id"]) for c in old.pull_all() if c["action"] == "evict"}
    assert {("task", task["id"]), ("household", household["id"]), ("request", request_id)} <= evicted
    assert not pulled(old, "task") and not pulled(old, "request")
    new.pull_all()
    assert pulled(new, "task")[task["id"]]["member_id"] == world.users["m2"]["id"]
    assert pulled(new, "request")[request_id]["status"] == "resolved"

    assert push_at(new, [(0, *event(request_id, "feedback_delivered", satisfaction=4))])[0]["status"] == "applied"
    new.pull_all()
    assert pulled(new, "task")[task["id"]]["status"] == "done"
    assert pulled(new, "request")[request_id]["status"] == "closed"
    # the former member's tablet can no longer touch the household's requests
    results = push_at(old, [(0, *event(request_id, "comment", note="x"))])
    assert results[0]["status"] == "rejected" and results[0]["error"]["code"] == "not_found"


def test_office_request_lists_and_overdue(world, desk_clock):
    household = world.household(member="m1")
    answer = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "养老金咨询",
                                                         "description": "电话咨询养老金发放", "urgency": "urgent"})
    assert answer.status_code == 201, answer.get_json()
    office = answer.get_json()
    assert office["source"] == "office" and office["status"] == "open" and office["overdue"] is False
    late = world.coordinator.post(f"/api/v1/requests/{office['id']}/assign",
                                  {"handler": "社保窗口", "due_at": "2026-01-01T00:00:00Z"}).get_json()
    assert late["overdue"] is True
    other = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "垃圾清运",
                                                        "description": "楼下垃圾未清"}).get_json()
    # resolved a long time ago and feedback never delivered: overdue too
    desk_clock(-60 * 24 * 10)
    world.coordinator.post(f"/api/v1/requests/{other['id']}/resolve", {"resolution": "已清运"})
    desk_clock(0)

    page = world.coordinator.get("/api/v1/requests?overdue=true").get_json()
    assert {r["id"] for r in page["items"]} == {office["id"], other["id"]} and page["total"] == 2
    assert world.coordinator.get("/api/v1/requests?overdue=false").get_json()["total"] == 0
    page = world.coordinator.get(f"/api/v1/requests?status=resolved&area_id={world.grid['id']}").get_json()
    assert [r["id"] for r in page["items"]] == [other["id"]] and page["items"][0]["area_id"] == world.building["id"]
    # another community's coordinator sees none of it, and gets not_found for the detail
    assert world.other_coordinator.get("/api/v1/requests").get_json()["total"] == 0
    assert world.other_coordinator.get(f"/api/v1/requests/{office['id']}").status_code == 404
    assert world.other_coordinator.post(f"/api/v1/requests/{office['id']}/resolve",
                                        {"resolution": "x"}).status_code == 404


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/requests", {"household_id": "not-a-uuid", "category": "x", "description": "y"}, "household_id"),
    ("/api/v1/requests", {"household_id": str(uuid.uuid4()), "category": "x", "description": "y",
                          "urgency": "soon"}, "urgency"),
    ("/api/v1/requests", {"household_id": str(uuid.uuid4()), "category": "x" * 201, "description": "y"}, "category"),
    ("/api/v1/requests", {"household_id": str(uuid.uuid4()), "category": "x", "description": "y", "status": "closed"},
     "status"),
    (f"/api/v1/requests/{uuid.uuid4()}/assign", {"handler": ""}, "handler"),
    (f"/api/v1/requests/{uuid.uuid4()}/assign", {"handler": "a", "due_at": "2026-12-01T09:00:00"}, "due_at"),
    (f"/api/v1/requests/{uuid.uuid4()}/resolve", {"resolution": "a\x00b"}, "resolution"),
])
def test_bad_input_is_validation_failed(world, path, body, field):
    answer = world.coordinator.post(path, body)
    assert answer.status_code == 422
    assert field in answer.get_json()["error"]["details"]


def test_requests_are_for_coordinators_only(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    request_id = raise_request(tablet, household)
    assert tablet.get("/api/v1/requests").status_code == 403
    assert tablet.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "x"}).status_code == 403
    assert world.login("m1").get(f"/api/v1/requests/{request_id}").status_code == 403
    assert world.coordinator.get(f"/api/v1/requests/{uuid.uuid4()}").status_code == 404
    assert world.coordinator.post("/api/v1/requests", {"household_id": str(uuid.uuid4()), "category": "x",
                                                       "description": "y"}).status_code == 404
