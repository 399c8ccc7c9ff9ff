"""Members registered with a community from their workplace (双报到), and the service report their home
organisation is sent.

A registration ties a member to a community for a time. Pairing works as for any member. Ending a
registration unpairs the member's households in that community through the engine (``set_pairing``), so
the member's tablets evict them at their next pull, and the coordinator is told which households now
have no member: in the answer, and in ``GET /households?unpaired=true``.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.apply import set_pairing
from sync.errors import ConflictError, NotFoundError, ValidationFailedError
from sync.models import Area, Household, Pairing, Registration, User, Visit, new_id, utcnow
from sync.policy import Scope

from ..console.i18n import TIMEZONE
from . import points
from .common import paginate

# Coordinators count days on the community's clock (the console's one setting of it).
LOCAL_ZONE = ZoneInfo(TIMEZONE)

REPORT_COLUMNS = ("display_name", "home_organisation", "organisation_kind", "started_on", "ended_on", "visits",
                  "approved_visits", "assistance_logs", "closed_requests", "points")


def _in_scope(scope: Scope):
    return Registration.area_id.in_(scope.area_ids())


def _with_name(session: Session, registrations: list[Registration]) -> list[Registration]:
    names = dict(session.execute(select(User.id, User.display_name).where(
        User.id.in_({r.user_id for r in registrations}))).all())
    for registration in registrations:
        registration.display_name = names.get(registration.user_id)
    return registrations


def register(session: Session, scope: Scope, data: dict) -> Registration:
    """Register a member in scope with an area in scope; a member has at most one open registration."""
    area = scope.require_area(session, data["area_id"])
    try:
        member = scope.require_user(session, data["user_id"])
    except NotFoundError:
        raise NotFoundError("No such member.", {"user_id": data["user_id"]}) from None
    if member.role != "member" or not member.active:
        raise ValidationFailedError(details={"user_id": ["must be an active member"]})
    if session.scalar(select(Registration.id).where(Registration.user_id == member.id,
                                                    Registration.ended_on.is_(None))) is not None:
        raise ConflictError("This member is registered already; end that registration first.",
                            {"user_id": member.id})
    registration = Registration(
        id=new_id(), user_id=member.id, community_id=area.community_id, area_id=area.id,
        home_organisation=data["home_organisation"], organisation_kind=data["organisation_kind"],
        started_on=data["started_on"], registered_by=scope.actor.user_id, created_at=utcnow())
    session.add(registration)
    session.flush()
    return _with_name(session, [registration])[0]


def require(session: Session, scope: Scope, registration_id: str) -> Registration:
    found = session.scalar(select(Registration).where(Registration.id == registration_id, _in_scope(scope)))
    if found is None:
        raise NotFoundError()
    return _with_name(session, [found])[0]


def list_registrations(session: Session, scope: Scope, args: dict) -> dict:
    stmt = select(Registration).where(_in_scope(scope))
    if args.get("area_id"):
        area = scope.require_area(session, args["area_id"])
        stmt = stmt.where(Registration.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    if args.get("home_organisation"):
        stmt = stmt.where(Registration.home_organisation == args["home_organisation"])
    if args.get("active") is True:
        stmt = stmt.where(Registration.ended_on.is_(None))
    elif args.get("active") is False:
        stmt = stmt.where(Registration.ended_on.is_not(None))
    result = paginate(session, stmt, args["page"], args["per_page"],
                      (Registration.home_organisation, Registration.started_on, Registration.id))
    _with_name(session, result["items"])
    return result


def end(session: Session, scope: Scope, registration_id: str, ended_on: dt.date | None,
        reason: str | None) -> dict:
    """End a registration and unpair the member's households in its community; list them."""
    registration = require(session, scope, registration_id)
    if registration.ended_on is not None:
        raise ConflictError("This registration has ended already.", {"ended_on": registration.ended_on.isoformat()})
    ended_on = ended_on or utcnow().astimezone(LOCAL_ZONE).date()
    if ended_on < registration.started_on:
        raise ValidationFailedError(details={"ended_on": ["must not be before started_on"]})
    registration.ended_on, registration.end_reason, registration.ended_by = ended_on, reason, scope.actor.user_id
    households = list(session.scalars(
        select(Household).join(Pairing, Pairing.household_id == Household.id)
        .where(Pairing.member_id == registration.user_id, Pairing.community_id == registration.community_id)
        .order_by(Household.address, Household.id)))
    now = utcnow()
    for household in households:
        set_pairing(session, scope.actor, household, None, now)
    return {"registration": registration, "unpaired_households": households}


# --- the service report ---------------------------------------------------------------------------


def day_bounds(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Whole local days ``date_from`` through ``date_to``, as an aware half-open range."""
    since = dt.datetime.combine(date_from, dt.time(), LOCAL_ZONE) if date_from else None
    until = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), LOCAL_ZONE) if date_to else None
    return since, until


def _clip(registration: Registration, since, until):
    """The report's period cut to the registration's own dates: service elsewhere is not counted."""
    start, stop = day_bounds(registration.started_on, registration.ended_on)
    return max(filter(None, (since, start))), min(filter(None, (until, stop)), default=None)


def service_report(session: Session, scope: Scope, args: dict, weights: dict[str, int]) -> dict:
    """One row per registration in scope (filtered by area, home organisation or registration):
    visits, approved visits, assistance logs, closed requests and points, within the period and the
    registration's own dates."""
    stmt = select(Registration).where(_in_scope(scope))
    if args.get("registration_id"):
        stmt = stmt.where(Registration.id == require(session, scope, args["registration_id"]).id)
    if args.get("area_id"):
        area = scope.require_area(session, args["area_id"])
        stmt = stmt.where(Registration.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    if args.get("home_organisation"):
        stmt = stmt.where(Registration.home_organisation == args["home_organisation"])
    registrations = _with_name(session, list(session.scalars(
        stmt.order_by(Registration.home_organisation, Registration.started_on, Registration.id))))
    since, until = day_bounds(args.get("from_"), args.get("to"))
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_({r.user_id for r in registrations})))}
    rows = []
    for registration in registrations:
        start, stop = _clip(registration, since, until)
        empty = stop is not None and stop <= start
        user = users[registration.user_id]
        counted = points.points_rows(session, [user], weights, start, stop)[0] if not empty else {}
        visits = 0 if empty else session.scalar(select(func.count()).select_from(Visit).where(
            Visit.author_id == user.id, Visit.deleted_at.is_(None), Visit.visited_at >= start,
            *([Visit.visited_at < stop] if stop else [])))
        rows.append({
            "registration_id": registration.id, "member_id": user.id, "display_name": user.display_name,
            "home_organisation": registration.home_organisation,
            "organisation_kind": registration.organisation_kind, "started_on": registration.started_on,
            "ended_on": registration.ended_on, "visits": visits,
            **{k: counted.get(k, 0) for k in ("approved_visits", "assistance_logs", "closed_requests", "points")}})
    totals = {k: sum(r[k] for r in rows) for k in ("visits", "approved_visits", "assistance_logs",
                                                   "closed_requests", "points")}
    return {"date_from": args.get("from_"), "date_to": args.get("to"), "rows": rows, "totals": totals}
