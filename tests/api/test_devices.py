"""POST /devices/enroll, GET /devices, POST /devices/{id}/revoke and /resync: codes, tokens, revocation."""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from sqlalchemy import select, update

from server.extensions import db
from sync.models import Device, EnrollmentCode
from tests.api.roles import DENIED, assert_denied, assert_error, assert_page, callers
from tests.conftest import op

ENROLL = "/api/v1/devices/enroll"
DEVICES = "/api/v1/devices"


def _code(world, username="m1", by=None):
    response = (by or world.coordinator).post(f"/api/v1/users/{world.users[username]['id']}/enrollment-codes")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["code"]


def _enroll(world, code, name="平板一号", **extra):
    return world.client.post(ENROLL, json={"code": code, "name": name, **extra})


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


# --- enrollment -------------------------------------------------------------------------------------


def test_enroll_answers_a_device_token_that_acts_as_its_user(world):
    response = _enroll(world, _code(world), platform="android 14")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"device_id", "token", "user"}
    assert body["user"]["username"] == "m1" and body["user"]["id"] == world.users["m1"]["id"]
    assert len(body["token"]) * 6 >= 128
    pull = world.client.get("/api/v1/sync/pull", headers=_bearer(body["token"]))
    assert pull.status_code == 200
    device = db.session.get(Device, body["device_id"])
    assert device.name == "平板一号" and device.platform == "android 14"


def test_a_code_is_single_use(world):
    code = _code(world)
    assert _enroll(world, code).status_code == 201
    assert_error(_enroll(world, code, name="第二台"), 410, "code_used")
    assert db.session.scalar(select(Device).where(Device.name == "第二台")) is None


