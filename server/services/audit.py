"""Residents' personal data: who read it (the audit log) and what each view shows of it (phone masking).

The rules, written out in SECURITY.md:

- Every call that answers a household's personal data (its detail, lists of households, residents,
  timelines, exports) records one ``AuditEvent`` per household it answered, with the caller, the device
  if any, the call and the request id. Admins read the log at ``GET /api/v1/audit``.
- Events are written after the answer is ready and only for successful answers, in the request's own
  session; if they cannot be written the data is not sent (503), so nothing is read without a trace.
- Phone numbers are shown whole where the caller works with one household (its detail, a tablet's own
  paired households, which a member must be able to call) and masked in lists and exports, where nobody
  needs them: ``138****5678``. ``visible_phone`` is the one place that decides.
"""
from __future__ import annotations

from flask import g, request
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sync.models import AuditEvent, new_id, utcnow
from sync.policy import Actor, Scope

from .common import paginate

ACTIONS = ("read", "list", "export")
PENDING_KEY = "audit_pending"

# --- phone masking --------------------------------------------------------------------------------

WHOLE = "whole"  # one household, for a caller whose scope holds it
MASKED = "masked"  # lists and exports


def mask_phone(phone: str | None) -> str | None:
    """Mask the middle digits: keep the first 3 and last 4 of a long number, the last 2 of a short one."""
    if not phone:
        return phone
    digits = [i for i, c in enumerate(phone) if c.isdigit()]
    keep_head, keep_tail = (3, 4) if len(digits) >= 10 else (0, 2)
    hidden = set(digits[keep_head:len(digits) - keep_tail])
    return "".join("*" if i in hidden else c for i, c in enumerate(phone))


def visible_phone(phone: str | None, view: str) -> str | None:
    return phone if view == WHOLE else mask_phone(phone)


class Masked:
    """A read-only view of a record whose ``phone`` is masked; everything else reads through.

    A wrapper rather than an edited record, so that a masked value can never be flushed to the database.
    """

    def __init__(self, record):
        self._record = record

    @property
    def phone(self):
        return visible_phone(self._record.phone, MASKED)

    def __getattr__(self, name):
        return getattr(self._record, name)


def masked(records) -> list:
    return [Masked(r) for r in records]


# --- the audit log --------------------------------------------------------------------------------

def record(actor: Actor, action: str, households, entity: str = "household") -> None:
    """Note that ``actor`` was answered personal data of ``households`` (records or ids).

    The events are written when the answer succeeds (see ``init_app``)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    pending = g.setdefault(PENDING_KEY, [])
    for household in households:
        household_id = household if isinstance(household, str) else household.id
        community_id = None if isinstance(household, str) else getattr(household, "community_id", None)
        pending.append({"household_id": household_id, "community_id": community_id, "action": action,
                        "entity": entity, "actor": actor})


def flush(session: Session) -> int:
    """Write the request's pending events into ``session`` (the caller commits); answer how many."""
    pending = g.pop(PENDING_KEY, None) or []
    if not pending:
        return 0
    now = utcnow()
    endpoint = request.endpoint if request else None
    request_id = g.get("request_id")
    seen = set()
    rows = []
    for event in pending:
        key = (event["household_id"], event["action"], event["entity"])
        if key in seen:
            continue
        seen.add(key)
        actor = event["actor"]
        rows.append({"id": new_id(), "at": now, "user_id": actor.user_id, "role": actor.role,
                     "device_id": actor.device_id, "action": event["action"], "entity": event["entity"],
                     "household_id": event["household_id"], "community_id": event["community_id"],
                     "endpoint": endpoint, "request_id": request_id})
    session.execute(insert(AuditEvent), rows)
    return len(rows)


def list_events(session: Session, scope: Scope, household_id: str | None, user_id: str | None,
                action: str | None, page: int, per_page: int) -> dict:
    """The audit log, newest first (admins)."""
    scope.require_admin()
    stmt = select(AuditEvent)
    if household_id:
        stmt = stmt.where(AuditEvent.household_id == household_id)
    if user_id:
        stmt = stmt.where(AuditEvent.user_id == user_id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return paginate(session, stmt, page, per_page, (AuditEvent.at.desc(), AuditEvent.id))


def init_app(app) -> None:
    """Write each successful answer's audit events before it leaves; no trace, no data."""
    from ..errors import error_response
    from ..extensions import db

    @app.after_request
    def _write_audit(response):
        if PENDING_KEY not in g:
            return response
        if response.status_code >= 400:
            g.pop(PENDING_KEY, None)
            return response
        try:
            if flush(db.session):
                db.session.commit()
        except DBAPIError:
            db.session.rollback()
            return error_response("unavailable", "The database is not reachable; try again shortly.", {}, 503,
                                  {"Retry-After": "5"})
        return response
