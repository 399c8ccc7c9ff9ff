"""Members' points for their service, as party branches score it: computed from the records themselves
(approved visits, assistance logs, requests closed by the member's feedback), so they never drift."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from sync.errors import NotFoundError
from sync.models import Area, AssistanceLog, Request, RequestEvent, User, Visit
from sync.policy import Scope

KINDS = ("approved_visit", "assistance_log", "closed_request")


def _in_period(column, start: dt.datetime | None, end: dt.datetime | None):
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return and_(*clauses) if clauses else true()


def _counts(session: Session, member_ids: list[str], start, end) -> dict[str, dict[str, int]]:
    """{kind: {member_id: count}} for the members, over the period."""
    queries = {
        "approved_visit": select(Visit.author_id, func.count()).where(
            Visit.author_id.in_(member_ids), Visit.review_state == "approved", Visit.deleted_at.is_(None),
            _in_period(Visit.visited_at, start, end)).group_by(Visit.author_id),
        "assistance_log": select(AssistanceLog.author_id, func.count()).where(
            AssistanceLog.author_id.in_(member_ids), AssistanceLog.deleted_at.is_(None),
            _in_period(AssistanceLog.occurred_at, start, end)).group_by(AssistanceLog.author_id),
        # the request is credited to whoever delivered the feedback that closed it
        "closed_request": select(RequestEvent.author_id, func.count()).join(
            Request, and_(Request.id == RequestEvent.request_id, Request.closed_at == RequestEvent.effective_at)
        ).where(
            RequestEvent.author_id.in_(member_ids), RequestEvent.action == "feedback_delivered",
            RequestEvent.deleted_at.is_(None), Request.status == "closed",
            _in_period(Request.closed_at, start, end)).group_by(RequestEvent.author_id),
    }
    return {kind: dict(session.execute(query).all()) for kind, query in queries.items()}


def _rows(users: list[User], counts, weights: dict[str, int]) -> list[dict]:
    rows = []
    for user in users:
        row = {"member_id": user.id, "display_name": user.display_name, "area_id": user.area_id,
               "approved_visits": counts["approved_visit"].get(user.id, 0),
               "assistance_logs": counts["assistance_log"].get(user.id, 0),
               "closed_requests": counts["closed_request"].get(user.id, 0)}
        row["points"] = (row["approved_visits"] * weights["approved_visit"]
                         + row["assistance_logs"] * weights["assistance_log"]
                         + row["closed_requests"] * weights["closed_request"])
        rows.append(row)
    return rows


def member_points(session: Session, scope: Scope, member_id: str, weights: dict[str, int],
                  start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict:
    try:
        user = scope.require_user(session, member_id)
    except NotFoundError:
        raise NotFoundError("No such member.", {"member_id": member_id}) from None
    if user.role != "member":
        raise NotFoundError("No such member.", {"member_id": member_id})
    return _rows([user], _counts(session, [user.id], start, end), weights)[0]


def leaderboard(session: Session, scope: Scope, area_id: str | None, weights: dict[str, int],
                page: int, per_page: int, start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict:
    """Members in scope (under ``area_id``), most points first."""
    stmt = select(User).where(scope.users(), User.role == "member", User.active.is_(True))
    if area_id:
        area = scope.require_area(session, area_id)
        stmt = stmt.where(User.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    users = list(session.scalars(stmt))
    rows = _rows(users, _counts(session, [u.id for u in users], start, end), weights)
    rows.sort(key=lambda r: (-r["points"], r["display_name"], r["member_id"]))
    first = (page - 1) * per_page
    return {"items": rows[first:first + per_page], "page": page, "per_page": per_page, "total": len(rows)}


def points_rows(session: Session, users: list[User], weights: dict[str, int],
                start: dt.datetime | None = None, end: dt.datetime | None = None) -> list[dict]:
    """The points row of each of ``users`` (already scoped by the caller), in their order."""
    return _rows(users, _counts(session, [u.id for u in users], start, end), weights)
