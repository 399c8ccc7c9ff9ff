"""Fleet health: which tablets are in trouble, and the sync logs they upload for support.

A tablet is ``stale`` when it has not synced for ``FLEET_STALE_DAYS`` (never synced: counted from its
enrollment): lost, broken, or its member needs help. It carries a ``backlog`` when, at its last push,
it still held ops besides that batch and the oldest of them was recorded more than
``FLEET_BACKLOG_HOURS`` ago: it syncs, but something keeps it from sending everything. Revoked tablets
are never flagged. The flags are SQL conditions, so the list filter, the console and the metrics agree.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from sync.errors import BodyTooLargeError, NotFoundError
from sync.models import Device, DeviceLog, utcnow
from sync.policy import Scope

from . import accounts
from .common import paginate

FLAGS = ("stale", "backlog")


def flag_clauses(config, now: dt.datetime) -> dict:
    """``flag name → SQL condition on Device``, the one definition of each flag."""
    live = Device.revoked_at.is_(None)
    return {
        "stale": and_(live, func.coalesce(Device.last_sync_at, Device.created_at)
                      < now - dt.timedelta(days=config["FLEET_STALE_DAYS"])),
        "backlog": and_(live, Device.outbox_length > 0,
                        Device.oldest_unsynced_at < now - dt.timedelta(hours=config["FLEET_BACKLOG_HOURS"])),
    }


def _flags_of(device: Device, config, now: dt.datetime) -> list[str]:
    """The same conditions as ``flag_clauses``, on a loaded row (so a page needs no query per flag)."""
    if device.revoked_at is not None:
        return []
    flags = []
    if (device.last_sync_at or device.created_at) < now - dt.timedelta(days=config["FLEET_STALE_DAYS"]):
        flags.append("stale")
    if (device.outbox_length or 0) > 0 and device.oldest_unsynced_at is not None and \
            device.oldest_unsynced_at < now - dt.timedelta(hours=config["FLEET_BACKLOG_HOURS"]):
        flags.append("backlog")
    return flags


def list_devices(session: Session, scope: Scope, config, user_id: str | None, flag: str | None,
                 page: int, per_page: int, now: dt.datetime | None = None) -> dict:
    """The tablets of the users in scope with last sync, versions, backlog and ``flags``;
    ``flag`` keeps only the tablets that carry it."""
    now = now or utcnow()
    stmt = accounts._devices_in_scope(scope)
    if user_id:
        stmt = stmt.where(Device.user_id == user_id)
    if flag:
        stmt = stmt.where(flag_clauses(config, now)[flag])
    answer = paginate(session, stmt, page, per_page, (Device.created_at, Device.id))
    for device in answer["items"]:
        device.flags = _flags_of(device, config, now)
    return answer


def flag_counts(session: Session, config, now: dt.datetime | None = None) -> dict[str, int]:
    """How many tablets carry each flag, over the whole fleet (for the metrics)."""
    clauses = flag_clauses(config, now or utcnow())
    return {name: session.scalar(select(func.count()).select_from(Device).where(clause))
            for name, clause in clauses.items()}


# --- uploaded sync logs -----------------------------------------------------------------------------


def upload_log(session: Session, device: Device, config, text: str, app_version: str | None,
               now: dt.datetime | None = None) -> DeviceLog:
    """Keep a log the tablet sent, at most ``DEVICE_LOG_MAX_BYTES``; only the newest
    ``DEVICE_LOG_KEEP_PER_DEVICE`` of each tablet are kept, so a tablet cannot fill the database;
    the retention purge (``server.retention``) drops those past ``DEVICE_LOG_DAYS``."""
    size = len(text.encode("utf-8"))
    limit = config["DEVICE_LOG_MAX_BYTES"]
    if size > limit:
        raise BodyTooLargeError(f"A device log may hold at most {limit} bytes.", {"max_bytes": limit, "bytes": size})
    log = DeviceLog(device_id=device.id, created_at=now or utcnow(), app_version=app_version or device.app_version,
                    size_bytes=size, text=text)
    session.add(log)
    session.flush()
    keep = select(DeviceLog.id).where(DeviceLog.device_id == device.id).order_by(
        DeviceLog.created_at.desc(), DeviceLog.id.desc()).limit(config["DEVICE_LOG_KEEP_PER_DEVICE"])
    session.execute(delete(DeviceLog).where(DeviceLog.device_id == device.id,
                                            DeviceLog.id.not_in(select(keep.subquery().c.id))))
    return log


def list_logs(session: Session, scope: Scope, device_id: str, page: int, per_page: int) -> dict:
    """The logs of a tablet in scope, newest first, without their text."""
    accounts.require_device(session, scope, device_id)
    stmt = select(DeviceLog).where(DeviceLog.device_id == device_id)
    return paginate(session, stmt, page, per_page, (DeviceLog.created_at.desc(), DeviceLog.id.desc()))


def get_log(session: Session, scope: Scope, device_id: str, log_id: str) -> DeviceLog:
    accounts.require_device(session, scope, device_id)
    log = session.scalar(select(DeviceLog).where(DeviceLog.device_id == device_id, DeviceLog.id == log_id))
    if log is None:
        raise NotFoundError("No such log.")
    return log
