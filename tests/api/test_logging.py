"""Structured logs: one JSON line per request and per worker job, and no personal data in any line."""
from __future__ import annotations

import json
import logging
import uuid

import pytest

from server.extensions import db
from server.logging import JsonFormatter
from sync.models import OutboxMessage
from tests.conftest import op

NAME, PHONE, ADDRESS, SUMMARY = "张秀兰", "13912345678", "幸福路88号3单元", "老人腿脚不便，需要轮椅"


@pytest.fixture
def lines(caplog):
    """Every log record of the test, as the JSON line the handler writes."""
    caplog.set_level(logging.INFO)
    formatter = JsonFormatter()
    return lambda: [json.loads(formatter.format(record)) for record in caplog.records]


def request_lines(lines):
    return [line for line in lines() if line["logger"] == "lianhu.request"]


def test_one_line_per_request_with_its_fields(world, lines):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    count_before = len(request_lines(lines))
    response = tablet.push([op("visit", str(uuid.uuid4()), data={
        "household_id": household["id"], "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"})] * 1
        + [op("visit", str(uuid.uuid4()), data={"kind": "nonsense"})])
    pulled = tablet.get("/api/v1/sync/pull", headers={"X-Request-Id": "trace-me-42"})
    new = request_lines(lines)[count_before:]
    assert len(new) == 2
    push, pull = new
    assert push["endpoint"] == "sync.Push" and push["method"] == "POST" and push["status"] == 200
    assert (push["ops_in"], push["ops_out"]) == (2, len(response["results"]))
    assert push["device_id"] == tablet.device_id and push["user_id"] == world.users["m1"]["id"]
    assert isinstance(push["duration_ms"], float) and push["duration_ms"] >= 0
    assert uuid.UUID(push["request_id"])
    assert pull["request_id"] == "trace-me-42" == pulled.headers["X-Request-Id"]
    assert pull["ops_out"] == len(pulled.get_json()["changes"]) and "ops_in" not in pull
    assert pull["ts"].endswith("+00:00") and pull["level"] == "INFO"


def test_errors_and_unmatched_routes_are_logged_too(client, lines):
    client.get("/api/v1/households")  # no token
    client.get("/no/such/page")
    unauthenticated, unmatched = request_lines(lines)[-2:]
    assert (unauthenticated["endpoint"], unauthenticated["status"], unauthenticated["user_id"]) == \
        ("households.Households", 401, None)
    assert (unmatched["endpoint"], unmatched["status"]) == ("unmatched", 404)


def test_a_user_call_logs_the_user_and_no_device(world, lines):
    world.coordinator.get("/api/v1/households")
    line = request_lines(lines)[-1]
    assert line["user_id"] == world.users["coord"]["id"] and line["device_id"] is None


def test_no_personal_data_in_any_line(world, runner, lines):
    household = world.household(address=ADDRESS, member="m1", phone=PHONE)
    world.coordinator.patch(f"/api/v1/households/{household['id']}",
                            {"base_version": household["version"], "head_name": NAME})
    world.coordinator.get(f"/api/v1/households?q={NAME}")  # a search puts a name in the query string
    tablet = world.tablet("m1")
    tablet.push([op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                      "visited_at": "2026-12-01T09:00:00+08:00", "summary": SUMMARY}),
                 op("resident", str(uuid.uuid4()), data={"household_id": household["id"], "name": NAME,
                                                         "phone": PHONE, "relation": "x" * 500})])  # rejected
    tablet.pull_all()
    world.client.post("/api/v1/auth/token", json={"username": NAME, "password": "wrong-password"})
    db.session.add(OutboxMessage(kind="sms", payload={"to": PHONE, "text": f"{NAME}您好，您反映的问题已解决"}))
    db.session.commit()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output

    every = lines()
    jobs = [line for line in every if line["logger"] == "lianhu.job"]
    assert {line["job"] for line in jobs} >= {"outbox_delivery", "sweep"}
    delivery = next(line for line in jobs if line["job"] == "outbox_delivery")
    assert delivery["status"] == "sent" and delivery["duration_ms"] >= 0
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in every)
    for secret in (NAME, PHONE, ADDRESS, SUMMARY, "wrong-password"):
        assert secret not in text
    assert "?q=" not in text and "/api/v1/households" not in text  # endpoints, never paths


def test_the_formatter_keeps_tracebacks_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("lianhu.errors", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "failed here" and "ValueError: boom" in parsed["exc"]
