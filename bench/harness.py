"""Lianhu under test: a fresh database, real gunicorn on a free 127.0.0.1 port, and an HTTP client.

The bench process builds the app only to create the schema and to reach the same database directly
(the raw limit, bulk loads); every figure about Lianhu itself goes through gunicorn over HTTP.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-0123456789abcdef"
# The run enrolls a few hundred tablets from one address within a minute, far past the per-address
# limits meant for guessing attacks; the benchmark is about sync, so it lifts them for its own server.
BENCH_LIMITS = {"RATE_LIMIT_ENROLL_ADDRESS": "1000000/60", "RATE_LIMIT_LOGIN_ADDRESS": "1000000/60",
                "RATE_LIMIT_LOGIN_USER": "1000000/60"}
ADMIN_PASSWORD = "bench-password-123"


@dataclass
class Database:
    """One database the run owns: its own SQLite file or its own PostgreSQL database."""

    kind: str  # "sqlite" or "postgresql"
    url: str
    instance: Path

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"DATABASE_URL": self.url, "INSTANCE_PATH": str(self.instance), "SECRET_KEY": SECRET,
                    "LOG_LEVEL": "WARNING", **BENCH_LIMITS})
        return env

    def reset_schema(self) -> None:
        """Drop and create every table from the models, in a fresh process: the schema must come from the
        same code that gunicorn is about to import, not from what this long-running process loaded."""
        script = ("from server import create_app\nfrom server.extensions import db\nfrom sync.models import Base\n"
                  "app = create_app()\nwith app.app_context():\n    db.session.close()\n"
                  "    Base.metadata.drop_all(db.engine)\n    Base.metadata.create_all(db.engine)\n")
        result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=self.env(), capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"schema reset failed: {result.stderr[-2000:]}")

    def connect(self):
        """A plain DBAPI connection (psycopg 3 or sqlite3), configured like the server's."""
        if self.kind == "postgresql":
            import psycopg

            return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"))
        import sqlite3

        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=15000")
        return conn

    def server_version(self) -> str:
        conn = self.connect()
        try:
            if self.kind == "postgresql":
                return conn.execute("SHOW server_version").fetchone()[0]
            return conn.execute("SELECT sqlite_version()").fetchone()[0]
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60.0, ok=(200,)) -> None:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2)
            if response.status_code in ok:
                return
            last = response.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer: {last}")


class Gunicorn:
    """``gunicorn wsgi:app`` as a child of this process; stopped by its own pid."""

    def __init__(self, database: Database, workers: int, log: Path):
        self.database, self.workers, self.log = database, workers, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--backlog", "2048", "--timeout", "120", "--log-level", "warning", "wsgi:app"],
            cwd=REPO, env=self.database.env(), stdout=out, stderr=subprocess.STDOUT)
        wait_for(self.base + "/readyz")
        return self

    def worker_rss_mib(self) -> list[float]:
        if self.proc is None:
            return []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        sizes = []
        for child in children:
            try:
                sizes.append(child.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                pass
        return sizes

    def worker_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children()] if self.proc else []

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class ApiError(RuntimeError):
    pass


class Client:
    """A token and the calls the benchmark needs; any unexpected status stops the run."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token
        self.http = requests.Session()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def call(self, method: str, path: str, body=None, expect=(200, 201), raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else requests.models.complexjson.dumps(body))
        response = self.http.request(method, self.base + path, data=data, headers=self._headers(), timeout=300)
        if response.status_code not in expect:
            raise ApiError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json()


@dataclass
class Tablet:
    device_id: str
    user_id: str
    client: Client
    cursor: str | None = None
    versions: dict[str, int] = field(default_factory=dict)

    def push_raw(self, body: bytes) -> dict:
        return self.client.call("POST", "/api/v1/sync/push", raw=body)

    def pull_page(self, limit: int) -> dict:
        query = f"/api/v1/sync/pull?limit={limit}" + (f"&cursor={self.cursor}" if self.cursor else "")
        page = self.client.call("GET", query)
        self.cursor = page["cursor"]
        return page

    def pull_all(self, limit: int) -> int:
        """Pull until ``has_more`` is false; answer how many changes came."""
        count = 0
        while True:
            page = self.pull_page(limit)
            count += len(page["changes"])
            if not page["has_more"]:
                return count


class World:
    """Areas, members, households and tablets made through the API, as a coordinator would."""

    def __init__(self, server: Gunicorn):
        self.server = server
        self.admin: Client | None = None
        self.community = self.grid = self.building = None
        self.members: dict[str, dict] = {}
        self.households: dict[str, list[str]] = {}

    def create_admin(self) -> None:
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "create-user", "bench-admin", "--role", "admin",
             "--password", ADMIN_PASSWORD],
            cwd=REPO, env=self.server.database.env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"create-user failed: {result.stdout}{result.stderr}")
        login = Client(self.server.base).call("POST", "/api/v1/auth/token",
                                              {"username": "bench-admin", "password": ADMIN_PASSWORD})
        self.admin = Client(self.server.base, login["token"])
        self.admin_user = login["user"]
        area = lambda name, kind, parent: self.admin.call(  # noqa: E731
            "POST", "/api/v1/areas", {"name": name, "kind": kind, "parent_id": parent})
        self.community = area("幸福里社区", "community", None)
        self.grid = area("第一网格", "grid", self.community["id"])
        self.building = area("1号楼", "building", self.grid["id"])

    def member(self, name: str, households: int) -> dict:
        user = self.admin.call("POST", "/api/v1/users", {"username": name, "display_name": name, "role": "member",
                                                         "area_id": self.grid["id"]})
        self.members[name] = user
        ids = []
        for i in range(households):
            household = self.admin.call("POST", "/api/v1/households", {
                "area_id": self.building["id"], "address": f"幸福路{i + 1}号 {name}", "head_name": "王秀英"})
            self.admin.call("PUT", f"/api/v1/households/{household['id']}/pairing", {"member_id": user["id"]})
            ids.append(household["id"])
        self.households[name] = ids
        return user

    def tablet(self, name: str) -> Tablet:
        user = self.members[name]
        code = self.admin.call("POST", f"/api/v1/users/{user['id']}/enrollment-codes")["code"]
        body = Client(self.server.base).call("POST", "/api/v1/devices/enroll",
                                             {"code": code, "name": f"{name}-{uuid.uuid4().hex[:6]}"})
        return Tablet(body["device_id"], user["id"], Client(self.server.base, body["token"]))
