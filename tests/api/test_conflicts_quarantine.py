"""Conflicts resolved by a coordinator, and quarantined ops retried (as sent or corrected) or discarded."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import op


def make_conflict(world):
    household = world.household(member="m1")
    first, second = world.tablet("m1"), world.tablet("m1")
    first.push([op("household", household["id"], "update", {"head_name": "王建国"}, 1,
                   recorded_at="2026-12-01T09:00:00+08:00")])
    result = second.push([op("household", household["id"], "update", {"head_name": "王建华"}, 1,
                             recorded_at="2026-12-01T09:10:00+08:00")])["results"][0]
    assert result["status"] == "merged" and result["conflicts"][0]["field"] == "head_name"
    return household, first


def test_conflict_listed_and_resolved_as_a_new_version(world):
    household, tablet = make_conflict(world)
    page = world.coordinator.get("/api/v1/conflicts?status=open").get_json()
    assert page["total"] == 1
    conflict = page["items"][0]
    assert (conflict["entity"], conflict["record_id"], conflict["field"]) == ("household", household["id"], "head_name")
    assert (conflict["kept"], conflict["discarded"]) == ("王建华", "王建国")
    assert world.other_coordinator.get("/api/v1/conflicts").get_json()["total"] == 0

    tablet.pull_all()
    before = tablet.replica[("household", household["id"])]["version"]
    answer = world.coordinator.post(f"/api/v1/conflicts/{conflict['id']}/resolve", {"value": "王建国"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "resolved" and answer.get_json()["resolved_value"] == "王建国"
    tablet.pull_all()
    assert tablet.replica[("household", household["id"])]["head_name"] == "王建国"
    assert tablet.replica[("household", household["id"])]["version"] == before + 1
    again = world.coordinator.post(f"/api/v1/conflicts/{conflict['id']}/resolve", {"value": "王建华"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert world.coordinator.get("/api/v1/conflicts?status=resolved").get_json()["total"] == 1


@pytest.mark.parametrize("value", ["x" * 201, 42, "a\x00b", ["list"]])
def test_conflict_value_is_checked_by_the_entity_schema(world, value):
    make_conflict(world)
    conflict = world.coordinator.get("/api/v1/conflicts").get_json()["items"][0]
    answer = world.coordinator.post(f"/api/v1/conflicts/{conflict['id']}/resolve", {"value": value})
    assert answer.status_code == 422 and "value" in answer.get_json()["error"]["details"]
    assert world.coordinator.get("/api/v1/conflicts?status=open").get_json()["total"] == 1


def test_conflicts_of_another_community_are_not_found(world):
    make_conflict(world)
    conflict = world.coordinator.get("/api/v1/conflicts").get_json()["items"][0]
    assert world.other_coordinator.post(f"/api/v1/conflicts/{conflict['id']}/resolve",
                                        {"value": "x"}).status_code == 404


def bad_visit(tablet, household):
    visit_id = str(uuid.uuid4())
    result = tablet.push([op("visit", visit_id, data={"household_id": household["id"], "kind": "chat",
                                                      "visited_at": "2026-12-01T09:00:00+08:00"})])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "validation_failed"
    return visit_id


def test_quarantined_op_retried_with_corrected_data(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit_id = bad_visit(tablet, household)
    page = world.coordinator.get("/api/v1/quarantine?status=open").get_json()
    assert page["total"] == 1
    entry = page["items"][0]
    assert entry["device_id"] == tablet.device_id and entry["user_id"] == world.users["m1"]["id"]
    assert entry["op"]["data"]["kind"] == "chat" and entry["error"]["code"] == "validation_failed"
    assert world.other_coordinator.get("/api/v1/quarantine").get_json()["total"] == 0

    # as sent, it fails again and stays open
    answer = world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/retry", {})
    assert answer.status_code == 200 and answer.get_json()["result"]["status"] == "rejected"
    assert answer.get_json()["quarantine"]["status"] == "open"

    corrected = {**entry["op"]["data"], "kind": "routine"}
    answer = world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/retry", {"data": corrected})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["result"]["status"] == "applied" and body["result"]["version"] == 1
    assert body["quarantine"]["status"] == "retried" and body["quarantine"]["op"]["data"]["kind"] == "chat"
    tablet.pull_all()
    visit = tablet.replica[("visit", visit_id)]
    assert visit["kind"] == "routine" and visit["author_id"] == world.users["m1"]["id"]
    assert world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/discard", {"reason": "x"}).status_code == 409


def test_quarantined_op_retried_as_sent_after_the_cause_is_fixed(world):
    household = world.household()  # not paired yet: the member's op is not_found
    tablet = world.tablet("m1")
    resident_id = str(uuid.uuid4())
    result = tablet.push([op("resident", resident_id, data={"household_id": household["id"], "name": "李桂兰"})])
    assert result["results"][0]["error"]["code"] == "not_found"
    entry = world.coordinator.get("/api/v1/quarantine").get_json()["items"][0]
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m1"]["id"]})
    answer = world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/retry", {}).get_json()
    assert answer["result"]["status"] == "applied"
    tablet.pull_all()
    assert tablet.replica[("resident", resident_id)]["name"] == "李桂兰"


def test_quarantined_op_discarded_with_a_reason(world):
    household = world.household(member="m1")
    bad_visit(world.tablet("m1"), household)
    entry = world.coordinator.get("/api/v1/quarantine").get_json()["items"][0]
    assert world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/discard", {}).status_code == 422
    assert world.other_coordinator.post(f"/api/v1/quarantine/{entry['id']}/discard",
                                        {"reason": "x"}).status_code == 404
    answer = world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/discard", {"reason": "重复记录"})
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "discarded" and answer.get_json()["discard_reason"] == "重复记录"
    assert world.coordinator.get("/api/v1/quarantine?status=discarded").get_json()["total"] == 1
    assert world.coordinator.post(f"/api/v1/quarantine/{entry['id']}/retry", {}).status_code == 409


@pytest.mark.parametrize("path, body", [("retry", {"data": "x"}), ("retry", {"extra": 1}), ("discard", {"reason": ""})])
def test_bad_quarantine_calls_are_422(world, path, body):
    answer = world.coordinator.post(f"/api/v1/quarantine/{uuid.uuid4()}/{path}", body)
    assert answer.status_code == 422


def test_conflicts_and_quarantine_are_for_coordinators(world):
    tablet = world.tablet("m1")
    assert tablet.get("/api/v1/conflicts").status_code == 403
    assert tablet.get("/api/v1/quarantine").status_code == 403
    assert world.coordinator.get("/api/v1/quarantine?status=lost").status_code == 422
