"""Households and pairings for coordinators: online edits go through the engine like a tablet's."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sync.apply import Change, apply_change, set_pairing
from sync.errors import NotFoundError, OpRejected, ValidationFailedError
from sync.models import Area, AssistanceLog, Household, Pairing, Request, Resident, Visit, new_id, utcnow
from sync.policy import Scope

from . import audit
from .common import as_call_error, paginate, sync_settings


def with_pairing(session: Session, household: Household) -> Household:
    """Attach ``member_id`` for the wire (the pairing is its own table)."""
    attach_pairings(session, [household])
    return household


def attach_pairings(session: Session, households: list[Household]) -> None:
    """``with_pairing`` for many households (a pull page), in one query."""
    if not households:
        return
    members = dict(session.execute(select(Pairing.household_id, Pairing.member_id)
                                   .where(Pairing.household_id.in_({h.id for h in households}))).all())
    for household in households:
        household.member_id = members.get(household.id)


def create(session: Session, scope: Scope, data: dict) -> Household:
    data = dict(data)
    record_id = data.pop("id", None) or new_id()
    try:
        outcome = apply_change(session, scope.actor, Change("household", record_id, "create", data, None, utcnow()),
                               sync_settings())
    except OpRejected as exc:
        if exc.code == "id_taken":
            exc.code = "conflict"
        raise as_call_error(exc) from None
    return with_pairing(session, outcome.record)


def search(session: Session, scope: Scope, area_id: str | None, q: str | None, page: int, per_page: int,
           member_id: str | None = None, unpaired: bool | None = None) -> dict:
    stmt = select(Household).where(scope.households(), Household.deleted_at.is_(None))
    if area_id:
        area = scope.require_area(session, area_id)
        stmt = stmt.where(Household.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    if q:
        # The text is searched for as typed: LIKE's wildcards in it are escaped, not dropped (a dropped
        # one would leave an empty pattern that matches every household).
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Household.address.ilike(like, escape="\\"),
                              Household.head_name.ilike(like, escape="\\")))
    if member_id:
        stmt = stmt.where(Household.id.in_(select(Pairing.household_id).where(Pairing.member_id == member_id)))
    if unpaired:
        stmt = stmt.where(Household.id.not_in(select(Pairing.household_id)))
    result = paginate(session, stmt, page, per_page, (Household.address, Household.id))
    pairings = dict(session.execute(select(Pairing.household_id, Pairing.member_id).where(
        Pairing.household_id.in_([h.id for h in result["items"]]))).all())
    for household in result["items"]:
        household.member_id = pairings.get(household.id)
    audit.record(scope.actor, "list", result["items"])
    result["items"] = audit.masked(result["items"])
    return result


def get(session: Session, scope: Scope, household_id: str) -> Household:
    household = with_pairing(session, scope.require(session, Household, household_id))
    audit.record(scope.actor, "read", [household])
    return household


def edit(session: Session, scope: Scope, household_id: str, base_version: int, data: dict) -> Household:
    scope.require(session, Household, household_id)
    change = Change("household", household_id, "update", data, base_version, utcnow())
    try:
        outcome = apply_change(session, scope.actor, change, sync_settings())
    except OpRejected as exc:
        raise as_call_error(exc) from None
    household = with_pairing(session, outcome.record)
    household.conflicts = [c.as_dict() for c in outcome.conflicts]
    return household


def pair(session: Session, scope: Scope, household_id: str, member_id: str | None) -> Household:
    household = scope.require(session, Household, household_id)
    if member_id is not None:
        try:
            member = scope.require_user(session, member_id)
        except NotFoundError:
            raise NotFoundError("No such member.", {"member_id": member_id}) from None
        if member.role != "member" or not member.active:
            raise ValidationFailedError(details={"member_id": ["must be an active member"]})
    set_pairing(session, scope.actor, household, member_id)
    return with_pairing(session, household)


def residents(session: Session, scope: Scope, household_id: str) -> list[Resident]:
    """The household's residents (the household must be in scope)."""
    audit.record(scope.actor, "read", [scope.require(session, Household, household_id)], entity="resident")
    return list(session.scalars(select(Resident).where(
        Resident.household_id == household_id, scope.records(Resident), Resident.deleted_at.is_(None))
        .order_by(Resident.created_at, Resident.id)))


TIMELINE_SOURCES = ((Visit, "visit", Visit.visited_at), (AssistanceLog, "assistance_log", AssistanceLog.occurred_at),
                    (Request, "request", Request.raised_at))


def timeline(session: Session, scope: Scope, household_id: str, limit: int = 200) -> list[dict]:
    """The household's visits, assistance and requests, newest first: ``{kind, at, record}``."""
    audit.record(scope.actor, "read", [scope.require(session, Household, household_id)], entity="timeline")
    entries = []
    for model, kind, at in TIMELINE_SOURCES:
        rows = session.scalars(select(model).where(
            model.household_id == household_id, scope.records(model), model.deleted_at.is_(None))
            .order_by(at.desc()).limit(limit))
        entries += [{"kind": kind, "at": getattr(row, at.key), "record": row} for row in rows]
    entries.sort(key=lambda e: e["at"], reverse=True)
    return entries[:limit]
