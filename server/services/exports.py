"""Rows for reports: visits, assistance logs and requests in scope, by area and time, streamed in batches.

Each export yields plain dicts (one per record, with the household's address and area and the author's
name joined in), so a caller can write them as CSV or XLSX without holding the whole result in memory.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.models import Area, AssistanceLog, Household, Request, User, Visit
from sync.policy import Scope

BATCH = 500

KINDS = ("visits", "assistance_logs", "requests")

# The columns of each export, in order; the console gives each a translated header.
COLUMNS: dict[str, tuple[str, ...]] = {
    "visits": ("visited_at", "area", "address", "head_name", "author", "kind", "summary", "duration_minutes",
               "review_state", "id"),
    "assistance_logs": ("occurred_at", "area", "address", "head_name", "author", "category", "description",
                        "minutes", "id"),
    "requests": ("raised_at", "area", "address", "head_name", "category", "description", "urgency", "status",
                 "handler", "due_at", "resolution", "resolved_at", "feedback_due_at", "closed_at",
                 "satisfaction", "id"),
}

_SOURCES = {"visits": (Visit, Visit.visited_at), "assistance_logs": (AssistanceLog, AssistanceLog.occurred_at),
            "requests": (Request, Request.raised_at)}


def _filtered(session: Session, scope: Scope, kind: str, area_id: str | None, since: dt.datetime | None,
              until: dt.datetime | None, *columns):
    model, at = _SOURCES[kind]
    stmt = (select(*columns)
            .join(Household, Household.id == model.household_id)
            .join(Area, Area.id == Household.area_id)
            .where(scope.records(model), model.deleted_at.is_(None)))
    if area_id:
        area = scope.require_area(session, area_id)
        stmt = stmt.where(Area.path.startswith(area.path))
    if since is not None:
        stmt = stmt.where(at >= since)
    if until is not None:
        stmt = stmt.where(at < until)
    return stmt


def households_of(session: Session, scope: Scope, kind: str, area_id: str | None, since: dt.datetime | None,
                  until: dt.datetime | None) -> list[str]:
    """The households an export covers, for the audit log before its first row goes out."""
    model, _ = _SOURCES[kind]
    stmt = _filtered(session, scope, kind, area_id, since, until, model.household_id)
    return list(session.scalars(stmt.distinct()))


def rows(session: Session, scope: Scope, kind: str, area_id: str | None, since: dt.datetime | None,
         until: dt.datetime | None) -> Iterator[dict]:
    """Records of ``kind`` in scope (and under ``area_id``), with ``since <= time < until``, oldest first."""
    model, at = _SOURCES[kind]
    stmt = (_filtered(session, scope, kind, area_id, since, until,
                      model, Household.address, Household.head_name, Area.name, User.display_name)
            .outerjoin(User, User.id == model.author_id))
    stmt = stmt.order_by(at, model.id).execution_options(yield_per=BATCH)
    for record, address, head_name, area_name, author in session.execute(stmt):
        joined = {"area": area_name, "address": address, "head_name": head_name, "author": author}
        yield {name: joined[name] if name in joined else getattr(record, name) for name in COLUMNS[kind]}
