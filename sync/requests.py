"""The request loop: open → assigned → resolved → closed, derived from the request's events.

Events apply in the order of their corrected time, so one that comes late from an offline tablet lands
where it belongs. An event is checked against the status at its own time; once accepted it is kept, even
if a later event has changed the status since.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidTransitionError
from .models import Household, OutboxMessage, Pairing, Request, RequestEvent, Task, new_id, utcnow
from .policy import Actor
from .settings import SyncSettings

ALLOWED_FROM: dict[str, tuple[str, ...] | None] = {
    "assign": ("open", "assigned"),
    "resolve": ("open", "assigned"),
    "feedback_delivered": ("resolved",),
    "reopen": ("resolved", "closed"),
    "comment": None,
}


# Who hears about the loop's moves besides the change log (the server's outgoing webhooks): each is
# called as ``listener(session, event_type, request, now)`` inside the transaction that made the move,
# so what it queues in the outbox commits, or rolls back, with the move itself.
LISTENERS: list[Callable[[Session, str, Request, dt.datetime], None]] = []


def notify(session: Session, event_type: str, request: Request, now: dt.datetime) -> None:
    for listener in LISTENERS:
        listener(session, event_type, request, now)


def after_new_request(session: Session, request: Request, now: dt.datetime) -> None:
    notify(session, "request.raised", request, now)


def _moved(before: tuple[str, str | None], request: Request) -> str | None:
    """The event type of a change of status (or of handler, for a re-assignment), if any."""
    if request.status != before[0]:
        return {"open": "request.reopened"}.get(request.status, f"request.{request.status}")
    if request.status == "assigned" and request.handler != before[1]:
        return "request.assigned"
    return None


def prepare_new_request(request: Request, settings: SyncSettings, raised_at: dt.datetime) -> None:
    request.urgency = request.urgency or "normal"
    request.status = "open"
    request.raised_at = raised_at
    request.due_at = raised_at + dt.timedelta(days=settings.request_due_days.get(request.urgency, 7))


def _events(session: Session, request_id: str) -> list[RequestEvent]:
    return list(session.scalars(
        select(RequestEvent)
        .where(RequestEvent.request_id == request_id, RequestEvent.deleted_at.is_(None))
        .order_by(RequestEvent.effective_at, RequestEvent.created_at, RequestEvent.id)
    ))


def replay(request: Request, events: list[RequestEvent], settings: SyncSettings) -> dict[str, Any]:
    """The request's derived fields after its events, in time order."""
    state: dict[str, Any] = {
        "status": "open", "handler": None, "due_at": request.due_at, "resolution": None,
        "resolved_at": None, "feedback_due_at": None, "closed_at": None, "satisfaction": None,
    }
    base_due = request.raised_at + dt.timedelta(days=settings.request_due_days.get(request.urgency, 7))
    state["due_at"] = base_due
    for e in events:
        if e.action == "assign":
            state.update(status="assigned", handler=e.handler, due_at=e.due_at or state["due_at"])
        elif e.action == "resolve":
            state.update(status="resolved", resolution=e.note, resolved_at=e.effective_at,
                         feedback_due_at=e.effective_at + dt.timedelta(days=settings.feedback_due_days))
        elif e.action == "feedback_delivered":
            state.update(status="closed", closed_at=e.effective_at)
            if e.satisfaction is not None:
                state["satisfaction"] = e.satisfaction
        elif e.action == "reopen":
            state.update(status="open", closed_at=None)
    return state


def status_at(request: Request, events: list[RequestEvent], at: dt.datetime, settings: SyncSettings) -> str:
    return replay(request, [e for e in events if e.effective_at <= at], settings)["status"]


def accept_event(session: Session, actor: Actor, event: RequestEvent, effective_at: dt.datetime,
                 settings: SyncSettings, now: dt.datetime) -> None:
    """Check ``event`` against the request's status at its own time; raise if impossible."""
    event.effective_at = effective_at
    request = session.get(Request, event.request_id)
    allowed = ALLOWED_FROM.get(event.action)
    if event.action not in ALLOWED_FROM:
        raise InvalidTransitionError(f"Unknown event {event.action!r}.")
    if allowed is None:
        return
    status = status_at(request, _events(session, request.id), effective_at, settings)
    if status not in allowed:
        raise InvalidTransitionError(
            f"Cannot {event.action} a request that was {status} at that time.",
            {"status": status, "action": event.action, "allowed_from": list(allowed)},
        )


