"""The change log writer.

Why numbers are handed out at commit time: pull cursors are "the highest ``seq`` seen". If ``seq`` came from
a sequence while a transaction runs, a transaction holding 41 could commit after one holding 42, and a pull
between the two commits would move past 41 for good. So the engine collects a transaction's changes in the
session and writes them in a ``before_commit`` hook, after taking the single ``change_counter`` row with an
``UPDATE``. That row lock is held until the commit completes, so the next transaction can take numbers only
after this one is visible: ``seq`` order is commit order, and a reader that sees ``seq`` = n also sees every
smaller number that will ever exist. Only the last moment of each write transaction (the counter update,
one bulk insert and the commit) is serialised; the work of applying ops runs in parallel.
"""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from .models import ChangeCounter, ChangeLog, utcnow

PENDING_KEY = "lianhu.pending_changes"
_PLAIN = frozenset({str, int, float, bool})


def json_value(value: Any) -> Any:
    """A value as it is stored in the change log and sent on the wire."""
    if value is None or type(value) in _PLAIN:  # most values of a record: answered without a walk
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def record_change(
    session: Session,
    *,
    entity: str,
    record_id: str,
    community_id: str,
    household_id: str | None,
    action: str,
    version: int | None,
    fields: dict[str, list[Any]] | None = None,
    device_id: str | None = None,
    user_id: str | None = None,
    recorded_at: dt.datetime | None = None,
    audience_user_id: str | None = None,
    former_user_id: str | None = None,
) -> None:
    """Queue one change; it is numbered and written when the session commits."""
    pending_changes(session).append(
        {
            "community_id": community_id,
            "household_id": household_id,
            "audience_user_id": audience_user_id,
            "former_user_id": former_user_id,
            "entity": entity,
            "record_id": record_id,
            "version": version,
            "action": action,
            "fields": {k: [json_value(o), json_value(n)] for k, (o, n) in (fields or {}).items()},
            "device_id": device_id,
            "user_id": user_id,
            "recorded_at": recorded_at or utcnow(),
            "created_at": utcnow(),
        }
    )


def pending_changes(session: Session) -> list[dict[str, Any]]:
    return session.info.setdefault(PENDING_KEY, [])


def write_pending_changes(session: Session) -> None:
    """Number the queued changes in commit order and insert them (called just before commit)."""
    rows = session.info.pop(PENDING_KEY, None)
    if not rows:
        return
    last = session.execute(
        update(ChangeCounter)
        .where(ChangeCounter.id == 1)
        .values(value=ChangeCounter.value + len(rows))
        .returning(ChangeCounter.value)
        .execution_options(synchronize_session=False)  # nothing to match in the identity map
    ).scalar_one_or_none()
    if last is None:
        session.add(ChangeCounter(id=1, value=len(rows)))
        session.flush()
        last = len(rows)
    first = last - len(rows) + 1
    for offset, row in enumerate(rows):
        row["seq"] = first + offset
    session.connection().execute(ChangeLog.__table__.insert(), rows)


def pending_history(session: Session, entity: str, record_id: str) -> list[dict[str, Any]]:
    """This transaction's queued changes of one record, not yet in ``change_log`` (merges read both)."""
    return [row for row in session.info.get(PENDING_KEY, ()) if row["entity"] == entity
            and row["record_id"] == record_id]


@event.listens_for(Session, "before_commit")
def _number_changes_before_commit(session: Session) -> None:
    # SQLAlchemy also fires before_commit when a savepoint is released (each pushed op has one). Numbering
    # there would take the counter row at a batch's first op and hold it for the rest of the batch,
    # serialising every concurrent push on PostgreSQL, and cost two statements per op; so only the
    # outermost commit numbers, as the module docstring says.
    if session.in_nested_transaction():
        return
    write_pending_changes(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changes_after_rollback(session: Session, previous_transaction) -> None:
    # Only a rollback of the whole transaction forgets its changes: a savepoint's rollback (one rejected
    # op) leaves the ops before it queued; its caller drops just the rejected op's own changes.
    if previous_transaction.parent is None:
        session.info.pop(PENDING_KEY, None)
