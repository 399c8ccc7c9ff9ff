"""Outgoing webhooks: events of the request loop and of overdue households, signed deliveries verified as
a receiver would, personal data within the grant, retries against a receiver that fails then recovers,
no duplicate across two workers, the delivery log and the replay."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from server import worker
from server.extensions import db
from server.gateways import KindRouter, LogGateway
from server.services.common import sync_settings
from server.services.sweeps import sweep_due_visits
from sync.models import OutboxMessage, WebhookDelivery, utcnow
from tests.conftest import op

POLICY = worker.OutboxPolicy(max_attempts=4, backoff_seconds=30, backoff_max_seconds=600, lease_seconds=60,
                             batch_size=5)
ALL_EVENTS = ["request.raised", "request.assigned", "request.resolved", "request.closed", "request.reopened",
              "household.overdue"]


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (docs/webhooks.md): recompute the HMAC of "t.body", compare in constant
    time, and refuse an old timestamp."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - timestamp) <= tolerance


class _Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, bytes]] = []
    lock = threading.Lock()
    delay = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        with self.lock:
            self.received.append((dict(self.headers), body))
            status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.answers, _Receiver.received, _Receiver.delay = [], [], 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", _Receiver
    server.shutdown()
    server.server_close()


def subscribe(world, url, events=ALL_EVENTS, grant="none", by=None, area=None):
    response = (by or world.coordinator).post("/api/v1/webhooks/subscriptions", {
        "area_id": (area or world.community)["id"], "name": "一网统管", "url": url, "event_types": events,
        "grant": grant})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def raise_request(world, household):
    response = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "照明",
                                                           "description": "楼道灯坏了，王秀英家门口", "urgency": "normal"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def gateway():
    """What the worker runs: SMS to the configured gateway, webhooks to the webhook gateway."""
    return KindRouter(LogGateway(), {"webhook": worker.webhook_gateway(db.session, 5)})


def drain(now=None):
    db.session.commit()  # hold no transaction while the worker claims (SQLite has one writer)
    return worker.drain(db.session, gateway(), POLICY, now)


def bodies(handler):
    return [json.loads(body) for _, body in handler.received]


def test_deliveries_are_signed_and_verify_as_a_receiver_checks_them(world, receiver):
    url, handler = receiver
    subscription = subscribe(world, url)
    assert "secret" in subscription and len(subscription["secret"]) >= 32
    listed = world.coordinator.get("/api/v1/webhooks/subscriptions").get_json()["items"]
    assert [s["id"] for s in listed] == [subscription["id"]] and "secret" not in listed[0]
    request = raise_request(world, world.household(phone="13812345678"))
    assert drain() == 1

    (headers, body), = handler.received
    assert verify(subscription["secret"], headers["Lianhu-Signature"], body, time.time())
    assert not verify(subscription["secret"], headers["Lianhu-Signature"], body.replace(b"open", b"shut"),
                      time.time())
    assert not verify("another-secret", headers["Lianhu-Signature"], body, time.time())
    assert not verify(subscription["secret"], headers["Lianhu-Signature"], body, time.time() + 3600)  # too old
    event = json.loads(body)
    assert headers["Lianhu-Event"] == event["type"] == "request.raised"
    assert headers["Lianhu-Delivery"] == event["id"]
    assert (event["version"], event["subscription_id"], event["community_id"]) == \
        (1, subscription["id"], world.community["id"])
    assert event["data"]["request"]["id"] == request["id"] and event["data"]["request"]["category"] == "照明"
    # grant "none": ids and categories only, no names, phones, addresses or free text
    text = body.decode()
    for personal in ("王秀英", "13812345678", "5678", "幸福路", "楼道灯坏了"):
        assert personal not in text


def test_the_loop_moves_become_events_and_a_refused_move_sends_nothing(world, receiver):
    url, handler = receiver
    subscribe(world, url)
    household = world.household(member="m1")
    request = raise_request(world, household)
    base = f"/api/v1/requests/{request['id']}"
    assert world.coordinator.post(f"{base}/assign", {"handler": "物业"}).status_code == 200
    assert world.coordinator.post(f"{base}/assign", {"handler": "街道"}).status_code == 200  # re-assigned
    assert world.coordinator.post(f"{base}/resolve", {"resolution": "已更换灯泡"}).status_code == 200
    tablet = world.tablet("m1")
    results = tablet.push([op("request_event", str(uuid.uuid4()), data={
        "request_id": request["id"], "action": "feedback_delivered", "channel": "in_person", "satisfaction": 5,
        "occurred_at": utcnow().isoformat()}, recorded_at=utcnow().isoformat())],
        client_time=utcnow().isoformat())["results"]
    assert results[0]["status"] == "applied", results
    refused = world.coordinator.post(f"{base}/resolve", {"resolution": "再次"})
    assert refused.status_code == 409  # rolled back: no event for it
    assert world.coordinator.post(f"{base}/reopen", {"note": "又坏了"}).status_code == 200
    drain()
    events = sorted(bodies(handler), key=lambda e: e["occurred_at"])
    assert [e["type"] for e in events] == ["request.raised", "request.assigned", "request.assigned",
                                           "request.resolved", "request.closed", "request.reopened"]
    assert [e["data"]["request"]["handler"] for e in events[1:3]] == ["物业", "街道"]
    assert events[4]["data"]["request"]["satisfaction"] == 5


def test_personal_data_follows_the_grant_and_only_admins_grant_it(world, receiver):
    url, handler = receiver
    refused = world.coordinator.post("/api/v1/webhooks/subscriptions", {
        "area_id": world.community["id"], "name": "平台", "url": url, "event_types": ["request.raised"],
        "grant": "contact"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    subscribe(world, url, ["request.raised"], grant="contact", by=world.admin)
    raise_request(world, world.household(phone="13812345678"))
    drain()
    (event,) = bodies(handler)
    assert event["data"]["household"]["head_name"] == "王秀英"
    assert event["data"]["household"]["phone_masked"] == "138****5678"
    assert "13812345678" not in json.dumps(event, ensure_ascii=False)
    assert event["data"]["request"]["description"] == "楼道灯坏了，王秀英家门口"


def test_subscriptions_hear_their_own_area_and_event_types_only(world, receiver):
    url, handler = receiver
    subscribe(world, url, ["request.resolved"], area=world.grid)
    subscribe(world, url, ["request.raised"], by=world.other_coordinator, area=world.other_community)
    raise_request(world, world.household())
    drain()
    assert handler.received == []
    assert world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["total"] == 0
    assert world.other_coordinator.get("/api/v1/webhooks/deliveries").get_json()["total"] == 0


def test_retries_with_back_off_until_the_receiver_recovers_and_the_log_shows_each_try(world, receiver):
    url, handler = receiver
    subscribe(world, url, ["request.raised"])
    raise_request(world, world.household())
    handler.answers = [503, 500]
    now = utcnow()
    assert drain(now) == 0
    assert drain(now + dt.timedelta(seconds=10)) == 0  # not due yet: back-off is 30 s
    assert len(handler.received) == 1
    assert drain(now + dt.timedelta(seconds=31)) == 0  # second failure, next wait 60 s
    assert drain(now + dt.timedelta(seconds=95)) == 1
    assert len(handler.received) == 3
    assert len({json.loads(b)["id"] for _, b in handler.received}) == 1  # the same event each time

    log = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()
    (delivery,) = log["items"]
    assert delivery["status"] == "delivered" and delivery["event_type"] == "request.raised"
    assert [(a["status_code"], a["outcome"]) for a in delivery["attempts"]] == \
        [(503, "retrying"), (500, "retrying"), (200, "delivered")]
    assert all(a["duration_ms"] >= 0 and a["at"].endswith("Z") for a in delivery["attempts"])
    assert world.coordinator.get("/api/v1/webhooks/deliveries?status=failed").get_json()["total"] == 0


def test_a_refusal_is_final_and_an_unreachable_receiver_is_retried(world, receiver):
    url, handler = receiver
    subscribe(world, url, ["request.raised"])
    raise_request(world, world.household())
    handler.answers = [410]
    drain()
    (delivery,) = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["items"]
    assert delivery["status"] == "failed" and delivery["attempts"][0]["status_code"] == 410

    subscribe(world, "http://127.0.0.1:9/nobody-listens", ["request.raised"])
    raise_request(world, world.household("幸福路2号"))
    drain()
    retrying = world.coordinator.get("/api/v1/webhooks/deliveries?status=retrying").get_json()["items"]
    assert len(retrying) == 1 and retrying[0]["attempts"][0]["status_code"] is None
    assert "unreachable" in retrying[0]["attempts"][0]["error"]


def test_two_workers_deliver_each_event_exactly_once(app, world, receiver):
    url, handler = receiver
    handler.delay = 0.003
    subscribe(world, url, ["request.raised"])
    households = [world.household(f"幸福路{n}号") for n in range(24)]
    for household in households:
        raise_request(world, household)
    db.session.commit()
    errors, barrier, sent = [], threading.Barrier(2), {}

    def work(name):
        try:
            with app.app_context():
                barrier.wait()
                sent[name] = worker.drain(db.session, gateway(), POLICY)
        except Exception as exc:  # a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    ids = [json.loads(body)["id"] for _, body in handler.received]
    assert len(ids) == len(set(ids)) == 24
    assert sent["w1"] + sent["w2"] == 24 and sent["w1"] > 0 and sent["w2"] > 0
    db.session.expire_all()
    statuses = db.session.execute(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)).all()
    assert dict(statuses) == {"delivered": 24}
    assert all(len(d.attempts) == 1 for d in db.session.scalars(select(WebhookDelivery)))


def test_replay_sends_the_same_event_again_signed_afresh(world, receiver):
    url, handler = receiver
    subscription = subscribe(world, url, ["request.raised"])
    raise_request(world, world.household())
    drain()
    (delivery,) = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["items"]
    response = world.coordinator.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert response.status_code == 200 and response.get_json()["status"] == "pending"
    assert drain() == 1
    (first_headers, first), (again_headers, again) = handler.received
    assert first == again and json.loads(again)["id"] == delivery["id"]
    assert verify(subscription["secret"], again_headers["Lianhu-Signature"], again, time.time())
    replayed = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["items"][0]
    assert [a["outcome"] for a in replayed["attempts"]] == ["delivered", "delivered"]
    # another community's coordinator cannot replay it; a missing one is the same 404
    for caller, target in ((world.other_coordinator, delivery["id"]), (world.coordinator, str(uuid.uuid4()))):
        response = caller.post(f"/api/v1/webhooks/deliveries/{target}/replay")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_an_overdue_household_is_announced_once_per_overdue_spell(world, receiver):
    url, handler = receiver
    subscribe(world, url, ["household.overdue"])
    world.household(member="m1", visit_interval_days=7)
    world.household("幸福路2号", visit_interval_days=7)  # no member: announced too, as unpaired
    world.household("和平路9号", area=world.other_building, by=world.other_coordinator,
                    visit_interval_days=7)  # another community's: not this subscription's business
    later = utcnow() + dt.timedelta(days=8)
    for _ in range(2):  # the sweep runs again: no second announcement
        sweep_due_visits(db.session, sync_settings(), later)
        db.session.commit()
    drain()
    events = bodies(handler)
    assert sorted((e["type"], e["data"]["paired"]) for e in events) == \
        [("household.overdue", False), ("household.overdue", True)]
    assert all(e["data"]["days_overdue"] == 1 for e in events)


def test_a_switched_off_subscription_gets_nothing_more(world, receiver):
    url, handler = receiver
    subscription = subscribe(world, url, ["request.raised"])
    raise_request(world, world.household())
    response = world.coordinator.delete(f"/api/v1/webhooks/subscriptions/{subscription['id']}")
    assert response.status_code == 200 and response.get_json()["active"] is False
    raise_request(world, world.household("幸福路2号"))
    drain()
    assert handler.received == []
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    (delivery,) = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["items"]
    assert delivery["status"] == "failed"
    assert db.session.scalar(select(OutboxMessage.status).where(OutboxMessage.kind == "webhook")) == "failed"


def test_bad_subscriptions_get_the_one_error_shape(world):
    for body in ({"area_id": world.community["id"], "name": "x", "url": "ftp://x", "event_types": ["request.raised"]},
                 {"area_id": world.community["id"], "name": "x", "url": "http://x", "event_types": []},
                 {"area_id": world.community["id"], "name": "x", "url": "http://x", "event_types": ["nope"]},
                 {"area_id": world.community["id"], "name": "x", "url": "http://x", "event_types": ["request.raised"],
                  "grant": "everything"}):
        response = world.coordinator.post("/api/v1/webhooks/subscriptions", body)
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "validation_failed", body
    response = world.coordinator.post("/api/v1/webhooks/subscriptions", {
        "area_id": world.other_community["id"], "name": "x", "url": "http://x", "event_types": ["request.raised"]})
    assert response.status_code == 404


def test_the_console_subscribes_shows_the_log_and_replays(world, app, receiver):
    from tests.api.test_console import Console

    url, handler = receiver
    console = Console(app.test_client())
    console.login()
    assert console.get("/console/webhooks").status_code == 200
    page = console.client.post("/console/webhooks/subscriptions", data={
        "csrf_token": console.csrf, "name": "一网统管", "area_id": world.community["id"], "url": url,
        "grant": "none", "event_types": ["request.raised", "request.closed"]})
    assert page.status_code == 200
    secret = re.search(r'id="webhook-secret">([^<]+)<', page.get_data(as_text=True)).group(1)
    raise_request(world, world.household())
    handler.answers = [500]
    drain()
    log = console.get("/console/webhooks").get_data(as_text=True)
    assert "重试中" in log and "500" in log and "诉求提出" in log
    (delivery,) = world.coordinator.get("/api/v1/webhooks/deliveries").get_json()["items"]
    replayed = console.post(f"/console/webhooks/deliveries/{delivery['id']}/replay")
    assert replayed.status_code == 303
    drain(utcnow() + dt.timedelta(minutes=5))  # the waiting retry was replaced by the replay: sent once
    assert len(handler.received) == 2
    headers, body = handler.received[-1]
    assert verify(secret, headers["Lianhu-Signature"], body, time.time())
    assert "已送达" in console.get("/console/webhooks?status=delivered").get_data(as_text=True)
    assert console.get("/console/webhooks?status=nope").status_code == 422
