"""Push: apply a device's batch of ops exactly once, in order, in one transaction.

The caller validates each op's fields (the wire format lives in ``schemas/``) and hands the engine a
``Batch`` whose invalid ops already carry their error; the engine decides everything else. It never
commits: the caller commits once the push returns, or rolls back on any exception.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .apply import Change, apply_change
from .changes import json_value, pending_changes
from .entities import SPECS
from .errors import ConflictError, OpRejected, SchemaUnsupportedError
from .models import ChangeLog, Device, Household, OpLog, QuarantinedOp, SyncBatch, Task, utcnow
from .policy import Actor, Scope
from .settings import SyncSettings
from .txcache import tx_cache


@dataclass
class Op:
    op_id: str
    entity: str | None
    record_id: str | None
    action: str | None
    base_version: int | None
    recorded_at: dt.datetime | None
    data: dict[str, Any]
    raw: Any
    """The op exactly as sent (for the content hash and the quarantine)."""
    error: OpRejected | None = None
    content_hash: str | None = None
    """Filled by ``op_content_hash`` the first time it is asked (the batch's hash and the op log both need it)."""


@dataclass
class Batch:
    batch_id: str
    client_time: dt.datetime
    ops: list[Op]
    client: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    """Set by ``push``: the batch was applied before and its stored results were answered."""


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def op_content_hash(op: Op) -> str:
    """Entity, id, action, base_version, recorded_at and data: what makes a replay "the same op"."""
    if op.content_hash is None:
        op.content_hash = _content_hash(op)
    return op.content_hash


def _content_hash(op: Op) -> str:
    raw = op.raw if isinstance(op.raw, dict) else {"raw": op.raw}
    content = {k: raw.get(k) for k in ("entity", "id", "action", "base_version", "data")}
    content["recorded_at"] = json_value(op.recorded_at) if op.recorded_at else raw.get("recorded_at")
    return canonical_hash(content)


def batch_content_hash(batch: Batch) -> str:
    return canonical_hash([[op.op_id, op_content_hash(op)] for op in batch.ops])


def _result(op_id, status, version=None, conflicts=None, error=None) -> dict[str, Any]:
    return {"op_id": op_id, "status": status, "version": version, "conflicts": conflicts or [],
            "error": error}


def push(session: Session, actor: Actor, device: Device, batch: Batch, settings: SyncSettings,
         now: dt.datetime | None = None) -> dict[str, Any]:
    """Apply ``batch`` for ``device`` and answer one result per op, in order.

    A replayed batch (same ``batch_id`` and ops) answers its stored results and applies nothing;
    the same ``batch_id`` with other ops raises ``ConflictError``. A concurrent duplicate of a batch
    still in flight blocks on the batch row's key and fails with an integrity error: the caller rolls
    back and calls again, and then gets the replay.
    """
    now = now or utcnow()
    schema_version = (batch.client or {}).get("schema_version")
    if schema_version is not None and schema_version not in settings.supported_schema_versions:
        raise SchemaUnsupportedError(details={"supported": list(settings.supported_schema_versions)})
    content_hash = batch_content_hash(batch)
    stored = session.get(SyncBatch, (device.id, batch.batch_id))
    if stored is not None:
        if stored.content_hash != content_hash:
            raise ConflictError("This batch_id was used for other ops.", {"batch_id": batch.batch_id})
        batch.replayed = True
        return {"batch_id": batch.batch_id, "server_time": now, "results": stored.results}
    record = SyncBatch(device_id=device.id, batch_id=batch.batch_id, content_hash=content_hash,
                       results=[], created_at=now)
    session.add(record)
    session.flush()  # claim the batch id first, so a concurrent resend waits here

    offset = now - batch.client_time
    device.clock_offset_seconds = offset.total_seconds()
    device.last_seen_at = device.last_sync_at = now
    if batch.client:
        device.app_version = batch.client.get("app_version") or device.app_version
        device.schema_version = batch.client.get("schema_version") or device.schema_version
        if "outbox_length" in batch.client:  # fleet health: what the tablet still holds besides this batch
            oldest = batch.client.get("oldest_unsynced_at")
            device.outbox_length = batch.client["outbox_length"]
            device.oldest_unsynced_at = oldest + offset if oldest is not None else None

    known = {
        row.op_id: row
        for row in session.scalars(select(OpLog).where(
            OpLog.device_id == device.id, OpLog.op_id.in_([op.op_id for op in batch.ops])))
    }
    _prefetch(session, actor, batch)
    results: list[dict[str, Any]] = []
    op_log_rows: list[dict[str, Any]] = []
    for op in batch.ops:
        results.append(_push_one(session, actor, device, batch, op, offset, known, settings, now, op_log_rows))
    if op_log_rows:
        session.connection().execute(OpLog.__table__.insert(), op_log_rows)  # one statement for the batch's op log
    record.results = results
    return {"batch_id": batch.batch_id, "server_time": now, "results": results}


def _push_one(session, actor, device, batch, op, offset, known, settings, now, op_log_rows) -> dict[str, Any]:
    content_hash = op_content_hash(op)
    previous = known.get(op.op_id)
    if previous is not None:
        if previous.content_hash != content_hash:
            error = OpRejected("op_id_reused", "This op_id was used for another op.", {"op_id": op.op_id})
            _quarantine(session, actor, device, batch, op, error, offset, now)
            return _result(op.op_id, "rejected", error=error.as_dict())
        original = previous.result
        if original["status"] == "rejected":
            return _result(op.op_id, "rejected", error=original["error"])
        return _result(op.op_id, "duplicate", original["version"], original.get("conflicts"))

    if op.error is not None:
        result = _result(op.op_id, "rejected", error=op.error.as_dict())
        _quarantine(session, actor, device, batch, op, op.error, offset, now)
    else:
        change = Change(op.entity, op.record_id, op.action, op.data, op.base_version, op.recorded_at + offset)
        queued = len(pending_changes(session))
        try:
            outcome = apply_change(session, actor, change, settings, now)
            result = _result(op.op_id, outcome.status, outcome.version,
                             [c.as_dict() for c in outcome.conflicts])
        except OpRejected as error:
            # No savepoint per op: every rule is checked before anything is written (sync.apply raises
            # OpRejected only before its first write, and every write logs a change), so a rejection leaves
            # nothing behind. Should that ever stop being true, fail the batch rather than commit half an op.
            if len(pending_changes(session)) != queued:
                raise RuntimeError(f"{op.entity} {op.action} was rejected after writing") from error
            result = _result(op.op_id, "rejected", error=error.as_dict())
            _quarantine(session, actor, device, batch, op, error, offset, now)
    entry = {"device_id": device.id, "op_id": op.op_id, "batch_id": batch.batch_id, "content_hash": content_hash,
             "result": result, "created_at": now}
    op_log_rows.append(entry)
    known[op.op_id] = _Logged(content_hash, result)
    return result


@dataclass(frozen=True)
class _Logged:
    content_hash: str
    result: dict[str, Any]


def _prefetch(session: Session, actor: Actor, batch: Batch) -> None:
    """Learn in a query each what 500 ops would otherwise ask one by one: which ids of the creates are
    free, which of the households they name are in the pusher's scope, and which have due-visit tasks."""
    cache = tx_cache(session)
    creates: dict[str, set[str]] = {}
    households: set[str] = set()
    for op in batch.ops:
        if op.error is None and op.action == "create" and op.entity in SPECS and SPECS[op.entity].actions:
            creates.setdefault(op.entity, set()).add(op.record_id)
            if isinstance(op.data.get("household_id"), str):
                households.add(op.data["household_id"])
    for entity, ids in creates.items():
        model = SPECS[entity].model
        taken = set(session.scalars(select(model.id).where(model.id.in_(ids))))
        cache.free_ids.setdefault(entity, set()).update(ids - taken)
        cache.taken_ids.setdefault(entity, set()).update(taken)
    visited = {op.data["household_id"] for op in batch.ops if op.error is None and op.entity == "visit"
               and op.action == "create" and isinstance(op.data.get("household_id"), str)}
    if visited:
        # Households without an open due-visit task have nothing for their visits to close (a push never
        # opens one), so after_visit need not ask for each of them.
        with_open_tasks = set(session.scalars(select(Task.household_id).where(
            Task.household_id.in_(visited), Task.kind == "due_visit", Task.status == "open")))
        cache.due_tasks_closed.update(visited - with_open_tasks)
    _prefetch_changed(session, actor, batch, cache)
    if households:
        scope = Scope(actor)
        for household in session.scalars(select(Household).where(
                Household.id.in_(households), scope.households(), Household.deleted_at.is_(None))):
            cache.in_scope[(actor.user_id, household.id)] = household


def _prefetch_changed(session: Session, actor: Actor, batch: Batch, cache) -> None:
    """The records the batch updates or deletes, in scope, in one query per entity (locked on PostgreSQL,
    in id order so that two batches never wait on each other crosswise); and the change log of those
    the device changed from an older version, which a merge reads."""
    wanted: dict[str, set[str]] = {}
    base: dict[tuple[str, str], int] = {}
    for op in batch.ops:
        if op.error is None and op.action in ("update", "delete") and op.entity in SPECS and SPECS[op.entity].actions:
            wanted.setdefault(op.entity, set()).add(op.record_id)
            if op.base_version is not None:
                key = (op.entity, op.record_id)
                base[key] = min(base.get(key, op.base_version), op.base_version)
    scope = Scope(actor)
    lock = session.get_bind().dialect.name == "postgresql"
    stale: dict[str, set[str]] = {}
    for entity, ids in wanted.items():
        model = SPECS[entity].model
        stmt = select(model).where(model.id.in_(ids), scope.records(model)).order_by(model.id)
        for record in session.scalars(stmt.with_for_update() if lock else stmt):
            cache.loaded[(entity, record.id)] = record
            if base.get((entity, record.id), record.version) < record.version:
                stale.setdefault(entity, set()).add(record.id)
    for entity, ids in stale.items():
        for row in session.scalars(select(ChangeLog).where(ChangeLog.entity == entity, ChangeLog.record_id.in_(ids))
                                   .order_by(ChangeLog.record_id, ChangeLog.version)):
            cache.history.setdefault((entity, row.record_id), []).append(row)
        for record_id in ids:
            cache.history.setdefault((entity, record_id), [])


def _quarantine(session, actor, device, batch, op, error: OpRejected, offset, now) -> None:
    session.add(QuarantinedOp(
        device_id=device.id, user_id=actor.user_id, batch_id=batch.batch_id, op_id=op.op_id,
        op=json_value(op.raw), error=error.as_dict(), status="open",
        client_offset_seconds=offset.total_seconds(), created_at=now,
    ))
