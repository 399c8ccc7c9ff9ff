"""Abuse limits: rate limits kept in the database, body and batch sizes, input limits, security headers."""
from __future__ import annotations

import uuid

import pytest

from server import create_app, ratelimit
from server.extensions import db
from tests.api.roles import assert_error
from tests.conftest import op

LOGIN = "/api/v1/auth/token"
ENROLL = "/api/v1/devices/enroll"


@pytest.fixture
def limits(app):
    """Real (small) limits for the length of one test."""
    saved = {k: app.config[k] for k in ("RATE_LIMIT_LOGIN_USER", "RATE_LIMIT_LOGIN_ADDRESS",
                                         "RATE_LIMIT_ENROLL_ADDRESS")}
    app.config.update(RATE_LIMIT_LOGIN_USER="3/300", RATE_LIMIT_LOGIN_ADDRESS="50/300",
                      RATE_LIMIT_ENROLL_ADDRESS="2/300")
    yield app.config
    app.config.update(saved)


def _assert_rate_limited(response, window_seconds: int) -> None:
    details = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    assert details["retry_after"] == retry_after


def test_login_attempts_per_username_are_limited_even_with_the_right_password(world, client, limits):
    for _ in range(3):
        assert_error(client.post(LOGIN, json={"username": "m1", "password": "wrong-password"}), 401,
                     "invalid_credentials")
    _assert_rate_limited(client.post(LOGIN, json={"username": "m1", "password": "password-123"}), 300)
    # the limit is per username: another person is not locked out by someone guessing at m1
    assert client.post(LOGIN, json={"username": "m2", "password": "password-123"}).status_code == 200


def test_usernames_are_counted_without_case_or_spaces(world, client, limits):
    for name in ("M1", " m1", "m1 "):
        client.post(LOGIN, json={"username": name, "password": "wrong-password"})
    _assert_rate_limited(client.post(LOGIN, json={"username": "m1", "password": "wrong-password"}), 300)


def test_login_attempts_per_address_are_limited(world, client, limits):
    limits["RATE_LIMIT_LOGIN_ADDRESS"] = "4/300"
    for index in range(4):
        client.post(LOGIN, json={"username": f"nobody-{index}", "password": "wrong-password"})
    _assert_rate_limited(client.post(LOGIN, json={"username": "coord", "password": "password-123"}), 300)
    # another address is not affected
    other = client.post(LOGIN, json={"username": "coord", "password": "password-123"},
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_enrollment_attempts_are_limited_per_address(world, client, limits):
    for _ in range(2):
        assert_error(client.post(ENROLL, json={"code": "AAAAA-BBBBB", "name": "guess"}), 401, "invalid_credentials")
    user = world.users["m1"]
    code = world.coordinator.post(f"/api/v1/users/{user['id']}/enrollment-codes").get_json()["code"]
    _assert_rate_limited(client.post(ENROLL, json={"code": code, "name": "tablet"}), 300)


def test_the_limit_holds_across_processes(world, app, limits):
    """Two app instances with engines of their own (as two gunicorn workers have) share one counter."""
    second = create_app({"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": app.config["SECRET_KEY"],
                         "INSTANCE_PATH": app.config["INSTANCE_PATH"], "TESTING": True,
                         "PASSWORD_HASH_METHOD": "pbkdf2:sha256:2000", "RATE_LIMIT_LOGIN_USER": "3/300"})
    try:
        first_client, second_client = app.test_client(), second.test_client()
        bad = {"username": "m2", "password": "wrong-password"}  # m2 has not logged in yet
        assert first_client.post(LOGIN, json=bad).status_code == 401
        assert second_client.post(LOGIN, json=bad).status_code == 401
        assert first_client.post(LOGIN, json=bad).status_code == 401
        _assert_rate_limited(second_client.post(LOGIN, json=bad), 300)
        _assert_rate_limited(first_client.post(LOGIN, json=bad), 300)
    finally:
        with second.app_context():
            db.session.close()
            db.engine.dispose()


def test_a_window_ends_and_counting_starts_again(app):
    limit = ratelimit.Limit.parse("2/60")
    start = 1_800_000_000.0  # the start of a 60-second window
    ratelimit.hit("test:key", limit, now=start)
    ratelimit.hit("test:key", limit, now=start + 1)
    with pytest.raises(ratelimit.RateLimitedError) as raised:
        ratelimit.hit("test:key", limit, now=start + 20)
    assert raised.value.retry_after == 40
    ratelimit.hit("test:key", limit, now=start + 60)  # the next window


@pytest.mark.parametrize("text", ["", "10", "0/60", "10/0", "ten/60", "-1/60", "10/60/2"])
def test_a_malformed_limit_setting_stops_the_app_at_start(monkeypatch, tmp_path, text):
    monkeypatch.setenv("RATE_LIMIT_LOGIN_USER", text)
    if text == "":
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "k" * 32,
                    "INSTANCE_PATH": str(tmp_path)})  # empty means the default
        return
    with pytest.raises(RuntimeError, match="RATE_LIMIT_LOGIN_USER"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "k" * 32,
                    "INSTANCE_PATH": str(tmp_path)})