def test_an_expired_code_is_410(world):
    code = _code(world)
    db.session.execute(update(EnrollmentCode).values(
        expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    db.session.commit()
    assert_error(_enroll(world, code), 410, "code_used")


def test_an_unknown_code_is_401(world):
    assert_error(_enroll(world, "AAAAA-BBBBB"), 401, "invalid_credentials")


def test_codes_are_typed_forgivingly(world):
    code = _code(world)
    typed = " " + code.lower().replace("-", " ") + " "
    assert _enroll(world, typed).status_code == 201


def test_a_code_of_a_disabled_user_does_not_enroll(world):
    from sync.models import User

    code = _code(world)
    db.session.execute(update(User).where(User.username == "m1").values(active=False))
    db.session.commit()
    assert_error(_enroll(world, code), 410, "code_used")


def test_device_tokens_and_codes_are_stored_only_as_hashes(world):
    code = _code(world)
    token = _enroll(world, code).get_json()["token"]
    db.session.rollback()
    stored = "\n".join(str(v) for model in (Device, EnrollmentCode)
                       for row in db.session.execute(select(model.__table__)).all() for v in row)
    assert token not in stored
    assert code not in stored and code.replace("-", "") not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_enroll_needs_no_token_and_ignores_a_revoked_one(world):
    revoked = callers(world)["revoked_device"]
    response = world.client.post(ENROLL, json={"code": _code(world, "m2"), "name": "换新平板"},
                                 headers=_bearer(revoked.token))
    assert response.status_code == 201  # a wiped tablet may be enrolled again with a new code


@pytest.mark.parametrize("body, field", [
    ({"name": "平板"}, "code"),
    ({"code": "AAAAA-BBBBB"}, "name"),
    ({"code": "", "name": "平板"}, "code"),
    ({"code": "A" * 41, "name": "平板"}, "code"),
    ({"code": 12345, "name": "平板"}, "code"),
    ({"code": "AAAAA-BBBBB", "name": ""}, "name"),
    ({"code": "AAAAA-BBBBB", "name": "板" * 201}, "name"),
    ({"code": "AAAAA-BBBBB", "name": "平\x00板"}, "name"),
    ({"code": "AAAAA-BBBBB", "name": "平板", "platform": 14}, "platform"),
    ({"code": "AAAAA-BBBBB", "name": "平板", "platform": "p" * 201}, "platform"),
    ({"code": "AAAAA-BBBBB", "name": "平板", "user_id": str(uuid.uuid4())}, "user_id"),
])
def test_enroll_input_is_validated(world, body, field):
    details = assert_error(world.client.post(ENROLL, json=body), 422, "validation_failed")
    assert field in details


def test_validation_does_not_use_up_a_code(world):
    code = _code(world)
    assert_error(_enroll(world, code, name=""), 422, "validation_failed")
    assert _enroll(world, code).status_code == 201


# --- listing ----------------------------------------------------------------------------------------


def test_get_devices_lists_the_tablets_of_users_in_scope(world):
    tablet = world.tablet("m1")
    body = world.coordinator.get(DEVICES).get_json()
    items = assert_page(body)
    assert [d["id"] for d in items] == [tablet.device_id]
    device = items[0]
    assert {"id", "user_id", "name", "last_seen_at", "revoked"} <= set(device)
    assert device["user_id"] == world.users["m1"]["id"] and device["revoked"] is False
    assert device["last_seen_at"].endswith("Z")
    assert world.other_coordinator.get(DEVICES).get_json()["total"] == 0
    assert world.admin.get(DEVICES).get_json()["total"] == 1


def test_get_devices_filters_by_user_and_pages(world):
    world.tablet("m1")
    world.tablet("m1")
    world.tablet("m2")
    only_m2 = world.coordinator.get(f"{DEVICES}?user_id={world.users['m2']['id']}").get_json()
    assert only_m2["total"] == 1 and only_m2["items"][0]["user_id"] == world.users["m2"]["id"]
    first = world.coordinator.get(f"{DEVICES}?per_page=2").get_json()
    second = world.coordinator.get(f"{DEVICES}?per_page=2&page=2").get_json()
    assert first["total"] == 3 and len(first["items"]) == 2 and len(second["items"]) == 1
    assert not {d["id"] for d in first["items"]} & {d["id"] for d in second["items"]}
    for query in ("per_page=0", "per_page=1001", "page=0", "user_id=tablet-1"):
        assert_error(world.coordinator.get(f"{DEVICES}?{query}"), 422, "validation_failed")


def test_a_pull_updates_last_seen(world):
    tablet = world.tablet("m1")
    db.session.execute(update(Device).values(last_seen_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    db.session.commit()
    tablet.pull_all()
    seen = world.coordinator.get(DEVICES).get_json()["items"][0]["last_seen_at"]
    assert not seen.startswith("2026-01-01")


@pytest.mark.parametrize("role", sorted(DENIED))
def test_device_administration_is_for_coordinators_only(world, role):
    caller = callers(world)[role]
    target = world.tablet("m1").device_id
    assert_denied(caller.get(DEVICES), role)
    assert_denied(caller.post(f"{DEVICES}/{target}/revoke"), role)
    assert_denied(caller.post(f"{DEVICES}/{target}/resync"), role)


def test_a_coordinators_own_tablet_never_reaches_coordinators_calls(world):
    world.users["coord"]["id"]  # the coordinator enrolls a tablet for itself
    code = _code(world, "coord")
    token = _enroll(world, code).get_json()["token"]
    for path in (DEVICES, "/api/v1/areas", "/api/v1/households", "/api/v1/users"):
        assert_error(world.client.get(path, headers=_bearer(token)), 403, "forbidden")


# --- revocation -------------------------------------------------------------------------------------


def test_revoke_answers_the_device_and_the_tablet_must_wipe_on_every_call(world):
    tablet = world.tablet("m1")
    household = world.household(member="m1")
    tablet.pull_all()
    response = world.coordinator.post(f"{DEVICES}/{tablet.device_id}/revoke")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == tablet.device_id and body["revoked"] is True and body["revoked_at"].endswith("Z")
    push_body = {"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00",
                 "ops": [op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                              "visited_at": "2026-12-01T09:00:00+08:00"})]}
    calls = [
        tablet.get("/api/v1/sync/pull"),
        tablet.get(f"/api/v1/sync/pull?cursor={tablet.cursor}"),
        tablet.post("/api/v1/sync/push", push_body),
        tablet.post("/api/v1/sync/push", {"bogus": 1}),
        tablet.get("/api/v1/households"),
        tablet.get(f"/api/v1/households/{household['id']}"),
        tablet.get(DEVICES),
        tablet.post(f"{DEVICES}/{tablet.device_id}/revoke"),
        tablet.get("/api/v1/areas"),
    ]
    for response in calls:
        assert_error(response, 401, "device_revoked")
    # nothing the revoked tablet sent was applied
    from sync.models import Visit

    assert db.session.scalar(select(Visit.id)) is None


def test_revoking_one_tablet_leaves_the_users_other_tablets_working(world):
    lost, kept = world.tablet("m1"), world.tablet("m1")
    assert world.coordinator.post(f"{DEVICES}/{lost.device_id}/revoke").status_code == 200
    assert_error(lost.get("/api/v1/sync/pull"), 401, "device_revoked")
    assert kept.get("/api/v1/sync/pull").status_code == 200
    assert world.login("m1").get("/api/v1/areas").status_code == 403  # the user's own login is untouched


def test_revoke_is_idempotent_and_listed(world):
    tablet = world.tablet("m1")
    first = world.coordinator.post(f"{DEVICES}/{tablet.device_id}/revoke").get_json()
    again = world.coordinator.post(f"{DEVICES}/{tablet.device_id}/revoke")
    assert again.status_code == 200 and again.get_json()["revoked_at"] == first["revoked_at"]
    assert world.coordinator.get(DEVICES).get_json()["items"][0]["revoked"] is True


def test_revoke_and_resync_out_of_scope_are_404(world):
    tablet = world.tablet("m1")
    for action in ("revoke", "resync"):
        assert_error(world.other_coordinator.post(f"{DEVICES}/{tablet.device_id}/{action}"), 404, "not_found")
        assert_error(world.coordinator.post(f"{DEVICES}/{uuid.uuid4()}/{action}"), 404, "not_found")
        assert_error(world.coordinator.post(f"{DEVICES}/not-a-uuid/{action}"), 404, "not_found")
    assert tablet.get("/api/v1/sync/pull").status_code == 200  # the other coordinator changed nothing


def test_resync_makes_the_next_pull_start_again(world):
    tablet = world.tablet("m1")
    world.household(member="m1")
    tablet.pull_all()
    response = world.coordinator.post(f"{DEVICES}/{tablet.device_id}/resync")
    assert response.status_code == 200 and response.get_json()["id"] == tablet.device_id
    assert_error(tablet.get(f"/api/v1/sync/pull?cursor={tablet.cursor}"), 410, "cursor_expired")
    assert tablet.get("/api/v1/sync/pull").status_code == 200
