"""/metrics: exact counts after a known sequence of pushes and pulls, database gauges, and who may scrape."""
from __future__ import annotations

import datetime as dt
import ipaddress
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.extensions import db
from server.metrics import Metrics
from sync.models import Device, OutboxMessage, Request, Task, utcnow
from tests.conftest import op

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def metrics(app, monkeypatch):
    """A fresh registry for this test (the app lives for the whole session), scrapeable with TOKEN."""
    monkeypatch.setitem(app.extensions, "lianhu_metrics", Metrics(None))
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "METRICS_ALLOW_CIDRS", ())


def scrape(client) -> dict:
    """``{(name, ((label, value), ...)): value}`` of every sample."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def visit(household_id):
    return {"household_id": household_id, "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"}


def test_counts_after_a_known_sequence_of_pushes_and_pulls(world, metrics):
    household = world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    base = household["version"]
    batch = [
        op("visit", str(uuid.uuid4()), data=visit(household["id"])),
        op("resident", str(uuid.uuid4()), data={"household_id": household["id"], "name": "李四"}),
        op("visit", str(uuid.uuid4()), data={**visit(household["id"]), "kind": "party"}),   # validation_failed
        op("visit", str(uuid.uuid4()), data=visit(str(uuid.uuid4()))),                      # not_found
        {**op("household", str(uuid.uuid4())), "entity": "spaceship"},                      # validation_failed
    ]
    first = a.push(batch, batch_id="00000000-0000-4000-8000-000000000001")
    assert [r["status"] for r in first["results"]] == ["applied", "applied", "rejected", "rejected", "rejected"]
    assert [r["error"]["code"] for r in first["results"][2:]] == ["validation_failed", "not_found",
                                                                  "validation_failed"]
    a.push(batch, batch_id="00000000-0000-4000-8000-000000000001")  # a lost answer: replayed, nothing counted
    a.push([batch[0]])  # the same op in a new batch: duplicate
    a.push([op("household", household["id"], "update", {"notes": "A", "head_name": "王秀兰"}, base_version=base,
               recorded_at="2026-12-01T09:00:00+08:00")])
    merged = b.push([op("household", household["id"], "update", {"notes": "B"}, base_version=base,
                        recorded_at="2026-12-01T09:10:00+08:00")])["results"][0]
    assert merged["status"] == "merged" and len(merged["conflicts"]) == 1
    a.push([], expect=200)
    a.push([op("visit", str(uuid.uuid4()), data=visit(household["id"]))] * 501, expect=413)  # counted nowhere

    pages = changes = 0
    while True:
        query = "/api/v1/sync/pull?limit=2" + (f"&cursor={b.cursor}" if b.cursor else "")
        page = b.get(query).get_json()
        pages, changes, b.cursor = pages + 1, changes + len(page["changes"]), page["cursor"]
        if not page["has_more"]:
            break
    assert b.get("/api/v1/sync/pull?cursor=garbled").status_code == 400  # no page

    samples = scrape(world.client)
    assert value(samples, "lianhu_sync_pushes_total", outcome="applied") == 5
    assert value(samples, "lianhu_sync_pushes_total", outcome="replayed") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="visit", status="applied") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="resident", status="applied") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="visit", status="rejected") == 2
    assert value(samples, "lianhu_sync_ops_total", entity="invalid", status="rejected") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="visit", status="duplicate") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="household", status="applied") == 1
    assert value(samples, "lianhu_sync_ops_total", entity="household", status="merged") == 1
    assert sum(v for (name, _), v in samples.items() if name == "lianhu_sync_ops_total") == 8
    assert value(samples, "lianhu_sync_conflicts_total", entity="household") == 1
    assert value(samples, "lianhu_sync_rejected_ops_total", code="validation_failed") == 2
    assert value(samples, "lianhu_sync_rejected_ops_total", code="not_found") == 1
    # b's first pull: the household, the resident and the visit (the rejected ops never reached the database)
    assert changes == 3 and pages == 2
    assert value(samples, "lianhu_sync_pull_pages_total") == pages
    assert value(samples, "lianhu_sync_pulled_changes_total", action="upsert") == changes
    push, pull = dict(endpoint="sync.Push", method="POST"), dict(endpoint="sync.Pull", method="GET")
    assert value(samples, "lianhu_http_requests_total", status="200", **push) == 6
    assert value(samples, "lianhu_http_requests_total", status="413", **push) == 1
    assert value(samples, "lianhu_http_requests_total", status="200", **pull) == pages
    assert value(samples, "lianhu_http_requests_total", status="400", **pull) == 1
    assert value(samples, "lianhu_http_request_duration_seconds_count", **push) == 7
    assert value(samples, "lianhu_http_request_duration_seconds_bucket", le="+Inf", **pull) == pages + 1
    assert value(samples, "lianhu_http_request_duration_seconds_sum", **push) > 0
    # one series per route, never per raw path: no device id or household id in any label
    labels = {v for (_, pairs) in samples for _, v in pairs}
    assert not any(household["id"] in label or a.device_id in label for label in labels)


def test_a_push_that_rolls_back_is_not_counted(world, metrics, monkeypatch):
    from sync import push as push_engine

    household = world.household(member="m1")
    tablet = world.tablet("m1")
    original = push_engine.push

    def push_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        db.session.flush()
        raise RuntimeError("the database went away before commit")

    monkeypatch.setattr(push_engine, "push", push_then_fail)
    tablet.push([op("visit", str(uuid.uuid4()), data=visit(household["id"]))], expect=500)
    monkeypatch.setattr(push_engine, "push", original)
    samples = scrape(world.client)
    assert value(samples, "lianhu_sync_pushes_total", outcome="applied") == 0
    assert value(samples, "lianhu_sync_ops_total", entity="visit", status="applied") == 0
    assert value(samples, "lianhu_http_requests_total", endpoint="sync.Push", method="POST", status="500") == 1


def test_database_gauges_are_read_at_scrape_time(world, metrics):
    household = world.household(member="m1")
    now = utcnow()
    session = db.session
    for status, age in (("pending", 600), ("pending", 60), ("sending", 30), ("sent", 9000), ("failed", 9000)):
        session.add(OutboxMessage(kind="sms", payload={}, status=status, created_at=now - dt.timedelta(seconds=age)))
    common = dict(community_id=world.community["id"], household_id=household["id"])
    session.add(Task(kind="due_visit", status="open", **common))
    session.add(Task(kind="due_visit", status="done", **common))
    session.add(Task(kind="deliver_feedback", status="open", **common))
    for status, due in (("resolved", now - dt.timedelta(days=1)), ("resolved", now + dt.timedelta(days=1)),
                        ("closed", now - dt.timedelta(days=1))):
        session.add(Request(category="路灯", description="楼道灯坏了", status=status, feedback_due_at=due, **common))
    tablet = world.tablet("m1")
    world.tablet("m2")
    session.get(Device, tablet.device_id).created_at = now - dt.timedelta(days=30)
    session.commit()

    samples = scrape(world.client)
    assert value(samples, "lianhu_outbox_messages", status="pending") == 2
    assert value(samples, "lianhu_outbox_messages", status="sending") == 1
    assert value(samples, "lianhu_outbox_messages", status="failed") == 1
    assert 600 <= value(samples, "lianhu_outbox_oldest_age_seconds") < 660
    assert value(samples, "lianhu_due_visits") == 1
    assert value(samples, "lianhu_feedback_overdue") == 1
    assert value(samples, "lianhu_devices_flagged", flag="stale") == 1
    assert value(samples, "lianhu_devices_flagged", flag="backlog") == 0
    assert value(samples, "lianhu_workers") == 1


def _error_404(response):
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_metrics_are_off_without_a_token_or_network(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)
    monkeypatch.setitem(app.config, "METRICS_ALLOW_CIDRS", ())
    _error_404(client.get("/metrics"))
    _error_404(client.get("/metrics", headers={"Authorization": "Bearer anything"}))


def test_the_token_is_required_when_set(client, app, metrics):
    _error_404(client.get("/metrics"))
    _error_404(client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}))
    _error_404(client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}))
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_only_the_allowed_networks_may_scrape(client, app, metrics, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)
    monkeypatch.setitem(app.config, "METRICS_ALLOW_CIDRS", (ipaddress.ip_network("10.0.0.0/8"),))
    _error_404(client.get("/metrics"))  # the test client comes from 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    _error_404(client.get("/metrics", environ_base={"REMOTE_ADDR": "192.168.1.5"}))
    # with both set, both must hold
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    _error_404(client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}))
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"},
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_bad_network_setting_stops_the_app(monkeypatch, tmp_path):
    from server import config

    monkeypatch.setenv("METRICS_ALLOW_CIDRS", "10.0.0.0/8,not-a-network")
    with pytest.raises(RuntimeError, match="METRICS_ALLOW_CIDRS"):
        config.load({"SECRET_KEY": "x" * 32, "INSTANCE_PATH": str(tmp_path)})