def test_op_ids_must_be_kept_at_least_90_days(monkeypatch, tmp_path):
    monkeypatch.setenv("OP_LOG_DAYS", "30")
    with pytest.raises(RuntimeError, match="OP_LOG_DAYS"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "k" * 32,
                    "INSTANCE_PATH": str(tmp_path)})


# --- sizes ------------------------------------------------------------------------------------------


def test_a_body_past_the_maximum_is_413_body_too_large(world, app):
    padding = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = world.coordinator.post("/api/v1/households", {"area_id": world.building["id"], "address": padding})
    assert_error(response, 413, "body_too_large")


def test_a_push_past_2_mib_is_413_batch_too_large_and_applies_nothing(world, app):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    summary = "访" * 19_000  # under the 20,000-character limit, about 57 KB as UTF-8
    ops = [op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                 "visited_at": "2026-12-01T09:00:00+08:00", "summary": summary})
           for _ in range(40)]
    response = tablet.post("/api/v1/sync/push", {"batch_id": str(uuid.uuid4()),
                                                 "client_time": "2026-12-01T10:00:00+08:00", "ops": ops})
    assert_error(response, 413, "batch_too_large")
    assert not [c for c in tablet.pull_all() if c["entity"] == "visit"]


def test_a_push_of_501_ops_is_413_batch_too_large_and_applies_nothing(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    ops = [op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                 "visited_at": "2026-12-01T09:00:00+08:00"}) for _ in range(501)]
    response = tablet.post("/api/v1/sync/push", {"batch_id": str(uuid.uuid4()),
                                                 "client_time": "2026-12-01T10:00:00+08:00", "ops": ops})
    assert_error(response, 413, "batch_too_large")
    assert not [c for c in tablet.pull_all() if c["entity"] == "visit"]


@pytest.mark.parametrize("field, value", [
    ("address", "路" * 201),
    ("head_name", "王" * 201),
    ("notes", "记" * 20_001),
    ("tags", [f"tag-{i}" for i in range(51)]),
    ("tags", ["标" * 201]),
    ("address", "幸福路\x001号"),
])
def test_strings_and_lists_past_their_limits_are_422(world, field, value):
    body = {"area_id": world.building["id"], "address": "幸福路1号", field: value}
    details = assert_error(world.coordinator.post("/api/v1/households", body), 422, "validation_failed")
    assert field in details


def test_an_op_past_a_limit_is_rejected_with_validation_failed_not_the_batch(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    good = op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                 "visited_at": "2026-12-01T09:00:00+08:00"})
    too_long = op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                     "visited_at": "2026-12-01T09:00:00+08:00",
                                                     "summary": "x" * 20_001})
    too_big = op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                    "visited_at": "2026-12-01T09:00:00+08:00",
                                                    "observations": {"blob": "y" * 17_000}})
    results = tablet.push([good, too_long, too_big])["results"]
    assert [r["status"] for r in results] == ["applied", "rejected", "rejected"]
    assert {r["error"]["code"] for r in results[1:]} == {"validation_failed"}


# --- headers ----------------------------------------------------------------------------------------

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"}


@pytest.mark.parametrize("method, path, auth", [
    ("get", "/healthz", None),
    ("get", "/readyz", None),
    ("get", "/api/openapi.json", None),
    ("get", "/api/docs", None),
    ("get", "/api/v1/households", "coordinator"),
    ("get", "/api/v1/households", None),
    ("get", "/api/v1/no-such-route", None),
    ("delete", "/api/v1/households", "coordinator"),
    ("post", "/api/v1/auth/token", None),
    ("get", "/console/", None),
    ("get", "/nothing-here", None),
])
def test_security_headers_are_on_every_response(world, client, method, path, auth):
    caller = getattr(world, auth) if auth else None
    headers = {"Authorization": f"Bearer {caller.token}"} if caller else {}
    response = getattr(client, method)(path, headers=headers, data="{" if method == "post" else None)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name, dict(response.headers))
    assert response.headers.get("X-Request-Id")
    if path.startswith("/api/"):
        assert response.headers.get("Cache-Control") == "no-store"
