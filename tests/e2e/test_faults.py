"""Faults against a real gunicorn on 127.0.0.1: a worker killed mid-batch, the database going away, a
client that hangs up after sending, and SQLite's lock. Nothing is lost and nothing is applied twice."""
from __future__ import annotations

import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, text
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url

from server import create_app
from server.extensions import db
from sync.models import OpLog, Visit
from tests.conftest import hold_sqlite_write_lock, op

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
INJECTED: dict[str, int] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn master started by this test, on its own port; only its own processes are signalled."""

    def __init__(self, app, database_url: str, workers: int, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=app.config["SECRET_KEY"],
                   INSTANCE_PATH=app.config["INSTANCE_PATH"], LOG_LEVEL="WARNING",
                   RATE_LIMIT_LOGIN_USER="100000/60", RATE_LIMIT_LOGIN_ADDRESS="100000/60",
                   RATE_LIMIT_ENROLL_ADDRESS="100000/60")
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            [str(GUNICORN), "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}", "--timeout", "60",
             "--graceful-timeout", "5", "wsgi:app"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, "gunicorn exited; see its log"
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("gunicorn did not come up")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def seeded(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    db.session.commit()
    db.session.close()
    return household, tablet


@contextmanager
def gunicorn(app, tmp_path, database_url: str | None = None, workers: int = 2):
    server = Server(app, database_url or app.config["SQLALCHEMY_DATABASE_URI"], workers, tmp_path / "gunicorn.log")
    try:
        yield server
    finally:
        server.stop()


def visit_ops(household_id: str, count: int) -> list[dict]:
    return [op("visit", str(uuid.uuid4()), data={"household_id": household_id, "kind": "routine",
                                                  "visited_at": "2026-12-01T09:00:00+08:00", "summary": f"第{i}次"})
            for i in range(count)]


def envelope(ops: list[dict], batch_id: str) -> dict:
    return {"batch_id": batch_id, "client_time": "2026-12-01T10:00:00+08:00", "ops": ops}


def count(stmt) -> int:
    """Read on a connection of its own and let go at once: on SQLite any open transaction holds the lock."""
    with db.engine.connect() as conn:
        return conn.scalar(stmt)


def visits_of(ops: list[dict]) -> int:
    return count(sql_select(func.count()).select_from(Visit).where(Visit.id.in_([o["id"] for o in ops])))


def bearer(tablet) -> dict:
    return {"Authorization": f"Bearer {tablet.token}"}


def _record(name: str, count: int = 1) -> None:
    INJECTED[name] = INJECTED.get(name, 0) + count


@pytest.fixture(scope="module", autouse=True)
def _figures(figures):
    yield
    if INJECTED:
        figures("faults injected: " + ", ".join(f"{n} {name}" for name, n in INJECTED.items())
                + "; nothing lost, nothing applied twice")


# --- a worker killed mid-batch ----------------------------------------------------------------------


def _push_in_background(url: str, body: dict, headers: dict) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["response"] = requests.post(url, json=body, headers=headers, timeout=60)
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _resend_applies_once(server, tablet, ops, batch_id) -> None:
    committed = visits_of(ops)
    assert committed in (0, len(ops)), f"half a batch was committed: {committed} of {len(ops)}"
    response = requests.post(server.base + "/api/v1/sync/push", json=envelope(ops, batch_id), headers=bearer(tablet),
                             timeout=60)
    assert response.status_code == 200, response.text[:300]
    statuses = {r["status"] for r in response.json()["results"]}
    assert statuses == {"applied"}, statuses  # the first answer, or the replay of the committed one
    assert visits_of(ops) == len(ops)
    assert count(sql_select(func.count()).select_from(OpLog).where(
        OpLog.op_id.in_([o["op_id"] for o in ops]))) == len(ops)


def test_a_worker_killed_mid_batch_commits_nothing_and_the_resend_applies_once(app, seeded, tmp_path):
    household, tablet = seeded
    with gunicorn(app, tmp_path, workers=1) as server:
        url = server.base + "/api/v1/sync/push"
        warmup = visit_ops(household["id"], 500)
        started = time.time()
        assert requests.post(url, json=envelope(warmup, str(uuid.uuid4())), headers=bearer(tablet),
                             timeout=60).status_code == 200
        batch_seconds = time.time() - started
        rng = random.Random(8)
        killed_mid_request = 0
        for _trial in range(3):
            ops, batch_id = visit_ops(household["id"], 500), str(uuid.uuid4())
            [worker] = server.workers()
            thread, outcome = _push_in_background(url, envelope(ops, batch_id), bearer(tablet))
            time.sleep(batch_seconds * rng.uniform(0.3, 0.7))
            os.kill(worker, signal.SIGKILL)
            thread.join(60)
            _record("worker SIGKILLs")
            killed_mid_request += "error" in outcome
            server.wait_ready()
            _resend_applies_once(server, tablet, ops, batch_id)
        assert killed_mid_request >= 1, "no kill landed while a batch was being applied"


def test_on_postgresql_a_worker_killed_holding_an_applied_uncommitted_batch_commits_nothing(app, seeded, tmp_path,
                                                                                             dialect):
    """Deterministic: the batch is applied but cannot commit (the change counter is locked) when it dies."""
    if dialect != "postgresql":
        pytest.skip("needs row locks taken from outside the server")
    household, tablet = seeded
    with gunicorn(app, tmp_path, workers=1) as server:
        ops, batch_id = visit_ops(household["id"], 200), str(uuid.uuid4())
        [worker] = server.workers()
        with db.engine.connect() as blocker:
            blocker.execute(text("SELECT value FROM change_counter FOR UPDATE"))
            thread, outcome = _push_in_background(server.base + "/api/v1/sync/push", envelope(ops, batch_id),
                                                  bearer(tablet))
            deadline = time.time() + 30
            while time.time() < deadline:  # wait until the worker is waiting on the counter, all ops applied
                with db.engine.connect() as probe:
                    waiting = probe.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"))
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting, "the push never reached its commit"
            os.kill(worker, signal.SIGKILL)
            _record("worker SIGKILLs")
            thread.join(60)
            assert "error" in outcome
            blocker.rollback()
        server.wait_ready()
        _resend_applies_once(server, tablet, ops, batch_id)


# --- a client that hangs up after sending -----------------------------------------------------------


def test_a_client_that_drops_the_connection_after_sending_gets_its_results_on_resend(app, seeded, tmp_path):
    household, tablet = seeded
    with gunicorn(app, tmp_path) as server:
        for _trial in range(3):
            ops, batch_id = visit_ops(household["id"], 100), str(uuid.uuid4())
            body = requests.models.PreparedRequest()
            body.prepare(method="POST", url=server.base + "/api/v1/sync/push", json=envelope(ops, batch_id),
                         headers={**bearer(tablet), "Connection": "close"})
            raw = (f"POST /api/v1/sync/push HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                   + "".join(f"{k}: {v}\r\n" for k, v in body.headers.items()) + "\r\n").encode() + body.body
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(raw)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            _record("dropped connections")
            deadline = time.time() + 30
            while visits_of(ops) == 0 and time.time() < deadline:  # the server went on without the client
                time.sleep(0.05)
            assert visits_of(ops) == len(ops)
            _resend_applies_once(server, tablet, ops, batch_id)


# --- the database going away (PostgreSQL, through a proxy this test controls) -----------------------


class Proxy:
    """A TCP forwarder on 127.0.0.1 to the database; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = None
        self.stopped = threading.Event()
        self.open()

    def open(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (b if source is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        # shutdown() first: a bare close() does not wake the thread blocked in accept(), which would keep
        # the port listening
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.connections:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.connections.clear()

    def close(self) -> None:
        self.cut()


def test_the_database_going_away_answers_503_with_retry_after_and_recovers(app, seeded, tmp_path, dialect):
    if dialect != "postgresql":
        pytest.skip("the database is a separate server only on PostgreSQL (SQLite's lock is tested below)")
    household, tablet = seeded
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with gunicorn(app, tmp_path, database_url=proxied) as server:
            pull = server.base + "/api/v1/sync/pull"
            assert requests.get(pull, headers=bearer(tablet), timeout=30).status_code == 200
            for _outage in range(2):
                proxy.cut()
                _record("database outages")
                ops = visit_ops(household["id"], 3)
                batch_id = str(uuid.uuid4())
                for method, path, body in (("get", "/api/v1/sync/pull", None),
                                           ("post", "/api/v1/sync/push", envelope(ops, batch_id)),
                                           ("get", "/readyz", None)):
                    response = requests.request(method, server.base + path, json=body, headers=bearer(tablet),
                                                timeout=30)
                    assert response.status_code == 503, (path, response.status_code, response.text[:300])
                    assert int(response.headers["Retry-After"]) > 0
                    error = response.json()["error"]
                    assert error["code"] == "unavailable" and set(error) == {"code", "message", "details"}
                assert requests.get(server.base + "/healthz", timeout=10).status_code == 200  # the process is up
                proxy.open()
                deadline = time.time() + 30
                while time.time() < deadline:
                    if requests.get(server.base + "/readyz", timeout=10).status_code == 200:
                        break
                    time.sleep(0.2)
                response = requests.post(server.base + "/api/v1/sync/push", json=envelope(ops, batch_id),
                                         headers=bearer(tablet), timeout=30)
                assert response.status_code == 200, response.text[:300]
                assert {r["status"] for r in response.json()["results"]} == {"applied"}
                assert visits_of(ops) == len(ops)
    finally:
        proxy.close()


# --- SQLite's lock ----------------------------------------------------------------------------------


def test_sqlite_busy_is_waited_out_and_past_the_timeout_answers_503_never_500(app, seeded, tmp_path, dialect):
    if dialect != "sqlite":
        pytest.skip("SQLite's database lock")
    household, tablet = seeded
    path = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    with gunicorn(app, tmp_path) as server:
        ops, batch_id = visit_ops(household["id"], 20), str(uuid.uuid4())
        holder = hold_sqlite_write_lock(path, 1.5)  # shorter than the busy timeout: the push waits
        _record("SQLite locks held")
        response = requests.post(server.base + "/api/v1/sync/push", json=envelope(ops, batch_id),
                                 headers=bearer(tablet), timeout=60)
        holder.join()
        assert response.status_code == 200, response.text[:300]
        assert visits_of(ops) == len(ops)

    impatient = create_app({"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": app.config["SECRET_KEY"],
                            "INSTANCE_PATH": app.config["INSTANCE_PATH"], "SQLITE_BUSY_TIMEOUT_MS": 200})
    client = impatient.test_client()
    ops, batch_id = visit_ops(household["id"], 5), str(uuid.uuid4())
    holder = hold_sqlite_write_lock(path, 2.0)  # longer than this app's busy timeout
    _record("SQLite locks held")
    response = client.post("/api/v1/sync/push", json=envelope(ops, batch_id), headers=bearer(tablet))
    holder.join()
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.headers["Retry-After"] and response.get_json()["error"]["code"] == "unavailable"
    retried = client.post("/api/v1/sync/push", json=envelope(ops, batch_id), headers=bearer(tablet))
    assert retried.status_code == 200 and {r["status"] for r in retried.get_json()["results"]} == {"applied"}
    with impatient.app_context():
        db.session.close()
        db.engine.dispose()
    assert visits_of(ops) == len(ops)
