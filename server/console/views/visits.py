"""Visits review: filter by area, member, dates and review state; approve or flag with a comment."""
from __future__ import annotations

from flask import flash, render_template, request

from schemas.review import ReviewArgs
from sync.models import Visit

from ...extensions import db
from ...services import review
from ...uow import write
from .. import bp
from ..forms import REVIEW_STATES, VisitFilter, day_range, parse
from ..i18n import gettext as _
from .common import areas, back, members, scope

PER_PAGE = 50


@bp.get("/visits")
def visit_list():
    """Visits in scope, newest first, with the review filters."""
    args = parse(VisitFilter(), request.args)
    since, until = day_range(args["date_from"], args["date_to"])
    result = review.list_visits(db.session, scope(), {
        "area_id": args["area_id"], "member_id": args["member_id"], "review": args["review"],
        "from_": since, "to": until, "page": args["page"], "per_page": PER_PAGE})
    return render_template("console/visits.html", result=result, args=args, areas=areas(),
                           members={m.id: m for m in members()}, states=REVIEW_STATES)


@bp.get("/visits/<uuid:visit_id>")
def visit_page(visit_id):
    """A visit in full, with its review form."""
    caller = scope()
    visit = caller.require(db.session, Visit, str(visit_id))
    return render_template("console/visit.html", visit=visit, members={m.id: m for m in members()})


@bp.post("/visits/<uuid:visit_id>/review")
@write
def visit_review(visit_id):
    """Approve or flag; the visit's author receives the review at the next pull."""
    args = parse(ReviewArgs(), request.form)
    review.review_visit(db.session, scope(), str(visit_id), args["decision"], args["comment"])
    flash({"text": _("Review saved; the member's tablet receives it at its next sync.")}, "ok")
    return back("console.visit_page", visit_id=visit_id)
