"""Sweeps that keep households from being forgotten: due visits become tasks for their members.

A household is due for a visit an interval after its last visit (or after it was added); the interval
is its own ``visit_interval_days``, else the shortest interval of its tags, else the default
(``sync.requests.visit_interval_days``). A sweep is safe to run again and from several workers: it opens
at most one ``due_visit`` task per household, and on PostgreSQL a transaction-scoped advisory lock
keeps two sweeps from deciding at once (SQLite has one writer anyway).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from sync import requests as request_rules
from sync.models import Area, Household, Pairing, Task, utcnow
from sync.policy import Actor, Scope
from sync.settings import SyncSettings

from . import webhooks

SWEEP_ACTOR = Actor(user_id="sweep", role="admin")
"""The author of what sweeps make, so the change log says a job did it, not a person."""

SWEEP_LOCK_KEY = 0x4C48_5357  # "LHSW": one advisory lock for the due-visit sweep


@dataclass
class DueHousehold:
    household_id: str
    address: str
    head_name: str | None
    area_id: str
    member_id: str | None
    interval_days: int
    last_visited_at: dt.datetime | None
    due_at: dt.datetime
    days_overdue: int


def due_households(session: Session, scope: Scope, settings: SyncSettings, now: dt.datetime,
                   area: Area | None = None) -> list[DueHousehold]:
    """Households in scope (under ``area``) whose next visit was due before ``now``, most overdue first.

    Only the columns the rule needs are read, and the database drops every household seen more
    recently than the shortest configured interval, so a sweep over a district stays cheap.
    """
    shortest = min([*settings.visit_interval_days.values(), settings.default_visit_interval_days])
    last_seen = func.coalesce(Household.last_visited_at, Household.created_at)
    stmt = select(Household.id, Household.address, Household.head_name, Household.area_id, Household.tags,
                  Household.visit_interval_days, Household.last_visited_at, Household.created_at).where(
        scope.households(), Household.deleted_at.is_(None),
        or_(Household.visit_interval_days.is_not(None), last_seen <= now - dt.timedelta(days=shortest)))
    if area is not None:
        stmt = stmt.where(Household.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    due = []
    for row in session.execute(stmt.execution_options(yield_per=2000)):
        due_at = request_rules.visit_due_at(row, settings)
        if due_at > now:
            continue
        due.append(DueHousehold(
            row.id, row.address, row.head_name, row.area_id, None, request_rules.visit_interval_days(row, settings),
            row.last_visited_at, due_at, math.floor((now - due_at).total_seconds() / 86400)))
    members = _members_of(session, [d.household_id for d in due])
    for item in due:
        item.member_id = members.get(item.household_id)
    due.sort(key=lambda d: (d.due_at, d.household_id))
    return due


def _members_of(session: Session, household_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(household_ids), 1000):  # bounded IN lists
        chunk = household_ids[start:start + 1000]
        found.update(session.execute(select(Pairing.household_id, Pairing.member_id).where(
            Pairing.household_id.in_(chunk))).all())
    return found


def list_due_visits(session: Session, scope: Scope, settings: SyncSettings, area_id: str | None,
                    unpaired: bool | None, page: int, per_page: int, now: dt.datetime | None = None) -> dict:
    area = scope.require_area(session, area_id) if area_id else None
    due = due_households(session, scope, settings, now or utcnow(), area)
    if unpaired is not None:
        due = [d for d in due if (d.member_id is None) == unpaired]
    start = (page - 1) * per_page
    return {"items": due[start:start + per_page], "page": page, "per_page": per_page, "total": len(due)}


def sweep_due_visits(session: Session, settings: SyncSettings, now: dt.datetime | None = None) -> dict:
    """Open a ``due_visit`` task for each overdue paired household that has none; report the unpaired."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK_KEY})
    due = due_households(session, Scope(SWEEP_ACTOR), settings, now)
    with_open_task = set(session.scalars(select(Task.household_id).where(
        Task.kind == "due_visit", Task.status == "open", Task.deleted_at.is_(None))))
    opened = 0
    unpaired = []
    announcer = webhooks.OverdueAnnouncer(session)  # other platforms hear of each overdue spell once
    for item in due:
        if announcer:
            announcer.announce(item.household_id, item.due_at, item.days_overdue, item.member_id, now)
        if item.member_id is None:
            unpaired.append(item.household_id)
            continue
        if item.household_id in with_open_task:
            continue
        household = session.get(Household, item.household_id)
        message = f"{item.address}已{item.interval_days + item.days_overdue}天未走访（应每{item.interval_days}天走访一次）"
        if request_rules.open_due_visit_task(session, SWEEP_ACTOR, household, item.member_id, item.due_at,
                                             message, now) is not None:
            opened += 1
    return {"overdue": len(due), "tasks_opened": opened, "unpaired_overdue": unpaired}
