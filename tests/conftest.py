"""Fixtures for every test. The database comes from ``DATABASE_URL`` (SQLite in a temp folder when unset);
``make test`` runs the suite once per database. Each test starts from empty tables."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from server import create_app
from server.extensions import db
from sync.models import Base

# Figures a test wants in the run's output (examples tried, cells checked, faults injected), printed in
# the terminal summary whatever the capture mode: ``figures("authorization matrix: 696 cells")``.
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def hold_sqlite_write_lock(path, seconds: float) -> threading.Thread:
    """Another process's writer, as far as SQLite can tell: the write lock held on a connection of its own."""
    locked = threading.Event()

    def hold():
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return thread


@pytest.fixture(scope="session")
def figures():
    return FIGURES.append


def _database_url(tmp_root) -> str:
    url = os.environ.get("DATABASE_URL")
    return url or f"sqlite:///{tmp_root / 'test.db'}"


@pytest.fixture(scope="session")
def _app(tmp_path_factory):
    root = tmp_path_factory.mktemp("lianhu")
    app = create_app({
        "DATABASE_URL": _database_url(root),
        "INSTANCE_PATH": str(root),
        "SECRET_KEY": "test-secret-key-0123456789abcdef",
        "TESTING": True,
        # a cheaper (still salted, still slow-by-design) hash keeps hundreds of logins quick in tests
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:2000",
        # the suite logs in and enrolls hundreds of times from one address; tests of the limits set their own
        "RATE_LIMIT_LOGIN_USER": "1000000/300",
        "RATE_LIMIT_LOGIN_ADDRESS": "1000000/300",
        "RATE_LIMIT_ENROLL_ADDRESS": "1000000/300",
    })
    with app.app_context():
        db.session.close()
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
    yield app
    with app.app_context():
        db.session.close()
        db.engine.dispose()


def _empty_tables(app) -> None:
    with app.app_context():
        db.session.close()
        with db.engine.begin() as conn:
            # the change counter's one row stays: numbers only ever grow, and no first writer has to create it
            tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name != "change_counter"]
            if conn.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables) + " CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())


@pytest.fixture
def app(_app):
    _empty_tables(_app)
    with _app.app_context():
        yield _app
        db.session.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def dialect(app) -> str:
    return db.engine.dialect.name


# --- a small world of areas, people, tablets and households ----------------------------------------


class Api:
    """A caller with a token: ``api.get(path)``, ``api.post(path, json)`` … answer Flask responses."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def _headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path, json=None, **kw):
        return self.client.put(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path, json=None, **kw):
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


class Tablet(Api):
    """A device token with helpers to push ops and pull until done."""

    def __init__(self, client, token, device_id, user):
        super().__init__(client, token)
        self.device_id, self.user = device_id, user
        self.cursor = None
        self.replica: dict[tuple[str, str], dict] = {}

    def push(self, ops, batch_id=None, client_time="2026-12-01T10:00:00+08:00", expect=200):
        body = {"batch_id": batch_id or str(uuid.uuid4()), "client_time": client_time, "ops": ops}
        response = self.post("/api/v1/sync/push", body)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def pull_all(self, limit=500):
        """Pull until ``has_more`` is false; apply to ``replica``; return every change received."""
        received = []
        while True:
            query = f"/api/v1/sync/pull?limit={limit}" + (f"&cursor={self.cursor}" if self.cursor else "")
            response = self.get(query)
            assert response.status_code == 200, response.get_json()
            page = response.get_json()
            assert len(page["changes"]) <= limit
            for change in page["changes"]:
                key = (change["entity"], change["id"])
                if change["action"] == "upsert":
                    held = self.replica.get(key)
                    if held is None or held["version"] < change["version"]:
                        self.replica[key] = change["data"]
                else:
                    self.replica.pop(key, None)
            received += page["changes"]
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return received


def op(entity, record_id, action="create", data=None, base_version=None,
       recorded_at="2026-12-01T09:30:00+08:00", op_id=None):
    return {"op_id": op_id or str(uuid.uuid4()), "entity": entity, "id": record_id, "action": action,
            "base_version": base_version, "recorded_at": recorded_at, "data": data}


@dataclass
class World:
    client: object
    admin: Api = None
    coordinator: Api = None
    other_coordinator: Api = None
    community: dict = None
    grid: dict = None
    building: dict = None
    other_community: dict = None
    other_building: dict = None
    members: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)

    def login(self, username, password="password-123") -> Api:
        response = self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
        assert response.status_code == 200, response.get_json()
        return Api(self.client, response.get_json()["token"])

    def add_member(self, name, area=None, by=None) -> dict:
        by = by or self.coordinator
        response = by.post("/api/v1/users", {"username": name, "display_name": name, "role": "member",
                                             "area_id": (area or self.grid)["id"], "password": "password-123"})
        assert response.status_code == 201, response.get_json()
        self.users[name] = response.get_json()
        return self.users[name]

    def tablet(self, username, by=None) -> Tablet:
        by = by or self.coordinator
        user = self.users[username]
        code = by.post(f"/api/v1/users/{user['id']}/enrollment-codes").get_json()["code"]
        response = self.client.post("/api/v1/devices/enroll", json={"code": code, "name": f"{username}-tablet"})
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return Tablet(self.client, body["token"], body["device_id"], user)

    def household(self, address="幸福路1号", area=None, member=None, by=None, **fields) -> dict:
        by = by or self.coordinator
        response = by.post("/api/v1/households", {"area_id": (area or self.building)["id"], "address": address,
                                                  "head_name": "王秀英", **fields})
        assert response.status_code == 201, response.get_json()
        household = response.get_json()
        if member:
            response = by.put(f"/api/v1/households/{household['id']}/pairing",
                              {"member_id": self.users[member]["id"]})
            assert response.status_code == 200, response.get_json()
            household = response.get_json()
        return household


@pytest.fixture
def world(app, client, runner) -> World:
    """Two communities; a coordinator of each; a grid and building in the first; members m1, m2."""
    result = runner.invoke(args=["create-user", "admin", "--role", "admin", "--password", "password-123"])
    assert result.exit_code == 0, result.output
    w = World(client)
    w.admin = w.login("admin")
    area = lambda body: w.admin.post("/api/v1/areas", body).get_json()  # noqa: E731
    w.community = area({"name": "幸福里社区", "kind": "community", "parent_id": None})
    w.grid = area({"name": "第一网格", "kind": "grid", "parent_id": w.community["id"]})
    w.building = area({"name": "1号楼", "kind": "building", "parent_id": w.grid["id"]})
    w.other_community = area({"name": "和平社区", "kind": "community", "parent_id": None})
    other_grid = area({"name": "第二网格", "kind": "grid", "parent_id": w.other_community["id"]})
    w.other_building = area({"name": "9号楼", "kind": "building", "parent_id": other_grid["id"]})
    for name, community in (("coord", w.community), ("coord2", w.other_community)):
        response = w.admin.post("/api/v1/users", {"username": name, "display_name": name, "role": "coordinator",
                                                  "area_id": community["id"], "password": "password-123"})
        assert response.status_code == 201, response.get_json()
        w.users[name] = response.get_json()
    w.coordinator = w.login("coord")
    w.other_coordinator = w.login("coord2")
    w.add_member("m1")
    w.add_member("m2")
    return w
