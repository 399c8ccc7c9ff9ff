"""POST /auth/token, bearer tokens, and how passwords and tokens are kept."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select, update
from werkzeug.security import check_password_hash

from server.extensions import db
from sync.models import ApiToken, User
from tests.api.roles import assert_error

LOGIN = "/api/v1/auth/token"


def _all_text_in(model) -> str:
    """Every column value of every row of ``model``, as one string (to look for secrets in)."""
    rows = db.session.execute(select(model.__table__)).all()
    return "\n".join(str(value) for row in rows for value in row)


def test_login_answers_a_token_and_the_user(world):
    response = world.client.post(LOGIN, json={"username": "coord", "password": "password-123"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "user"}
    assert set(body["user"]) == {"id", "username", "role", "display_name", "area_id"}
    assert body["user"]["username"] == "coord" and body["user"]["role"] == "coordinator"
    assert body["user"]["area_id"] == world.community["id"]
    # the token works as a bearer token
    areas = world.client.get("/api/v1/areas", headers={"Authorization": f"Bearer {body['token']}"})
    assert areas.status_code == 200


def test_tokens_are_random_and_at_least_128_bits(world):
    tokens = {world.login("coord").token for _ in range(5)}
    assert len(tokens) == 5
    for token in tokens:
        # URL-safe base64: 6 bits a character
        assert len(token) * 6 >= 128


def test_user_tokens_are_stored_only_as_hashes(world):
    token = world.login("coord").token
    db.session.rollback()
    stored = _all_text_in(ApiToken)
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_passwords_are_stored_hashed_and_salted(world):
    users = {u.username: u for u in db.session.scalars(select(User))}
    hashes = [users["m1"].password_hash, users["m2"].password_hash]
    assert "password-123" not in _all_text_in(User)
    assert all(check_password_hash(h, "password-123") for h in hashes)
    assert hashes[0] != hashes[1], "the same password must hash differently (salt)"


def test_the_default_password_hash_is_a_slow_one(app):
    from server import auth

    config = dict(app.config)
    app.config.pop("PASSWORD_HASH_METHOD")
    try:
        assert auth.hash_password("a-password").startswith("scrypt:")
    finally:
        app.config.update(config)


@pytest.mark.parametrize("username, password", [
    ("coord", "wrong-password"),
    ("nobody", "password-123"),
    ("COORD", "password-123"),
    ("coord", ""),
])
def test_bad_credentials_are_401_invalid_credentials_alike(world, username, password):
    response = world.client.post(LOGIN, json={"username": username, "password": password})
    details = assert_error(response, 401, "invalid_credentials")
    assert details == {}  # the answer never says whether the user exists


def test_a_user_without_a_password_cannot_log_in(world):
    created = world.coordinator.post("/api/v1/users", {"username": "nopass", "display_name": "无密码",
                                                       "role": "member", "area_id": world.grid["id"]})
    assert created.status_code == 201
    assert_error(world.client.post(LOGIN, json={"username": "nopass", "password": "anything-at-all"}),
                 401, "invalid_credentials")


def test_a_disabled_user_cannot_log_in_and_its_tokens_stop_working(world):
    member = world.login("m1")
    db.session.execute(update(User).where(User.username == "m1").values(active=False))
    db.session.commit()
    assert_error(world.client.post(LOGIN, json={"username": "m1", "password": "password-123"}),
                 401, "invalid_credentials")
    assert_error(member.get("/api/v1/areas"), 401, "unauthenticated")


def test_an_expired_token_is_401(world):
    coordinator = world.login("coord")
    db.session.execute(update(ApiToken).values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    db.session.commit()
    assert_error(coordinator.get("/api/v1/areas"), 401, "unauthenticated")


def test_tokens_expire_after_the_configured_lifetime(world, app):
    digest = hashlib.sha256(world.login("coord").token.encode()).hexdigest()
    db.session.rollback()
    token = db.session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).one()
    lifetime = token.expires_at - token.created_at
    assert abs(lifetime - dt.timedelta(hours=app.config["TOKEN_TTL_HOURS"])) < dt.timedelta(minutes=1)


@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic Y29vcmQ6cGFzc3dvcmQtMTIz",
    "Bearer not-a-token-anyone-was-given",
    "Token abc",
])
def test_missing_or_unknown_tokens_are_401_unauthenticated(world, header):
    headers = {"Authorization": header} if header is not None else {}
    assert_error(world.client.get("/api/v1/areas", headers=headers), 401, "unauthenticated")


def test_the_bearer_scheme_is_case_insensitive(world):
    token = world.login("coord").token
    assert world.client.get("/api/v1/areas", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize("body, fields", [
    ({}, {"username", "password"}),
    ({"username": "coord"}, {"password"}),
    ({"password": "password-123"}, {"username"}),
    ({"username": 5, "password": "password-123"}, {"username"}),
    ({"username": "coord", "password": ["password-123"]}, {"password"}),
    ({"username": None, "password": "password-123"}, {"username"}),
    ({"username": "coord", "password": "password-123", "remember": True}, {"remember"}),
    ({"username": "x" * 201, "password": "password-123"}, {"username"}),
    ({"username": "co\x00ord", "password": "password-123"}, {"username"}),
    ({"username": "coord", "password": "p" * 1001}, {"password"}),
])
def test_login_input_is_validated(world, body, fields):
    details = assert_error(world.client.post(LOGIN, json=body), 422, "validation_failed")
    assert set(details) == fields


def test_login_answers_chinese_display_names_exactly(world):
    created = world.coordinator.post("/api/v1/users", {"username": "zhang.wei", "display_name": "张伟（党员）𠀀",
                                                       "role": "member", "area_id": world.grid["id"],
                                                       "password": "password-123"})
    assert created.status_code == 201
    body = world.client.post(LOGIN, json={"username": "zhang.wei", "password": "password-123"}).get_json()
    assert body["user"]["display_name"] == "张伟（党员）𠀀"