def after_event(session: Session, actor: Actor, event: RequestEvent, settings: SyncSettings,
                now: dt.datetime) -> Request:
    """Derive the request's state again and keep its feedback task in step with it."""
    from .apply import write_fields

    request = session.get(Request, event.request_id)
    session.flush()
    before = (request.status, request.handler)
    state = replay(request, _events(session, request.id), settings)
    write_fields(session, actor, "request", request, state, now)
    _reconcile_feedback_task(session, actor, request, now)
    moved = _moved(before, request)
    if moved:
        notify(session, moved, request, now)
    return request


COORDINATOR_EVENT_FIELDS = ("request_id", "action", "note", "handler", "due_at", "occurred_at", "effective_at")


def record_coordinator_event(session: Session, actor: Actor, request: Request, action: str,
                             settings: SyncSettings, now: dt.datetime | None = None, *,
                             note: str | None = None, handler: str | None = None,
                             due_at: dt.datetime | None = None) -> RequestEvent:
    """An event decided at a desk (assign, resolve, reopen, comment), effective now.

    It is stored and checked exactly like an event pushed from a tablet (``accept_event`` then
    ``after_event``), so one rule set decides the request's status whoever moved it. It is logged
    as a ``request_event`` create, so the paired member's tablet pulls it with the request.
    Raises ``InvalidTransitionError`` when the request's current status does not allow ``action``.
    """
    from .apply import log_record

    now = now or utcnow()
    event = RequestEvent(
        id=new_id(), request_id=request.id, household_id=request.household_id,
        community_id=request.community_id, action=action, note=note, handler=handler, due_at=due_at,
        occurred_at=now, version=1, created_at=now, updated_at=now, author_id=actor.user_id,
        origin_device_id=actor.device_id,
    )
    accept_event(session, actor, event, now, settings, now)
    session.add(event)
    session.flush()
    log_record(session, actor, "request_event", event, "create",
               {k: [None, getattr(event, k)] for k in COORDINATOR_EVENT_FIELDS}, now)
    after_event(session, actor, event, settings, now)
    return event


def is_overdue(request: Request, now: dt.datetime) -> bool:
    """Late to handle (open or assigned past ``due_at``) or late to bring back (resolved past
    ``feedback_due_at``). ``server.services.requests`` holds the same rule as a query."""
    if request.status in ("open", "assigned"):
        return request.due_at is not None and request.due_at < now
    if request.status == "resolved":
        return request.feedback_due_at is not None and request.feedback_due_at < now
    return False


# --- due visits -----------------------------------------------------------------------------------


def visit_interval_days(household: Household, settings: SyncSettings) -> int:
    """The household's own interval, else the shortest interval of its tags, else the default.

    ``household`` may be any object with the household's columns (a result row will do)."""
    if household.visit_interval_days:
        return household.visit_interval_days
    by_tag = [settings.visit_interval_days[t] for t in (household.tags or []) if t in settings.visit_interval_days]
    return min(by_tag, default=settings.default_visit_interval_days)


def visit_due_at(household: Household, settings: SyncSettings) -> dt.datetime:
    """When the next visit is due: an interval after the last visit (or after the household was added)."""
    since = household.last_visited_at or household.created_at
    return since + dt.timedelta(days=visit_interval_days(household, settings))


