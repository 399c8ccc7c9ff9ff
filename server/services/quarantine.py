"""Quarantined ops: rejected pushes kept as sent, retried (as sent or corrected) or discarded by a coordinator."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.apply import Change, apply_change
from sync.changes import json_value, pending_changes
from sync.errors import ConflictError, NotFoundError, OpRejected
from sync.models import QuarantinedOp, User, utcnow
from sync.policy import Scope, actor_for
from sync.rows import flush_rows

from .common import paginate, sync_settings
from .sync_service import _prepare_op, _sanitize


def list_quarantine(session: Session, scope: Scope, status: str | None, page: int, per_page: int) -> dict:
    stmt = select(QuarantinedOp).where(scope.quarantine())
    if status:
        stmt = stmt.where(QuarantinedOp.status == status)
    return paginate(session, stmt, page, per_page, (QuarantinedOp.created_at.desc(), QuarantinedOp.id))


def _open_entry(session: Session, scope: Scope, entry_id: str) -> QuarantinedOp:
    entry = session.scalar(select(QuarantinedOp).where(QuarantinedOp.id == entry_id, scope.quarantine()))
    if entry is None:
        raise NotFoundError("No such quarantined op.")
    if entry.status != "open":
        raise ConflictError(f"This op was already {entry.status}.", {"status": entry.status})
    return entry


def _result(op_id, status, version=None, conflicts=None, error=None) -> dict:
    return {"op_id": op_id, "status": status, "version": version, "conflicts": conflicts or [], "error": error}


def retry(session: Session, scope: Scope, entry_id: str, data: dict | None) -> dict:
    """Apply the op again for the device's user, as sent or with the coordinator's ``data``.

    It goes through the push's own path (the op's schema, then ``apply_change`` in a savepoint), with
    the device's clock offset of the original push, so it follows every rule a push follows. On success
    the entry is ``retried``; a new rejection leaves it ``open`` with the new reason.
    """
    entry = _open_entry(session, scope, entry_id)
    user = session.get(User, entry.user_id) if entry.user_id else None
    if user is None or not user.active:
        raise ConflictError("The op's user is no longer active; discard it instead.")
    raw = dict(entry.op) if isinstance(entry.op, dict) else {}
    if data is not None:
        raw["data"] = data
    op = _prepare_op(entry.op_id, raw)
    now = utcnow()
    if op.error is not None:
        result = _result(entry.op_id, "rejected", error=op.error.as_dict())
    else:
        actor = actor_for(session, user, entry.device_id)
        offset = dt.timedelta(seconds=entry.client_offset_seconds or 0)
        change = Change(op.entity, op.record_id, op.action, op.data, op.base_version, op.recorded_at + offset)
        queued = len(pending_changes(session))
        flush_rows(session)  # a savepoint starts with nothing queued (sync.rows)
        savepoint = session.begin_nested()
        try:
            outcome = apply_change(session, actor, change, sync_settings(), now)
            savepoint.commit()
            result = _result(entry.op_id, outcome.status, outcome.version, [c.as_dict() for c in outcome.conflicts])
        except OpRejected as error:
            savepoint.rollback()
            del pending_changes(session)[queued:]
            result = _result(entry.op_id, "rejected", error=error.as_dict())
    # the op stays as sent; what the coordinator changed is kept beside the result
    entry.retry_result = json_value({**result, "corrected_data": _sanitize(data)} if data is not None else result)
    if result["status"] != "rejected":
        entry.status = "retried"
        entry.handled_by = scope.actor.user_id
        entry.handled_at = now
    return {"result": result, "quarantine": entry}


def discard(session: Session, scope: Scope, entry_id: str, reason: str) -> QuarantinedOp:
    """Keep the op on record as discarded, with the coordinator's reason."""
    entry = _open_entry(session, scope, entry_id)
    entry.status = "discarded"
    entry.discard_reason = reason
    entry.handled_by = scope.actor.user_id
    entry.handled_at = utcnow()
    return entry
