"""Statistics for coordinators: visit coverage per grid, and what residents ask for, where and how fast."""
from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync import requests as request_rules
from sync.models import Area, Household, Pairing, Request, utcnow
from sync.policy import Scope
from sync.settings import SyncSettings

RISING_MIN_COUNT = 2
"""A category "rises" when it has more requests than in the previous period and at least this many:
one request more than nothing is noise, not a trend."""


def _root_area(session: Session, scope: Scope, area_id: str | None) -> Area | None:
    """The area asked for, else the caller's own; ``None`` for an admin without one (everything)."""
    if area_id:
        return scope.require_area(session, area_id)
    if scope.actor.area_id:
        return scope.require_area(session, scope.actor.area_id)
    return None


def _areas_under(session: Session, scope: Scope, root: Area | None) -> list[Area]:
    stmt = select(Area).where(scope.areas())
    if root is not None:
        stmt = stmt.where(Area.path.startswith(root.path))
    return list(session.scalars(stmt))


def _grid_of(areas: list[Area]) -> dict[str, Area]:
    """Each area → the grid it lies in (a grid is its own; a community is left out)."""
    grids = {a.id: a for a in areas if a.kind == "grid"}
    result = {}
    for area in areas:
        for ancestor_id in filter(None, area.path.split("/")):
            if ancestor_id in grids:
                result[area.id] = grids[ancestor_id]
    return result


def coverage(session: Session, scope: Scope, area_id: str | None, settings: SyncSettings,
             now: dt.datetime | None = None) -> dict:
    """Per grid: households, those visited within their interval, the ratio, the overdue, the unpaired."""
    now = now or utcnow()
    root = _root_area(session, scope, area_id)
    areas = _areas_under(session, scope, root)
    grid_of = _grid_of(areas)
    area_ids = [a.id for a in areas]
    households = session.scalars(select(Household).where(
        scope.households(), Household.deleted_at.is_(None), Household.area_id.in_(area_ids)))
    paired = set(session.scalars(select(Pairing.household_id).where(
        Pairing.household_id.in_(select(Household.id).where(Household.area_id.in_(area_ids))))))
    empty = {"households": 0, "visited_within_interval": 0, "overdue": 0, "unpaired": 0}
    per_grid: dict[str, dict] = defaultdict(lambda: dict(empty))
    total = dict(empty)
    for household in households:
        grid = grid_of.get(household.area_id)
        rows = [total] + ([per_grid[grid.id]] if grid else [])
        interval = dt.timedelta(days=request_rules.visit_interval_days(household, settings))
        visited = household.last_visited_at is not None and household.last_visited_at + interval > now
        overdue = request_rules.visit_due_at(household, settings) <= now
        for row in rows:
            row["households"] += 1
            row["visited_within_interval"] += visited
            row["overdue"] += overdue
            row["unpaired"] += household.id not in paired

    def ratio(row):
        return round(row["visited_within_interval"] / row["households"], 4) if row["households"] else 0.0

    grids = sorted((a for a in areas if a.kind == "grid"), key=lambda a: (a.name, a.id))
    return {
        "area_id": root.id if root else None, "as_of": now, **total, "coverage": ratio(total),
        "grids": [{"area_id": g.id, "name": g.name, **per_grid[g.id], "coverage": ratio(per_grid[g.id])}
                  for g in grids],
    }


def _hours(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds() / 3600


def request_stats(session: Session, scope: Scope, area_id: str | None, days: int,
                  now: dt.datetime | None = None) -> dict:
    """Requests raised in the last ``days`` days: counts by category and status, how long feedback took,
    and the categories rising against the ``days`` before."""
    now = now or utcnow()
    since = now - dt.timedelta(days=days)
    before = since - dt.timedelta(days=days)
    root = _root_area(session, scope, area_id)
    stmt = select(Request).where(scope.records(Request), Request.deleted_at.is_(None), Request.raised_at >= before,
                                 Request.raised_at < now)
    if root is not None:
        stmt = stmt.where(Request.household_id.in_(select(Household.id).where(
            Household.area_id.in_(select(Area.id).where(Area.path.startswith(root.path))))))
    current, previous = [], Counter()
    for request in session.scalars(stmt):
        if request.raised_at >= since:
            current.append(request)
        else:
            previous[request.category] += 1
    by_category = Counter(r.category for r in current)
    by_category_status: dict[str, Counter] = defaultdict(Counter)
    for request in current:
        by_category_status[request.category][request.status] += 1
    closed = [r for r in current if r.status == "closed" and r.closed_at]
    to_feedback = [_hours(r.closed_at, r.resolved_at) for r in closed if r.resolved_at]
    rising = sorted(
        ({"category": c, "current": n, "previous": previous.get(c, 0)} for c, n in by_category.items()
         if n >= RISING_MIN_COUNT and n > previous.get(c, 0)),
        key=lambda r: (-(r["current"] - r["previous"]), r["category"]))
    return {
        "area_id": root.id if root else None, "days": days, "since": since, "total": len(current),
        "by_category": dict(by_category.most_common()),
        "by_status": dict(Counter(r.status for r in current)),
        "by_category_status": {c: dict(s) for c, s in by_category_status.items()},
        "overdue": sum(request_rules.is_overdue(r, now) for r in current),
        "median_hours_to_feedback": round(statistics.median(to_feedback), 2) if to_feedback else None,
        "median_hours_to_close": round(statistics.median(_hours(r.closed_at, r.raised_at) for r in closed), 2)
        if closed else None,
        "rising": rising,
    }
