"""The one error shape for every error: malformed bodies, wrong content types, unknown routes, wrong methods,
oversized bodies, unexpected exceptions and an absent database; never a 500 for bad input, never HTML."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from tests.api.roles import assert_error

LOGIN = "/api/v1/auth/token"


def _coordinator_calls(world):
    """Every JSON-body call of the accounts and households sections, as (method, path)."""
    household = world.household()
    return [
        ("post", "/api/v1/areas"),
        ("post", "/api/v1/users"),
        ("post", "/api/v1/households"),
        ("patch", f"/api/v1/households/{household['id']}"),
        ("put", f"/api/v1/households/{household['id']}/pairing"),
    ]


def _send(api, method, path, data, content_type="application/json"):
    return getattr(api.client, method)(path, data=data, content_type=content_type, headers=api._headers())


# --- bodies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b'{"username": "a",}', b"{'username': 'a'}", b"nul", b"\xff\xfe{}",
                                 b'{"username": "\\ud800"}' + b"x", b"  ", b"[1, 2"])
def test_malformed_json_is_400(client, raw):
    response = client.post(LOGIN, data=raw, content_type="application/json")
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[]", b'["username"]', b'"username"', b"42", b"true", b"null"])
def test_a_json_body_that_is_not_an_object_is_422(client, raw):
    response = client.post(LOGIN, data=raw, content_type="application/json")
    assert_error(response, 422, "validation_failed")


def test_an_empty_body_is_a_list_of_missing_fields(client):
    details = assert_error(client.post(LOGIN, data=b"", content_type="application/json"), 422, "validation_failed")
    assert set(details) == {"username", "password"}
    assert set(assert_error(client.post(LOGIN), 422, "validation_failed")) == {"username", "password"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/octet-stream", "application/json; charset=utf-8"])
def test_a_json_body_is_read_whatever_its_content_type(world, content_type):
    body = json.dumps({"username": "coord", "password": "password-123"})
    kwargs = {"content_type": content_type} if content_type else {}
    response = world.client.post(LOGIN, data=body, **kwargs)
    assert response.status_code == 200, response.get_json()
    created = world.client.post("/api/v1/areas", data=json.dumps({"name": "网格", "kind": "grid",
                                                                   "parent_id": world.community["id"]}),
                                headers={"Authorization": f"Bearer {response.get_json()['token']}"}, **kwargs)
    assert created.status_code == 201, created.get_json()


def test_a_form_body_is_not_json(client):
    response = client.post(LOGIN, data={"username": "coord", "password": "password-123"})
    assert_error(response, 400, "malformed_json")


def test_a_body_past_the_limit_is_413(world, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"username": "coord", "password": "p" * limit})
    assert_error(world.client.post(LOGIN, data=body, content_type="application/json"), 413, "body_too_large")


@pytest.mark.parametrize("body", [
    [], "text", 12, None,
    {"name": {"nested": "object"}},
    {"name": "x" * 20001, "address": "x" * 20001, "username": "x" * 20001, "display_name": "x" * 20001},
    {"name": "\x00", "address": "\x00", "username": "\x00", "display_name": "\x00", "member_id": "\x00"},
    {"area_id": "\x00", "parent_id": "\x00", "member_id": "not-a-uuid", "base_version": "\x00"},
    {"kind": ["grid"], "role": {"a": 1}, "tags": [[1]], "base_version": 1e308, "visit_interval_days": -1e308},
    {"base_version": 2 ** 80, "visit_interval_days": 2 ** 80, "address": "好", "area_id": str(uuid.uuid4())},
    {"\x00": 1, "": 2, "键": 3},
])
def test_no_bad_body_gets_a_500_on_any_coordinator_call(world, body):
    for method, path in _coordinator_calls(world):
        response = _send(world.coordinator, method, path, json.dumps(body))
        assert 400 <= response.status_code < 500, (method, path, response.status_code, response.get_data()[:300])
        assert set(response.get_json()) == {"error"}


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/devices/enroll"])
@pytest.mark.parametrize("body", [[], None, {"code": None, "name": None}, {"username": "\x00", "password": "\x00"},
                                  {"code": "😀" * 40, "name": "😀"}, {"username": {"$ne": ""}, "password": "x"}])
def test_no_bad_body_gets_a_500_on_public_calls(client, path, body):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert 400 <= response.status_code < 500
    assert set(response.get_json()) == {"error"}


# --- routes and methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nope", "/nope", "/api/v2/areas", "/api/v1/households/not-a-uuid",
                                  "/api/v1/households/%00", "/api/v1/devices/x/revoke", "/api/v1/areas/"
                                  + str(uuid.uuid4())])
def test_unknown_routes_are_404_in_the_error_shape(client, path):
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("method, path, allowed", [
    ("delete", "/api/v1/auth/token", {"POST"}),
    ("get", "/api/v1/auth/token", {"POST"}),
    ("put", "/api/v1/areas", {"GET", "POST"}),
    ("delete", "/api/v1/households", {"GET", "POST"}),
    ("delete", f"/api/v1/households/{uuid.uuid4()}", {"GET", "PATCH"}),
    ("get", f"/api/v1/households/{uuid.uuid4()}/pairing", {"PUT"}),
    ("get", "/api/v1/devices/enroll", {"POST"}),
    ("get", f"/api/v1/devices/{uuid.uuid4()}/revoke", {"POST"}),
    ("post", "/healthz", {"GET"}),
])
def test_wrong_methods_are_405_with_an_allow_header(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert_error(response, 405, "method_not_allowed")
    listed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= listed and listed <= allowed | {"HEAD", "OPTIONS"}


def test_a_wrong_method_needs_no_token_to_be_told_so(world):
    """405 comes from routing, before any token is checked."""
    response = world.client.delete("/api/v1/areas", headers={"Authorization": "Bearer nonsense"})
    assert_error(response, 405, "method_not_allowed")


# --- the server's own failures ----------------------------------------------------------------------


def test_an_unexpected_exception_is_500_with_a_request_id_and_no_traceback(world, monkeypatch, caplog):
    from server.services import households

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(households, "search", explode)
    response = world.coordinator.get("/api/v1/households", headers={"X-Request-Id": "req-123"})
    details = assert_error(response, 500, "internal_error")
    assert details == {"request_id": "req-123"} and response.headers["X-Request-Id"] == "req-123"
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text and "<html" not in text.lower()
    assert any("req-123" in record.getMessage() and record.exc_info for record in caplog.records)


def test_a_request_id_is_made_when_none_is_sent(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first.headers["X-Request-Id"] and first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_a_database_that_is_away_is_503_with_retry_after(world, monkeypatch):
    from server.services import accounts

    def away(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(accounts, "list_areas", away)
    response = world.coordinator.get("/api/v1/areas")
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0


def test_api_answers_are_not_cached(world):
    assert world.coordinator.get("/api/v1/areas").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path, raw", [
    ("/api/v1/auth/token", b'{"username": "\\ud800", "password": "password-123"}'),
    ("/api/v1/devices/enroll", b'{"code": "AAAAA-BBBBB", "name": "\\uDC00"}'),
    ("/api/v1/households", b'{"address": "\\ud83d", "area_id": "00000000-0000-4000-8000-000000000000"}'),
    ("/api/v1/sync/push", b'{"batch_id": "\\udfff"}'),
    ("/api/v1/areas", b'{"\\ud800": 1}'),
])
def test_a_lone_surrogate_is_not_utf8_and_is_400(world, path, raw):
    """Valid JSON grammar, but no Unicode text: it must not reach the database (where it was a 500)."""
    tablet = world.tablet("m1")
    caller = tablet if "sync" in path else world.coordinator
    assert_error(_send(caller, "post", path, raw), 400, "malformed_json")


def test_an_escaped_surrogate_pair_is_text_and_round_trips(world):
    raw = json.dumps({"area_id": world.building["id"], "address": "幸福路😀1号"}).encode()  # ensure_ascii: \ud83d\ude00
    assert b"\\ud83d\\ude00" in raw
    response = _send(world.coordinator, "post", "/api/v1/households", raw)
    assert response.status_code == 201 and response.get_json()["address"] == "幸福路😀1号"


def test_percent_encoded_bad_utf8_in_a_query_is_no_500(world):
    response = world.coordinator.get("/api/v1/households?q=%ED%A0%80%FF")
    assert response.status_code in (200, 422)
