"""Fleet health: what tablets report in a push, the stale and backlog flags, and uploaded sync logs."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from server.extensions import db
from server.services import fleet
from sync.models import Device, DeviceLog, utcnow


def push_report(tablet, client, client_time=None):
    body = {"batch_id": str(uuid.uuid4()),
            "client_time": client_time or utcnow().isoformat(), "client": client, "ops": []}
    response = tablet.post("/api/v1/sync/push", body)
    assert response.status_code == 200, response.get_json()


def devices(world, query=""):
    response = world.coordinator.get(f"/api/v1/devices{query}")
    assert response.status_code == 200, response.get_json()
    return {d["id"]: d for d in response.get_json()["items"]}


def test_a_push_reports_versions_and_backlog(world):
    tablet = world.tablet("m1")
    oldest = (utcnow() - dt.timedelta(hours=3)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    push_report(tablet, {"app_version": "1.4.2", "schema_version": 1, "outbox_length": 12,
                         "oldest_unsynced_at": oldest.isoformat()})
    shown = devices(world)[tablet.device_id]
    assert (shown["app_version"], shown["schema_version"], shown["outbox_length"]) == ("1.4.2", 1, 12)
    reported = dt.datetime.fromisoformat(shown["oldest_unsynced_at"].replace("Z", "+00:00"))
    assert abs((reported - oldest).total_seconds()) < 5  # the tablet's clock is right: no correction
    assert shown["last_sync_at"] is not None and shown["flags"] == []
    # a later push without the fields keeps the versions; one with an empty outbox clears the backlog
    push_report(tablet, {"app_version": "1.4.3", "outbox_length": 0, "oldest_unsynced_at": None})
    shown = devices(world)[tablet.device_id]
    assert (shown["app_version"], shown["schema_version"], shown["outbox_length"]) == ("1.4.3", 1, 0)
    assert shown["oldest_unsynced_at"] is None


def test_oldest_unsynced_is_corrected_by_the_tablet_clock_offset(world):
    tablet = world.tablet("m1")
    now = utcnow()
    skew = dt.timedelta(hours=5)  # the tablet's clock runs five hours behind
    push_report(tablet, {"outbox_length": 3, "oldest_unsynced_at": (now - skew - dt.timedelta(hours=1)).isoformat()},
                client_time=(now - skew).isoformat())
    reported = db.session.get(Device, tablet.device_id).oldest_unsynced_at
    assert abs((reported - (now - dt.timedelta(hours=1))).total_seconds()) < 5


def test_flags_stale_and_backlog_and_the_filter(world, app):
    synced, stale, behind, revoked = (world.tablet("m1") for _ in range(4))
    now = utcnow()
    for tablet in (synced, stale, behind, revoked):
        push_report(tablet, {"outbox_length": 0})
    push_report(behind, {"outbox_length": 40,
                         "oldest_unsynced_at": (now - dt.timedelta(hours=app.config["FLEET_BACKLOG_HOURS"] + 1))
                         .isoformat()})
    long_ago = now - dt.timedelta(days=app.config["FLEET_STALE_DAYS"], hours=1)
    db.session.get(Device, stale.device_id).last_sync_at = long_ago
    db.session.get(Device, revoked.device_id).last_sync_at = long_ago
    db.session.commit()
    assert world.coordinator.post(f"/api/v1/devices/{revoked.device_id}/revoke").status_code == 200
    never = world.tablet("m2")  # enrolled long ago and never synced
    db.session.get(Device, never.device_id).created_at = long_ago
    db.session.commit()

    shown = devices(world)
    assert {d: shown[d]["flags"] for d in shown} == {
        synced.device_id: [], stale.device_id: ["stale"], behind.device_id: ["backlog"], revoked.device_id: [],
        never.device_id: ["stale"]}
    assert set(devices(world, "?flag=stale")) == {stale.device_id, never.device_id}
    assert set(devices(world, "?flag=backlog")) == {behind.device_id}
    assert fleet.flag_counts(db.session, app.config) == {"stale": 2, "backlog": 1}
    bad = world.coordinator.get("/api/v1/devices?flag=lost")
    assert bad.status_code == 422 and "flag" in bad.get_json()["error"]["details"]
    assert devices(world, f"?flag=stale&user_id={world.users['m1']['id']}") == {stale.device_id: shown[stale.device_id]}


def test_the_fleet_is_scoped(world):
    tablet = world.tablet("m1")
    assert tablet.device_id in devices(world)
    other = world.other_coordinator.get("/api/v1/devices").get_json()
    assert other["items"] == [] and other["total"] == 0
    assert tablet.get("/api/v1/devices").status_code == 403


# --- uploaded logs ----------------------------------------------------------------------------------


def upload(tablet, text, **extra):
    return tablet.post("/api/v1/devices/logs", {"text": text, **extra})


def test_a_tablet_uploads_a_log_and_its_coordinator_reads_it(world):
    tablet = world.tablet("m1")
    response = upload(tablet, "sync 09:30 push 12 ops: 200\n同步完成", app_version="1.4.2")
    assert response.status_code == 201, response.get_json()
    summary = response.get_json()
    assert summary["device_id"] == tablet.device_id and summary["app_version"] == "1.4.2"
    assert summary["size_bytes"] == len("sync 09:30 push 12 ops: 200\n同步完成".encode())
    listed = world.coordinator.get(f"/api/v1/devices/{tablet.device_id}/logs").get_json()
    assert listed["total"] == 1 and "text" not in listed["items"][0]
    one = world.coordinator.get(f"/api/v1/devices/{tablet.device_id}/logs/{summary['id']}")
    assert one.status_code == 200 and one.get_json()["text"] == "sync 09:30 push 12 ops: 200\n同步完成"


def test_logs_are_out_of_reach_outside_scope(world):
    tablet, other = world.tablet("m1"), world.tablet("m2")
    log_id = upload(tablet, "x").get_json()["id"]
    for path in (f"/api/v1/devices/{tablet.device_id}/logs", f"/api/v1/devices/{tablet.device_id}/logs/{log_id}"):
        response = world.other_coordinator.get(path)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
        assert tablet.get(path).status_code == 403  # a device token is no coordinator
    # another tablet's log id under this tablet's path is not found
    assert world.coordinator.get(f"/api/v1/devices/{other.device_id}/logs/{log_id}").status_code == 404
    # a user token (not a tablet's) cannot upload, nor can a caller without a token
    assert world.coordinator.post("/api/v1/devices/logs", {"text": "x"}).status_code == 403
    assert world.client.post("/api/v1/devices/logs", json={"text": "x"}).status_code == 401


def test_upload_limits(world, app, monkeypatch):
    monkeypatch.setitem(app.config, "DEVICE_LOG_MAX_BYTES", 1024)
    tablet = world.tablet("m1")
    assert upload(tablet, "a" * 1024).status_code == 201
    too_big = upload(tablet, "同" * 342)  # 1026 bytes in UTF-8, though only 342 characters
    assert too_big.status_code == 413
    assert too_big.get_json()["error"] == {"code": "body_too_large", "message": too_big.get_json()["error"]["message"],
                                           "details": {"max_bytes": 1024, "bytes": 1026}}
    for body in ({"text": "a\x00b"}, {"text": 5}, {}, {"text": "ok", "secret": 1}):
        response = tablet.post("/api/v1/devices/logs", body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["code"] == "validation_failed"
    assert db.session.scalar(select(func.count()).select_from(DeviceLog)) == 1


def test_only_the_newest_logs_of_a_tablet_are_kept(world, app, monkeypatch):
    monkeypatch.setitem(app.config, "DEVICE_LOG_KEEP_PER_DEVICE", 3)
    tablet, other = world.tablet("m1"), world.tablet("m2")
    upload(other, "other tablet")
    ids = [upload(tablet, f"log {i}").get_json()["id"] for i in range(5)]
    listed = world.coordinator.get(f"/api/v1/devices/{tablet.device_id}/logs").get_json()
    assert [item["id"] for item in listed["items"]] == ids[:1:-1]  # newest first, the two oldest dropped
    assert world.coordinator.get(f"/api/v1/devices/{other.device_id}/logs").get_json()["total"] == 1


def test_the_purge_command_drops_logs_past_their_days(world, app, runner):
    tablet = world.tablet("m1")
    old, new = (upload(tablet, text).get_json()["id"] for text in ("old", "new"))
    db.session.get(DeviceLog, old).created_at = utcnow() - dt.timedelta(days=app.config["DEVICE_LOG_DAYS"] + 1)
    db.session.commit()
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert list(db.session.scalars(select(DeviceLog.id))) == [new]


@pytest.mark.parametrize("name,value", [("DEVICE_LOG_MAX_BYTES", "10"), ("FLEET_STALE_DAYS", "0")])
def test_fleet_settings_are_checked_at_start(monkeypatch, tmp_path, name, value):
    from server import config

    monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=name):
        config.load({"SECRET_KEY": "x" * 32, "INSTANCE_PATH": str(tmp_path)})
