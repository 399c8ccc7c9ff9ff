"""GET /sync/pull: scope, pagination, tombstones, eviction and arrival on re-pairing, cursor errors."""
import uuid

import pytest

from tests.conftest import op


def uid():
    return str(uuid.uuid4())


def visit(household_id):
    return {"household_id": household_id, "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"}


def test_first_pull_is_the_whole_scope_and_nothing_else(world):
    mine = [world.household(address=f"幸福路{i}号", member="m1") for i in range(3)]
    theirs = world.household(address="和平路1号", member="m2")
    unpaired = world.household(address="无人认领")
    tablet = world.tablet("m1")
    tablet.pull_all()
    held = {key[1] for key in tablet.replica if key[0] == "household"}
    assert held == {h["id"] for h in mine}
    assert theirs["id"] not in held and unpaired["id"] not in held
    data = tablet.replica[("household", mine[0]["id"])]
    assert data["address"] == "幸福路0号" and data["version"] == mine[0]["version"]


def test_pages_respect_limit_and_the_cursor_continues_without_gaps(world):
    household = world.household(member="m1")
    writer = world.tablet("m1")
    ids = [uid() for _ in range(23)]
    writer.push([op("resident", i, data={"household_id": household["id"], "name": f"居民{n}"})
                 for n, i in enumerate(ids)])
    reader = world.tablet("m1")
    pages = []
    while True:
        url = "/api/v1/sync/pull?limit=5" + (f"&cursor={reader.cursor}" if reader.cursor else "")
        page = reader.get(url).get_json()
        assert len(page["changes"]) <= 5
        pages.append(page)
        reader.cursor = page["cursor"]
        if not page["has_more"]:
            break
    got = [c["id"] for p in pages for c in p["changes"] if c["entity"] == "resident"]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert len(pages) >= 5
    # more changes after the last page arrive on the next pull
    new = uid()
    writer.push([op("resident", new, data={"household_id": household["id"], "name": "新生儿"})])
    assert [c["id"] for c in reader.pull_all()] == [new]
    assert reader.pull_all() == []


def test_incremental_pull_brings_updates_and_tombstones(world):
    household = world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    rid = uid()
    a.push([op("resident", rid, data={"household_id": household["id"], "name": "张三"})])
    b.pull_all()
    assert ("resident", rid) in b.replica
    a.push([op("resident", rid, "update", {"phone": "13800000000"}, base_version=1)])
    changes = b.pull_all()
    assert [(c["entity"], c["action"], c["version"]) for c in changes] == [("resident", "upsert", 2)]
    assert b.replica[("resident", rid)]["phone"] == "13800000000"
    a.push([op("resident", rid, "delete", base_version=2)])
    changes = b.pull_all()
    assert [(c["action"], c["version"], c["data"]) for c in changes] == [("delete", 3, None)]
    assert ("resident", rid) not in b.replica


def test_repairing_evicts_from_the_old_member_and_brings_everything_to_the_new(world):
    household = world.household(member="m1")
    m1 = world.tablet("m1")
    rid, vid = uid(), uid()
    m1.push([op("resident", rid, data={"household_id": household["id"], "name": "老人"}),
             op("visit", vid, data=visit(household["id"]))])
    m1.pull_all()
    m2 = world.tablet("m2")
    m2.pull_all()
    assert m2.replica == {}
    response = world.coordinator.put(f"/api/v1/households/{household['id']}/pairing",
                                     {"member_id": world.users["m2"]["id"]})
    assert response.status_code == 200
    evicted = m1.pull_all()
    assert {(c["entity"], c["id"], c["action"]) for c in evicted} >= {
        ("household", household["id"], "evict"), ("resident", rid, "evict"), ("visit", vid, "evict")}
    assert all(c["action"] == "evict" and c["version"] is None and c["data"] is None for c in evicted)
    assert m1.replica == {}
    arrived = m2.pull_all()
    assert {(c["entity"], c["id"]) for c in arrived if c["action"] == "upsert"} == {
        ("household", household["id"]), ("resident", rid), ("visit", vid)}
    # the old member can no longer push to it; the new one can
    assert m1.push([op("visit", uid(), data=visit(household["id"]))])["results"][0]["error"]["code"] == "not_found"
    assert m2.push([op("visit", uid(), data=visit(household["id"]))])["results"][0]["status"] == "applied"


