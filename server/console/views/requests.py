"""The requests board: overdue first, then by status; assign, resolve, reopen; a request's events."""
from __future__ import annotations

from flask import flash, render_template, request

from schemas.requests import ReopenArgs, ResolveArgs

from ...extensions import db
from ...services import requests as request_service
from ...uow import write
from .. import bp
from ..forms import STATUSES, AssignForm, RequestFilter, end_of_day, parse
from ..i18n import gettext as _
from .common import areas, back, scope

PER_PAGE = 50


@bp.get("/requests")
def request_board():
    """Overdue requests first, then the rest (by status when one is chosen)."""
    session, caller = db.session, scope()
    args = parse(RequestFilter(), request.args)
    query = {"status": args["status"], "area_id": args["area_id"], "per_page": PER_PAGE}
    overdue = request_service.list_requests(session, caller, {**query, "overdue": True, "page": 1})
    others = request_service.list_requests(session, caller, {**query, "overdue": False, "page": args["page"]})
    counts = {status: request_service.list_requests(
        session, caller, {"status": status, "area_id": args["area_id"], "page": 1, "per_page": 1})["total"]
        for status in STATUSES}
    return render_template("console/requests.html", overdue=overdue, others=others, counts=counts, args=args,
                           areas=areas(), statuses=STATUSES)


@bp.get("/requests/<uuid:request_id>")
def request_page(request_id):
    """A request with its events, its feedback task and deadlines."""
    item = request_service.get_request(db.session, scope(), str(request_id))
    return render_template("console/request.html", item=item)


@bp.post("/requests/<uuid:request_id>/assign")
@write
def request_assign(request_id):
    args = parse(AssignForm(), request.form)
    request_service.assign(db.session, scope(), str(request_id), args["handler"], end_of_day(args["due_date"]))
    flash({"text": _("Request assigned.")}, "ok")
    return back("console.request_page", request_id=request_id)


@bp.post("/requests/<uuid:request_id>/resolve")
@write
def request_resolve(request_id):
    args = parse(ResolveArgs(), request.form)
    request_service.resolve(db.session, scope(), str(request_id), args["resolution"])
    flash({"text": _("Request resolved; the paired member gets a task to bring the answer back.")}, "ok")
    return back("console.request_page", request_id=request_id)


@bp.post("/requests/<uuid:request_id>/reopen")
@write
def request_reopen(request_id):
    args = parse(ReopenArgs(), request.form)
    request_service.reopen(db.session, scope(), str(request_id), args["note"])
    flash({"text": _("Request reopened.")}, "ok")
    return back("console.request_page", request_id=request_id)
