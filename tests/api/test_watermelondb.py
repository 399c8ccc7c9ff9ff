"""The WatermelonDB sync contract through the Flask test client: shapes, mapping, merge, idempotence, errors."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import op

SYNC = "/api/v1/watermelondb/sync"
TABLES = {"households", "residents", "visits", "assistance_logs", "requests", "request_events", "tasks", "reviews"}
EDIT_MS = 1_796_000_000_000  # an edit time in epoch ms, as WatermelonDB's updated_at holds it


def pull(tablet, last=None, expect=200, **params):
    query = "&".join([f"last_pulled_at={'null' if last is None else last}", "schema_version=1",
                      *(f"{k}={v}" for k, v in params.items())])
    response = tablet.get(f"{SYNC}?{query}")
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def push(tablet, changes, last, expect=200, **params):
    query = "&".join([f"last_pulled_at={last}", *(f"{k}={v}" for k, v in params.items())])
    # the documented pushChanges sends the bare changes object, which fetch labels text/plain
    response = tablet.post(f"{SYNC}?{query}", data=json.dumps(changes), headers={"Content-Type": "text/plain"})
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def rows(answer, table, kind="updated"):
    return {r["id"]: r for r in answer["changes"][table][kind]}


def test_first_pull_answers_every_table_with_raw_records(world):
    household = world.household(member="m1", tags=["独居老人"])
    tablet = world.tablet("m1")
    answer = pull(tablet)
    assert set(answer["changes"]) == TABLES
    assert all(set(lists) == {"created", "updated", "deleted"} for lists in answer["changes"].values())
    assert isinstance(answer["timestamp"], int) and answer["timestamp"] > 0
    record = rows(answer, "households", "created")[household["id"]]
    assert "_status" not in record and "_changed" not in record
    assert record["address"] == "幸福路1号" and record["member_id"] == world.users["m1"]["id"]
    assert json.loads(record["tags"]) == ["独居老人"]  # sets and objects travel as JSON text
    assert isinstance(record["created_at"], int) and isinstance(record["updated_at"], int)
    assert record["version"] == 1
    # nothing new: the same position, nothing to send
    again = pull(tablet, answer["timestamp"])
    assert again["timestamp"] == answer["timestamp"]
    assert all(not any(lists.values()) for lists in again["changes"].values())


def test_send_created_as_updated_puts_every_record_in_updated(world):
    household = world.household(member="m1")
    answer = pull(world.tablet("m1"), send_created_as_updated="true")
    assert household["id"] in rows(answer, "households") and answer["changes"]["households"]["created"] == []


def test_push_applies_only_the_changed_columns_and_merges(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    first = pull(tablet)
    # someone else edits the phone after the tablet's pull
    response = world.coordinator.patch(f"/api/v1/households/{household['id']}",
                                       {"base_version": 1, "phone": "13900000000"})
    assert response.status_code == 200, response.get_json()
    raw = dict(rows(first, "households", "created")[household["id"]])
    raw.update({"head_name": "王建国", "_status": "updated", "_changed": "head_name,updated_at",
                "updated_at": EDIT_MS + 10**9})  # its phone column still holds the old null
    answer = push(tablet, {"households": {"created": [], "updated": [raw], "deleted": []}}, first["timestamp"])
    result = answer["results"]["households"][household["id"]]
    assert result["status"] == "merged" and result["conflicts"] == []
    assert answer["experimentalRejectedIds"] == {}
    server = world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()
    assert (server["head_name"], server["phone"]) == ("王建国", "13900000000")


def test_same_column_changed_on_both_sides_keeps_the_later_edit(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    first = pull(tablet)
    world.coordinator.patch(f"/api/v1/households/{household['id']}", {"base_version": 1, "address": "线上改的"})
    # the tablet's next pull brings the online edit, but the tablet keeps its local (older) address
    second = pull(tablet, first["timestamp"])
    raw = dict(rows(second, "households")[household["id"]])
    raw.update({"address": "平板改的", "_status": "updated", "_changed": "address", "updated_at": 1_000_000_000_000})
    answer = push(tablet, {"households": {"updated": [raw]}}, second["timestamp"])
    result = answer["results"]["households"][household["id"]]
    assert result["conflicts"] == [{"field": "address", "kept": "线上改的", "discarded": "平板改的"}]
    conflicts = world.coordinator.get("/api/v1/conflicts?status=open").get_json()["items"]
    assert [(c["record_id"], c["field"]) for c in conflicts] == [(household["id"], "address")]
    # the tablet lost: its next pull sends the kept value back, although the record did not change
    third = pull(tablet, second["timestamp"])
    assert rows(third, "households")[household["id"]]["address"] == "线上改的"


def test_a_resent_push_applies_nothing_twice(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    first = pull(tablet)
    resident = {"id": str(uuid.uuid4()), "household_id": household["id"], "name": "李四", "gender": "M",
                "birth_year": 1950, "phone": "", "tags": '["低保"]', "status": "active", "version": None,
                "created_at": EDIT_MS, "updated_at": EDIT_MS, "_status": "created", "_changed": ""}
    changes = {"residents": {"created": [resident], "updated": [], "deleted": []}}
    once = push(tablet, changes, first["timestamp"])
    assert once["results"]["residents"][resident["id"]]["status"] == "applied"
    twice = push(tablet, changes, first["timestamp"])  # the answer was lost; the app sends it again
    assert twice == once  # the same batch: its first answer, nothing applied again
    edit = {"id": household["id"], "head_name": "王建国", "_status": "updated", "_changed": "head_name"}
    alone = push(tablet, {"residents": {"created": [resident]}, "households": {"updated": [edit]}},
                 first["timestamp"])
    assert alone["results"]["residents"][resident["id"]]["status"] == "duplicate"  # the same op in another batch
    # after the next pull (WatermelonDB pulls before it pushes) it is still the same op
    second = pull(tablet, first["timestamp"])
    got = rows(second, "residents")[resident["id"]]
    assert got["phone"] is None and json.loads(got["tags"]) == ["低保"] and got["version"] == 1
    thrice = push(tablet, changes, second["timestamp"])
    assert thrice["results"]["residents"][resident["id"]]["status"] == "duplicate"
    assert thrice["results"]["residents"][resident["id"]]["version"] == 1
    # the same record created again with other content (edited meanwhile) updates the tablet's own record
    resident.update({"name": "李四（改）", "updated_at": EDIT_MS + 1})
    fourth = push(tablet, changes, second["timestamp"])
    result = fourth["results"]["residents"][resident["id"]]
    assert (result["version"], result["conflicts"]) == (2, [])  # its own create never conflicts with it
    assert rows(pull(tablet, second["timestamp"]), "residents")[resident["id"]]["name"] == "李四（改）"


def test_updated_rows_of_unknown_records_are_created_and_deletions_are_ids(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    first = pull(tablet)
    visit = {"id": str(uuid.uuid4()), "household_id": household["id"], "visited_at": EDIT_MS, "kind": "routine",
             "summary": "一切正常", "observations": '{"mood": "good"}', "location": '{"lat": 31.2, "lng": 121.4}',
             "updated_at": EDIT_MS, "_status": "updated", "_changed": "summary"}
    answer = push(tablet, {"visits": {"updated": [visit], "deleted": [str(uuid.uuid4())]}}, first["timestamp"])
    assert answer["results"]["visits"][visit["id"]]["status"] == "applied"
    assert len(answer["results"]["visits"]) == 1  # deleting a record the server never had is ignored
    second = pull(tablet, first["timestamp"])
    got = rows(second, "visits")[visit["id"]]
    assert got["visited_at"] == EDIT_MS and json.loads(got["observations"]) == {"mood": "good"}
    push(tablet, {"visits": {"deleted": [visit["id"]]}}, second["timestamp"])
    third = pull(tablet, second["timestamp"])
    assert third["changes"]["visits"]["deleted"] == [visit["id"]]


def test_evictions_come_as_deleted(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.push([op("resident", str(uuid.uuid4()), data={"household_id": household["id"], "name": "张三"})])
    first = pull(tablet)
    resident_id = next(iter(rows(first, "residents", "created")))
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    second = pull(tablet, first["timestamp"])
    assert second["changes"]["households"]["deleted"] == [household["id"]]
    assert second["changes"]["residents"]["deleted"] == [resident_id]
    assert second["timestamp"] > first["timestamp"]


def test_refused_creates_are_reported_and_quarantined_once(world):
    tablet = world.tablet("m1")
    first = pull(tablet)
    bad = {"id": str(uuid.uuid4()), "household_id": str(uuid.uuid4()), "name": "无此户", "updated_at": EDIT_MS,
           "_status": "created", "_changed": ""}
    changes = {"residents": {"created": [bad]}}
    for _ in range(2):  # the app keeps it unsynced and pushes it again: one quarantine entry, not two
        answer = push(tablet, changes, first["timestamp"])
        assert answer["experimentalRejectedIds"] == {"residents": [bad["id"]]}
        assert answer["results"]["residents"][bad["id"]]["error"]["code"] == "not_found"
    quarantine = world.coordinator.get("/api/v1/quarantine?status=open").get_json()
    assert quarantine["total"] == 1


def test_pushing_a_pulled_only_table_is_refused_and_restored(world):
    household = world.household(member="m1")
    request_id = str(uuid.uuid4())
    tablet = world.tablet("m1")
    tablet.push([op("request", request_id, data={"household_id": household["id"], "category": "照明",
                                                 "description": "灯坏了"})])
    world.coordinator.post(f"/api/v1/requests/{request_id}/resolve", {"resolution": "已修好"})
    first = pull(tablet)
    task = dict(next(iter(rows(first, "tasks", "created").values())))
    task.update({"status": "done", "_status": "updated", "_changed": "status"})
    answer = push(tablet, {"tasks": {"updated": [task]}}, first["timestamp"])
    assert answer["results"]["tasks"][task["id"]]["error"]["code"] == "forbidden"
    assert answer["experimentalRejectedIds"] == {}
    assert rows(pull(tablet, first["timestamp"]), "tasks")[task["id"]]["status"] == "open"


def test_migration_pull_sends_the_named_tables_whole(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.push([op("resident", str(uuid.uuid4()), data={"household_id": household["id"], "name": "张三"})])
    first = pull(tablet)
    migration = json.dumps({"from": 1, "tables": ["local_drafts"],
                            "columns": [{"table": "households", "columns": ["notes"]}]})
    answer = pull(tablet, first["timestamp"], migration=migration)
    assert set(rows(answer, "households")) == {household["id"]}
    assert answer["changes"]["residents"] == {"created": [], "updated": [], "deleted": []}
    assert answer["timestamp"] >= first["timestamp"]


@pytest.mark.parametrize("query, status, code", [
    ("last_pulled_at=987654321", 400, "invalid_cursor"),
    ("last_pulled_at=yesterday", 422, "validation_failed"),
    ("last_pulled_at=null&migration=%7Bnot-json", 422, "validation_failed"),
    ("last_pulled_at=null&migration=%7B%22tables%22%3A%5B%5D%7D", 422, "validation_failed"),
    ("last_pulled_at=null&lastPulledAt=1", 422, "validation_failed"),
])
def test_bad_pull_arguments(world, query, status, code):
    response = world.tablet("m1").get(f"{SYNC}?{query}")
    assert response.status_code == status and response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("body, status", [
    ("{not json", 400),
    (json.dumps({"local_settings": {"created": [], "updated": [], "deleted": []}}), 422),
    (json.dumps({"residents": {"created": [{"name": "no id"}]}}), 422),
    (json.dumps({"residents": {"created": "nope"}}), 422),
])
def test_bad_push_bodies(world, body, status):
    tablet = world.tablet("m1")
    timestamp = pull(tablet)["timestamp"]
    response = tablet.post(f"{SYNC}?last_pulled_at={timestamp}", data=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == status, response.get_json()
    assert "error" in response.get_json()


def test_timestamps_belong_to_their_tablet_and_a_resync_expires_them(world):
    world.household(member="m1")
    tablet, other = world.tablet("m1"), world.tablet("m1")
    timestamp = pull(tablet)["timestamp"]
    assert pull(other, timestamp, expect=400)["error"]["code"] == "invalid_cursor"
    response = world.coordinator.post(f"/api/v1/devices/{tablet.device_id}/resync")
    assert response.status_code == 200, response.get_json()
    assert pull(tablet, timestamp, expect=410)["error"]["code"] == "cursor_expired"


def test_only_device_tokens(world):
    assert world.coordinator.get(f"{SYNC}?last_pulled_at=null").status_code == 403
    assert world.client.get(f"{SYNC}?last_pulled_at=null").status_code == 401
