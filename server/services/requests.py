"""Requests for coordinators: lists with deadlines, the detail, and the desk's assign/resolve/reopen.

The status rules live in ``sync.requests``; a coordinator's move is an event there like a tablet's.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from sync import requests as request_rules
from sync.apply import Change, apply_change
from sync.errors import OpRejected, ValidationFailedError
from sync.models import Area, Household, Request, RequestEvent, Task, new_id, utcnow
from sync.policy import Scope

from .common import as_call_error, paginate, sync_settings


def overdue_clause(now: dt.datetime):
    """The SQL form of ``sync.requests.is_overdue``."""
    return or_(
        and_(Request.status.in_(("open", "assigned")), Request.due_at < now),
        and_(Request.status == "resolved", Request.feedback_due_at < now),
    )


def households_under(area: Area):
    return select(Household.id).where(Household.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))


def _decorate(session: Session, requests: list[Request], now: dt.datetime) -> list[Request]:
    """Attach ``area_id`` and ``overdue`` for the wire."""
    areas = dict(session.execute(select(Household.id, Household.area_id).where(
        Household.id.in_({r.household_id for r in requests}))).all())
    for request in requests:
        request.area_id = areas.get(request.household_id)
        request.overdue = request_rules.is_overdue(request, now)
    return requests


def list_requests(session: Session, scope: Scope, args: dict, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    stmt = select(Request).where(scope.records(Request), Request.deleted_at.is_(None))
    if args.get("status"):
        stmt = stmt.where(Request.status == args["status"])
    if args.get("area_id"):
        stmt = stmt.where(Request.household_id.in_(households_under(scope.require_area(session, args["area_id"]))))
    if args.get("household_id"):
        stmt = stmt.where(Request.household_id == args["household_id"])
    if args.get("overdue") is True:
        stmt = stmt.where(overdue_clause(now))
    elif args.get("overdue") is False:
        stmt = stmt.where(~overdue_clause(now))
    result = paginate(session, stmt, args["page"], args["per_page"], (Request.raised_at.desc(), Request.id))
    _decorate(session, result["items"], now)
    return result


def get_request(session: Session, scope: Scope, request_id: str, now: dt.datetime | None = None) -> Request:
    """The request with its events (in the order they apply), its latest feedback task and deadlines."""
    request = scope.require(session, Request, request_id)
    request.events = list(session.scalars(
        select(RequestEvent)
        .where(RequestEvent.request_id == request.id, RequestEvent.deleted_at.is_(None))
        .order_by(RequestEvent.effective_at, RequestEvent.created_at, RequestEvent.id)))
    request.task = session.scalar(
        select(Task).where(Task.request_id == request.id, Task.deleted_at.is_(None))
        .order_by(Task.created_at.desc(), Task.id).limit(1))
    _decorate(session, [request], now or utcnow())
    return request


def create_request(session: Session, scope: Scope, data: dict) -> tuple[Request, bool]:
    """A request taken by phone or at the office, or sent by an integration (another platform):
    recorded through the engine like a tablet's. Returns the request and whether it is new.

    An integration's ``external_id`` is its own id for the request: sent again, it answers the request
    recorded the first time (nothing is recorded twice). Only integrations send one.
    """
    data = dict(data)
    record_id = data.pop("id", None) or new_id()
    external_id = data.pop("external_id", None)
    now = utcnow()
    source = "office"
    if scope.actor.is_integration:
        if external_id is None:
            raise ValidationFailedError(details={"external_id": ["Missing data for required field."]})
        known = session.scalar(select(Request.id).where(Request.integration_id == scope.actor.user_id,
                                                        Request.external_id == external_id))
        if known is not None:
            return get_request(session, scope, known, now), False
        data.update(integration_id=scope.actor.user_id, external_id=external_id)
        source = "integration"
    elif external_id is not None:
        raise ValidationFailedError(details={"external_id": ["Only an integration sends an external id."]})
    try:
        outcome = apply_change(session, scope.actor, Change("request", record_id, "create",
                                                            {**data, "source": source}, None, now),
                               sync_settings(), now)
    except OpRejected as exc:
        if exc.code == "id_taken":
            exc.code = "conflict"
        raise as_call_error(exc) from None
    return get_request(session, scope, outcome.record.id, now), True


def _desk_event(session: Session, scope: Scope, request_id: str, action: str, **fields) -> Request:
    request = scope.require(session, Request, request_id)
    now = utcnow()
    try:
        request_rules.record_coordinator_event(session, scope.actor, request, action, sync_settings(), now,
                                               **fields)
    except OpRejected as exc:
        raise as_call_error(exc) from None
    return get_request(session, scope, request.id, now)


def assign(session: Session, scope: Scope, request_id: str, handler: str, due_at: dt.datetime | None) -> Request:
    return _desk_event(session, scope, request_id, "assign", handler=handler, due_at=due_at)


def resolve(session: Session, scope: Scope, request_id: str, resolution: str) -> Request:
    return _desk_event(session, scope, request_id, "resolve", note=resolution)


def reopen(session: Session, scope: Scope, request_id: str, note: str | None) -> Request:
    return _desk_event(session, scope, request_id, "reopen", note=note)
