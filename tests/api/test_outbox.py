"""The outbox worker: each message sent exactly once, with two workers draining at once; retries with
back-off; leases that run out; the ``log`` and ``http`` gateways; the CLI."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time

import pytest
from sqlalchemy import select, text

from server import worker
from server.extensions import db
from server.gateways import GatewayError, HttpGateway, LogGateway, gateway_from_config
from sync.models import OutboxMessage, utcnow
from sync.requests import enqueue

POLICY = worker.OutboxPolicy(max_attempts=3, backoff_seconds=30, backoff_max_seconds=100, lease_seconds=60,
                             batch_size=5)


def queue(count: int, kind: str = "sms") -> list[str]:
    for n in range(count):
        enqueue(db.session, kind, {"to": f"1380000{n:04d}", "text": f"您的诉求已办结 {n}"}, dedupe_key=f"test:{n}")
    db.session.commit()
    ids = list(db.session.scalars(select(OutboxMessage.id)))
    db.session.commit()  # hold no transaction: on SQLite it would hold the one write lock
    return ids


def rows() -> dict[str, OutboxMessage]:
    db.session.expire_all()
    return {m.id: m for m in db.session.scalars(select(OutboxMessage))}


class RecordingGateway:
    """Counts deliveries per message and when each happened; fails the messages it is told to."""

    name = "recording"

    def __init__(self, delay: float = 0.0, fail: dict | None = None):
        self.delay, self.fail = delay, dict(fail or {})
        self.lock = threading.Lock()
        self.sent: list[tuple[str, str, float, float]] = []

    def send(self, message):
        with self.lock:
            failure = self.fail.get(message.id)
            if failure is not None:
                raise failure
        start = time.monotonic()
        time.sleep(self.delay)
        with self.lock:
            self.sent.append((message.id, threading.current_thread().name, start, time.monotonic()))


def test_two_workers_draining_at_once_send_each_message_exactly_once(app, dialect):
    ids = queue(60)
    gateway = RecordingGateway(delay=0.004)
    marked = {}
    errors = []
    barrier = threading.Barrier(2)

    def work(name):
        try:
            with app.app_context():
                barrier.wait()
                marked[name] = worker.drain(db.session, gateway, POLICY)
        except Exception as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,), name=name) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    sent_ids = [entry[0] for entry in gateway.sent]
    assert sorted(sent_ids) == sorted(ids)  # every message delivered, none twice
    assert marked["w1"] + marked["w2"] == 60
    assert marked["w1"] > 0 and marked["w2"] > 0  # both workers took part
    by_worker = {name: [(s, e) for _, n, s, e in gateway.sent if n == name] for name in ("w1", "w2")}
    overlapping = any(s1 < e2 and s2 < e1 for s1, e1 in by_worker["w1"] for s2, e2 in by_worker["w2"])
    assert overlapping  # they really delivered at the same time
    stored = rows()
    assert {m.status for m in stored.values()} == {"sent"} and {m.attempts for m in stored.values()} == {1}
    assert all(m.sent_at is not None and m.claim_token is None for m in stored.values())


@pytest.mark.postgres_only
def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(app, dialect):
    if dialect != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite has one writer")
    queue(10)
    first = sorted(rows().values(), key=lambda m: (m.next_attempt_at, m.id))[:5]
    with db.engine.connect() as other:
        held = other.begin()
        other.execute(select(OutboxMessage.id).where(OutboxMessage.id.in_([m.id for m in first]))
                      .with_for_update())
        started = time.monotonic()
        with app.app_context():
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # fail, not hang, if it waited
            claims = worker.claim(db.session, POLICY)
        assert time.monotonic() - started < 1.5  # it did not wait for the held rows
        assert {c.message.id for c in claims}.isdisjoint({m.id for m in first}) and len(claims) == 5
        held.rollback()


def test_failed_delivery_is_retried_with_exponential_back_off_then_marked_failed(app):
    (message_id,) = queue(1)
    gateway = RecordingGateway(fail={message_id: GatewayError("provider down")})
    now = utcnow()
    assert worker.drain(db.session, gateway, POLICY, now) == 0
    row = rows()[message_id]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "provider down")
    assert abs((row.next_attempt_at - now).total_seconds() - 30) < 1
    assert worker.drain(db.session, gateway, POLICY, now + dt.timedelta(seconds=10)) == 0  # not due yet
    assert rows()[message_id].attempts == 1
    worker.drain(db.session, gateway, POLICY, now + dt.timedelta(seconds=31))
    row = rows()[message_id]
    assert row.attempts == 2 and abs((row.next_attempt_at - now).total_seconds() - 91) < 1  # 31 + 60
    worker.drain(db.session, gateway, POLICY, now + dt.timedelta(seconds=200))
    row = rows()[message_id]
    assert (row.status, row.attempts) == ("failed", 3) and gateway.sent == []
    assert worker.drain(db.session, gateway, POLICY, now + dt.timedelta(days=1)) == 0


def test_a_permanent_refusal_is_not_retried_and_a_recovered_gateway_sends(app):
    refused, flaky = queue(2)
    gateway = RecordingGateway(fail={refused: GatewayError("bad number", permanent=True),
                                     flaky: GatewayError("timeout")})
    now = utcnow()
    worker.drain(db.session, gateway, POLICY, now)
    assert rows()[refused].status == "failed" and rows()[flaky].status == "pending"
    del gateway.fail[flaky]
    assert worker.drain(db.session, gateway, POLICY, now + dt.timedelta(seconds=31)) == 1
    assert rows()[flaky].status == "sent" and [s[0] for s in gateway.sent] == [flaky]


def test_a_message_whose_worker_died_is_claimed_again_and_marked_sent_once(app):
    (message_id,) = queue(1)
    now = utcnow()
    (lost,) = worker.claim(db.session, POLICY, now)  # this worker dies before it sends
    assert worker.claim(db.session, POLICY, now + dt.timedelta(seconds=30)) == []  # the lease still holds
    (again,) = worker.claim(db.session, POLICY, now + dt.timedelta(seconds=61))
    assert again.message.id == message_id and again.message.attempt == 2
    gateway = RecordingGateway()
    assert worker.deliver(db.session, gateway, POLICY, again) is True
    assert worker.deliver(db.session, gateway, POLICY, lost) is False  # the late one does not mark it again
    row = rows()[message_id]
    assert row.status == "sent" and row.attempts == 2


def test_log_gateway_records_the_message_and_masks_the_number(app, caplog):
    queue(1)
    gateway = LogGateway()
    with caplog.at_level("INFO", logger="lianhu.outbox"):
        assert worker.drain(db.session, gateway, POLICY) == 1
    assert gateway.sent[0].payload["text"] == "您的诉求已办结 0"
    assert "*******0000" in caplog.text and "13800000000" not in caplog.text


class _Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((dict(self.headers), body))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.answers, _Receiver.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sms", _Receiver
    server.shutdown()
    server.server_close()


def test_http_gateway_posts_json_and_retries_a_server_error(app, receiver):
    url, handler = receiver
    (message_id,) = queue(1)
    handler.answers = [503]
    gateway = HttpGateway(url, token="provider-token", timeout=5)
    now = utcnow()
    assert worker.drain(db.session, gateway, POLICY, now) == 0
    assert rows()[message_id].status == "pending"
    assert worker.drain(db.session, gateway, POLICY, now + dt.timedelta(seconds=31)) == 1
    headers, body = handler.received[-1]
    assert body == {"id": message_id, "kind": "sms", "to": "13800000000", "text": "您的诉求已办结 0"}
    assert headers["Idempotency-Key"] == message_id and headers["Authorization"] == "Bearer provider-token"
    assert len(handler.received) == 2 and rows()[message_id].status == "sent"


def test_http_gateway_refusal_is_permanent(app, receiver):
    url, handler = receiver
    (message_id,) = queue(1)
    handler.answers = [400]
    worker.drain(db.session, HttpGateway(url, timeout=5), POLICY)
    assert rows()[message_id].status == "failed" and "HTTP 400" in rows()[message_id].last_error


def test_gateway_settings_are_checked(app):
    assert isinstance(gateway_from_config({"OUTBOX_GATEWAY": "log"}), LogGateway)
    with pytest.raises(RuntimeError):
        gateway_from_config({"OUTBOX_GATEWAY": "http", "OUTBOX_HTTP_URL": None})
    with pytest.raises(RuntimeError):
        gateway_from_config({"OUTBOX_GATEWAY": "pigeon"})


def test_worker_once_from_the_command_line_sends_the_feedback_sms(world, runner):
    household = world.household(member="m1", phone="13900000001", sms_consent=True)
    answer = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "房屋漏水",
                                                         "description": "顶楼漏水"}).get_json()
    world.coordinator.post(f"/api/v1/requests/{answer['id']}/resolve", {"resolution": "已修补屋顶"})
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    (message,) = rows().values()
    assert message.status == "sent" and "已修补屋顶" in message.payload["text"]
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0
    assert rows()[message.id].attempts == 1  # not sent again


def test_worker_loop_runs_the_sweeps_and_delivers_until_stopped(world, app, monkeypatch):
    from sqlalchemy import update

    from sync.models import Household, Task

    household = world.household(member="m1", tags=["独居老人"])
    db.session.execute(update(Household).where(Household.id == household["id"])
                       .values(created_at=utcnow() - dt.timedelta(days=8)))
    db.session.commit()
    monkeypatch.setitem(app.config, "WORKER_POLL_SECONDS", 0.05)
    stop = threading.Event()
    errors = []

    def loop():
        try:
            with app.app_context():
                worker.run(stop)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        queue(3)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {m.status for m in rows().values()} != {"sent"}:
            db.session.commit()
            time.sleep(0.05)
    finally:
        db.session.commit()
        stop.set()
        thread.join(timeout=20)
    assert not errors and not thread.is_alive()
    assert {m.status for m in rows().values()} == {"sent"}
    (task,) = db.session.scalars(select(Task).where(Task.kind == "due_visit"))  # the sweep ran at start
    assert task.household_id == household["id"]
    db.session.commit()
