"""Real WatermelonDB clients (``@nozbe/watermelondb`` on LokiJS, in memory, in Node) sync with real gunicorn.

The Node driver in ``tests/e2e/watermelondb/`` runs WatermelonDB's own ``synchronize()``; its packages are
installed with ``npm ci`` into that folder when ``node_modules`` is missing. The coordinators' side is
played over HTTP, as the console would.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent / "watermelondb"


@pytest.fixture(scope="session")
def harness():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node 20 and npm are needed for the WatermelonDB end-to-end tests")
    if not (HARNESS / "node_modules" / "@nozbe" / "watermelondb").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HARNESS, check=True, timeout=600)
    return HARNESS / "driver.js"


class Http:
    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, expect=(200, 201)):
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read() or b"null")
        assert status in expect, (method, path, status, answer)
        return answer


class Clients:
    """The Node driver: several WatermelonDB databases in one process, one command at a time."""

    def __init__(self, driver: Path, url: str):
        self.url = url
        self.process = subprocess.Popen(["node", str(driver)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, cwd=driver.parent)

    def __call__(self, cmd: str, **args):
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert answer["ok"], answer["error"]
        return answer["result"]

    def open(self, name: str, token: str, version: int = 1):
        return self("open", name=name, url=self.url, token=token, version=version)

    def records(self, name: str, table: str) -> dict[str, dict]:
        return {r["id"]: r for r in self("all", name=name, table=table)}

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


class World:
    """A community with a coordinator, members and their tablets, made over HTTP."""

    def __init__(self, live_server):
        self.url = live_server["url"]
        tag = uuid.uuid4().hex[:8]
        admin = self.login(live_server["admin"], live_server["password"])
        community = admin.call("POST", "/api/v1/areas", {"name": f"社区{tag}", "kind": "community", "parent_id": None})
        grid = admin.call("POST", "/api/v1/areas", {"name": "网格", "kind": "grid", "parent_id": community["id"]})
        self.building = admin.call("POST", "/api/v1/areas", {"name": "1号楼", "kind": "building", "parent_id": grid["id"]})
        admin.call("POST", "/api/v1/users", {"username": f"coord-{tag}", "display_name": "书记", "role": "coordinator",
                                             "area_id": community["id"], "password": "password-123"})
        self.coordinator = self.login(f"coord-{tag}", "password-123")
        self.members = {}
        for name in ("m1", "m2"):
            self.members[name] = self.coordinator.call("POST", "/api/v1/users", {
                "username": f"{name}-{tag}", "display_name": name, "role": "member", "area_id": grid["id"],
                "password": "password-123"})

    def login(self, username, password) -> Http:
        answer = Http(self.url).call("POST", "/api/v1/auth/token", {"username": username, "password": password})
        return Http(self.url, answer["token"])

    def tablet_token(self, member: str) -> str:
        user = self.members[member]
        code = self.coordinator.call("POST", f"/api/v1/users/{user['id']}/enrollment-codes")["code"]
        return Http(self.url).call("POST", "/api/v1/devices/enroll", {"code": code, "name": f"{member} pad"})["token"]

    def household(self, member: str, **fields) -> dict:
        household = self.coordinator.call("POST", "/api/v1/households", {
            "area_id": self.building["id"], "address": "幸福路1号", "head_name": "王秀英", **fields})
        return self.pair(household["id"], member)

    def pair(self, household_id: str, member: str | None) -> dict:
        member_id = self.members[member]["id"] if member else None
        return self.coordinator.call("PUT", f"/api/v1/households/{household_id}/pairing", {"member_id": member_id})


@pytest.fixture
def world(live_server):
    return World(live_server)


@pytest.fixture
def clients(harness, live_server):
    driver = Clients(harness, live_server["url"])
    yield driver
    try:
        # WatermelonDB logs (instead of throwing) what it finds odd in a pull: the server gave it no reason
        assert [e for e in driver("errors") if "[Sync]" in e] == []
    finally:
        driver.close()


def test_created_on_one_tablet_arrives_on_another(world, clients):
    """Without sendCreatedAsUpdated: a first pull answers `created`, later ones `updated`."""
    household = world.household("m1")
    token_a, token_b = world.tablet_token("m1"), world.tablet_token("m1")
    clients.open("a", token_a)
    clients.open("b", token_b)
    clients("sync", name="a", sendCreatedAsUpdated=False)
    assert clients.records("a", "households")[household["id"]]["address"] == "幸福路1号"

    resident = clients("create", name="a", table="residents", set={
        "household_id": household["id"], "name": "李大爷", "birth_year": 1941, "tags": json.dumps(["独居老人"])})["id"]
    visit = clients("create", name="a", table="visits", set={
        "household_id": household["id"], "visited_at": int(time.time() * 1000), "kind": "routine",
        "summary": "身体还好，想申请助餐", "observations": json.dumps({"mood": "good"})})["id"]
    synced = clients("sync", name="a", sendCreatedAsUpdated=False)
    assert synced["lastPush"]["answer"]["experimentalRejectedIds"] == {}
    assert {r["status"] for t in synced["lastPush"]["answer"]["results"].values() for r in t.values()} == {"applied"}
    assert clients.records("a", "residents")[resident]["_status"] == "synced"

    clients("sync", name="b", sendCreatedAsUpdated=False)
    got = clients.records("b", "residents")[resident]
    assert got["name"] == "李大爷" and json.loads(got["tags"]) == ["独居老人"] and got["_status"] == "synced"
    assert clients.records("b", "visits")[visit]["summary"] == "身体还好，想申请助餐"

    # a deletion travels the same way
    clients("remove", name="b", table="residents", id=resident)
    clients("sync", name="b", sendCreatedAsUpdated=False)
    clients("sync", name="a", sendCreatedAsUpdated=False)
    assert resident not in clients.records("a", "residents")


def test_concurrent_edits_of_different_columns_both_survive(world, clients):
    household = world.household("m1")
    clients.open("a", world.tablet_token("m1"))
    clients.open("b", world.tablet_token("m1"))
    clients("sync", name="a")
    clients("sync", name="b")
    clients("update", name="a", table="households", id=household["id"], set={"head_name": "王建国"})
    clients("update", name="b", table="households", id=household["id"], set={"phone": "13800138000"})
    clients("sync", name="a")
    clients("sync", name="b")
    clients("sync", name="a")
    for name in ("a", "b"):
        record = clients.records(name, "households")[household["id"]]
        assert (record["head_name"], record["phone"]) == ("王建国", "13800138000"), name
    server = world.coordinator.call("GET", f"/api/v1/households/{household['id']}")
    assert (server["head_name"], server["phone"]) == ("王建国", "13800138000")
    assert not [c for c in world.coordinator.call("GET", "/api/v1/conflicts?status=open&per_page=1000")["items"]
                if c["record_id"] == household["id"]]


def test_same_column_keeps_the_later_edit_and_records_a_conflict(world, clients):
    household = world.household("m1")
    clients.open("a", world.tablet_token("m1"))
    clients.open("b", world.tablet_token("m1"))
    clients("sync", name="a")
    clients("sync", name="b")
    clients("update", name="b", table="households", id=household["id"], set={"address": "幸福路1号东门"})  # earlier
    time.sleep(0.05)
    clients("update", name="a", table="households", id=household["id"], set={"address": "幸福路1号西门"})  # later
    clients("sync", name="a")
    # b syncs last, with the older edit: WatermelonDB alone would let it win ("client wins" in its pull)
    answer = clients("sync", name="b")["lastPush"]["answer"]
    result = answer["results"]["households"][household["id"]]
    assert result["status"] == "merged"
    assert result["conflicts"] == [{"field": "address", "kept": "幸福路1号西门", "discarded": "幸福路1号东门"}]
    assert world.coordinator.call("GET", f"/api/v1/households/{household['id']}")["address"] == "幸福路1号西门"
    conflicts = [c for c in world.coordinator.call("GET", "/api/v1/conflicts?status=open&per_page=1000")["items"]
                 if c["record_id"] == household["id"]]
    assert [(c["field"], c["kept"], c["discarded"]) for c in conflicts] == [("address", "幸福路1号西门", "幸福路1号东门")]
    # b's next pull brings the kept value back, so both tablets agree with the server
    clients("sync", name="b")
    clients("sync", name="a")
    for name in ("a", "b"):
        record = clients.records(name, "households")[household["id"]]
        assert (record["address"], record["_status"]) == ("幸福路1号西门", "synced"), name


def test_household_paired_away_disappears_from_the_old_members_database(world, clients):
    household = world.household("m1")
    kept = world.household("m1", address="和谐路8号")
    clients.open("m1", world.tablet_token("m1"))
    clients.open("m2", world.tablet_token("m2"))
    clients("sync", name="m1")
    resident = clients("create", name="m1", table="residents", set={"household_id": household["id"], "name": "张阿姨"})["id"]
    clients("sync", name="m1")
    clients("sync", name="m2")
    assert household["id"] not in clients.records("m2", "households")

    world.pair(household["id"], "m2")
    clients("sync", name="m1")
    assert set(clients.records("m1", "households")) == {kept["id"]}
    assert clients.records("m1", "residents") == {}
    clients("sync", name="m2")
    assert set(clients.records("m2", "households")) == {household["id"]}
    assert clients.records("m2", "residents")[resident]["name"] == "张阿姨"


def test_resolved_requests_feedback_task_arrives_and_closes(world, clients):
    household = world.household("m1")
    clients.open("a", world.tablet_token("m1"))
    clients("sync", name="a")
    request_id = clients("create", name="a", table="requests", set={
        "household_id": household["id"], "category": "楼道照明", "description": "三楼楼道灯坏了", "urgency": "normal"})["id"]
    clients("sync", name="a")
    clients("sync", name="a")  # the server's fields (status, deadlines) come back in the pull after the push
    assert clients.records("a", "requests")[request_id]["status"] == "open"

    world.coordinator.call("POST", f"/api/v1/requests/{request_id}/resolve", {"resolution": "物业已换灯泡"})
    clients("sync", name="a")
    tasks = [t for t in clients.records("a", "tasks").values() if t["request_id"] == request_id]
    assert [(t["kind"], t["status"]) for t in tasks] == [("deliver_feedback", "open")]
    assert "物业已换灯泡" in tasks[0]["message"]
    assert clients.records("a", "requests")[request_id]["status"] == "resolved"

    clients("create", name="a", table="request_events", set={
        "request_id": request_id, "action": "feedback_delivered", "channel": "in_person", "satisfaction": 5,
        "occurred_at": int(time.time() * 1000)})
    clients("sync", name="a")
    clients("sync", name="a")
    assert clients.records("a", "requests")[request_id]["status"] == "closed"
    assert clients.records("a", "tasks")[tasks[0]["id"]]["status"] == "done"


def test_schema_migration_pull_brings_the_new_columns_values(world, clients):
    household = world.household("m1")
    patched = world.coordinator.call("PATCH", f"/api/v1/households/{household['id']}",
                                     {"base_version": household["version"], "notes": "独居，耳背，请大声敲门"})
    assert patched["notes"] == "独居，耳背，请大声敲门"
    clients.open("a", world.tablet_token("m1"), version=1)  # the app before it had a notes column
    clients("sync", name="a")
    assert "notes" not in clients.records("a", "households")[household["id"]]

    clients("migrate", name="a")
    synced = clients("sync", name="a")
    assert synced["lastPull"]["migration"] == {"from": 1, "tables": [],
                                               "columns": [{"table": "households", "columns": ["notes"]}]}
    assert clients.records("a", "households")[household["id"]]["notes"] == "独居，耳背，请大声敲门"