def test_a_large_household_moving_in_is_paginated(world):
    household = world.household(member="m1")
    m1 = world.tablet("m1")
    m1.push([op("resident", uid(), data={"household_id": household["id"], "name": f"人{n}"}) for n in range(30)])
    m2 = world.tablet("m2")
    m2.pull_all()
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    m2.pull_all(limit=7)
    assert len([k for k in m2.replica if k[0] == "resident"]) == 30
    m1.pull_all(limit=4)
    assert m1.replica == {}


def test_move_away_and_back_ends_with_the_household_held(world):
    household = world.household(member="m1")
    m1 = world.tablet("m1")
    m1.pull_all()
    path = f"/api/v1/households/{household['id']}/pairing"
    world.coordinator.put(path, {"member_id": world.users["m2"]["id"]})
    world.coordinator.put(path, {"member_id": world.users["m1"]["id"]})
    m1.pull_all()
    assert ("household", household["id"]) in m1.replica


def test_unpairing_evicts(world):
    household = world.household(member="m1")
    m1 = world.tablet("m1")
    m1.pull_all()
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": None})
    assert [(c["id"], c["action"]) for c in m1.pull_all()] == [(household["id"], "evict")]


def test_online_edit_reaches_the_tablet(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.pull_all()
    world.coordinator.patch(f"/api/v1/households/{household['id']}",
                            {"base_version": household["version"], "notes": "书记补充"})
    changes = tablet.pull_all()
    assert [(c["entity"], c["data"]["notes"]) for c in changes] == [("household", "书记补充")]


@pytest.mark.parametrize("cursor", ["abc", "x.y", "eyJ2IjoxfQ.AAAA", "", "%00", "a" * 3000])
def test_unreadable_cursors_are_400_invalid_cursor(world, cursor):
    tablet = world.tablet("m1")
    response = tablet.get(f"/api/v1/sync/pull?cursor={cursor}")
    if cursor == "":
        assert response.status_code == 200  # an empty cursor is no cursor
        return
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_cursor"


def test_a_tampered_cursor_or_another_devices_cursor_is_invalid(world):
    world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    a.pull_all()
    body, mac = a.cursor.split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["s"] = 0
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode() + "." + mac
    assert a.get(f"/api/v1/sync/pull?cursor={forged}").get_json()["error"]["code"] == "invalid_cursor"
    assert b.get(f"/api/v1/sync/pull?cursor={a.cursor}").get_json()["error"]["code"] == "invalid_cursor"


def test_resync_makes_the_next_pull_410_and_a_fresh_pull_works(world):
    world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.pull_all()
    assert world.coordinator.post(f"/api/v1/devices/{tablet.device_id}/resync").status_code == 200
    response = tablet.get(f"/api/v1/sync/pull?cursor={tablet.cursor}")
    assert response.status_code == 410 and response.get_json()["error"]["code"] == "cursor_expired"
    tablet.cursor, tablet.replica = None, {}
    tablet.pull_all()
    assert len(tablet.replica) == 1


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "x"])
def test_limit_out_of_range_is_422(world, limit):
    tablet = world.tablet("m1")
    response = tablet.get(f"/api/v1/sync/pull?limit={limit}")
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_failed"


def test_revoked_tablet_is_told_to_wipe(world):
    tablet = world.tablet("m1")
    world.coordinator.post(f"/api/v1/devices/{tablet.device_id}/revoke")
    response = tablet.get("/api/v1/sync/pull")
    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "device_revoked", "message": response.get_json()["error"]["message"],
                                            "details": {"wipe": True}}


def test_pull_needs_a_device_token(world):
    assert world.coordinator.get("/api/v1/sync/pull").status_code == 403
    assert world.client.get("/api/v1/sync/pull").status_code == 401
