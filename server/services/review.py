"""Coordinators' review of visits: a decision is a ``review`` record the visit's author pulls."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.apply import log_record, write_fields
from sync.models import Review, Visit, new_id, utcnow
from sync.policy import Scope

from .common import paginate
from .requests import households_under

REVIEW_FIELDS = ("visit_id", "household_id", "decision", "comment", "reviewer_id", "recipient_id", "summary")


def list_visits(session: Session, scope: Scope, args: dict) -> dict:
    stmt = select(Visit).where(scope.records(Visit), Visit.deleted_at.is_(None))
    if args.get("area_id"):
        stmt = stmt.where(Visit.household_id.in_(households_under(scope.require_area(session, args["area_id"]))))
    if args.get("member_id"):
        stmt = stmt.where(Visit.author_id == args["member_id"])
    if args.get("household_id"):
        stmt = stmt.where(Visit.household_id == args["household_id"])
    if args.get("review"):
        stmt = stmt.where(Visit.review_state == args["review"])
    if args.get("from_"):
        stmt = stmt.where(Visit.visited_at >= args["from_"])
    if args.get("to"):
        stmt = stmt.where(Visit.visited_at < args["to"])
    return paginate(session, stmt, args["page"], args["per_page"], (Visit.visited_at.desc(), Visit.id))


def review_visit(session: Session, scope: Scope, visit_id: str, decision: str, comment: str | None) -> Review:
    """Approve or flag a visit. A visit has one review: reviewing again changes it (a new version).

    The review is addressed to the visit's author, who pulls it even if the household has since
    moved to another member, and it carries the visit's summary so the tablet can show what it is about.
    """
    visit = scope.require(session, Visit, visit_id)
    now = utcnow()
    actor = scope.actor
    values = {"decision": decision, "comment": comment, "reviewer_id": actor.user_id, "summary": visit.summary}
    review = session.scalar(select(Review).where(Review.visit_id == visit.id, Review.deleted_at.is_(None)))
    if review is None:
        review = Review(id=new_id(), visit_id=visit.id, household_id=visit.household_id,
                        community_id=visit.community_id, recipient_id=visit.author_id, version=1,
                        created_at=now, updated_at=now, author_id=actor.user_id, **values)
        session.add(review)
        session.flush()
        log_record(session, actor, "review", review, "create",
                   {k: [None, getattr(review, k)] for k in REVIEW_FIELDS}, now)
    else:
        write_fields(session, actor, "review", review, values, now)
    write_fields(session, actor, "visit", visit, {"review_state": decision}, now)
    return review