def open_due_visit_task(session: Session, actor: Actor, household: Household, member_id: str,
                        due_at: dt.datetime, message: str, now: dt.datetime) -> Task | None:
    """A ``due_visit`` task for the household's member, unless one is already open (never two).

    It closes itself when a visit to the household arrives (``after_visit``) and moves with the
    household when it is re-paired (``after_pairing``).
    """
    from .apply import log_record

    if session.scalar(select(Task.id).where(
            Task.household_id == household.id, Task.kind == "due_visit", Task.status == "open",
            Task.deleted_at.is_(None)).limit(1)) is not None:
        return None
    task = Task(id=new_id(), kind="due_visit", household_id=household.id, request_id=None, member_id=member_id,
                message=message, due_at=due_at, status="open", community_id=household.community_id,
                version=1, created_at=now, updated_at=now, author_id=actor.user_id)
    session.add(task)
    session.flush()
    log_record(session, actor, "task", task, "create",
               {k: [None, getattr(task, k)] for k in ("kind", "household_id", "member_id", "message", "due_at",
                                                       "status")}, now)
    return task


def paired_member(session: Session, household_id: str) -> str | None:
    pairing = session.get(Pairing, household_id)
    return pairing.member_id if pairing else None


def _reconcile_feedback_task(session: Session, actor: Actor, request: Request, now: dt.datetime) -> None:
    from .apply import log_record, write_fields

    open_task = session.scalar(select(Task).where(
        Task.request_id == request.id, Task.kind == "deliver_feedback", Task.status == "open",
        Task.deleted_at.is_(None)))
    if request.status == "resolved":
        message = f"您反映的“{request.category}”问题已办结：{request.resolution or ''}".strip()
        if open_task is not None:
            write_fields(session, actor, "task", open_task,
                         {"message": message, "due_at": request.feedback_due_at}, now)
            return
        task = Task(kind="deliver_feedback", household_id=request.household_id, request_id=request.id,
                    member_id=paired_member(session, request.household_id), message=message,
                    due_at=request.feedback_due_at, status="open", community_id=request.community_id,
                    version=1, created_at=now, updated_at=now, author_id=actor.user_id)
        session.add(task)
        session.flush()
        log_record(session, actor, "task", task, "create",
                   {k: [None, getattr(task, k)] for k in ("kind", "household_id", "request_id", "member_id",
                                                           "message", "due_at", "status")}, now)
        household = session.get(Household, request.household_id)
        if household.sms_consent and household.phone:
            enqueue(session, "sms", {"to": household.phone, "text": message, "request_id": request.id},
                    dedupe_key=f"feedback-sms:{task.id}")
    elif open_task is not None:
        write_fields(session, actor, "task", open_task, {"status": "done", "done_at": now}, now)


def enqueue(session: Session, kind: str, payload: dict[str, Any], dedupe_key: str | None = None) -> None:
    """Queue a message in the transactional outbox: it is sent only if this transaction commits."""
    session.add(OutboxMessage(kind=kind, payload=payload, dedupe_key=dedupe_key, created_at=utcnow(),
                              next_attempt_at=utcnow()))


def after_visit(session: Session, actor: Actor, visit, household: Household, now: dt.datetime) -> None:
    """A visit closes ``household``'s due-visit tasks and moves its last-visited date."""
    from .apply import write_fields
    from .txcache import tx_cache

    if household.last_visited_at is None or visit.visited_at > household.last_visited_at:
        household.last_visited_at = visit.visited_at
    closed = tx_cache(session).due_tasks_closed
    if household.id in closed:  # a batch of visits to one household closes its tasks once
        return
    for task in session.scalars(select(Task).where(
            Task.household_id == visit.household_id, Task.kind == "due_visit", Task.status == "open")):
        write_fields(session, actor, "task", task, {"status": "done", "done_at": now}, now)
    closed.add(household.id)


def after_pairing(session: Session, actor: Actor, household: Household, member_id: str | None,
                  now: dt.datetime) -> None:
    """Open tasks about a household move with it to its new member."""
    from .apply import _write
    from .entities import SPECS

    for task in session.scalars(select(Task).where(
            Task.household_id == household.id, Task.status == "open", Task.deleted_at.is_(None))):
        former = task.member_id
        if former == member_id:
            continue
        _write(session, actor, SPECS["task"], task, {"member_id": member_id}, now, now)
        session.info["lianhu.pending_changes"][-1]["former_user_id"] = former
