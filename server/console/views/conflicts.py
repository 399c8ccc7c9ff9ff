"""Conflicts (both values side by side, choose one) and quarantine (rejected ops: retry or discard)."""
from __future__ import annotations

import json

from flask import flash, render_template, request

from schemas.ops import DiscardArgs
from sync.errors import ValidationFailedError

from ...extensions import db
from ...services import conflicts, quarantine
from ...uow import write
from .. import bp
from ..forms import ConflictChoice, QuarantineRetry, StatusFilter, parse
from ..i18n import gettext as _
from .common import back, scope

PER_PAGE = 50


def _status(args) -> str | None:
    return None if args["status"] == "all" else args["status"]


@bp.get("/conflicts")
def conflict_list():
    """Fields changed on both sides: the value kept and the one discarded."""
    args = parse(StatusFilter(), request.args)
    result = conflicts.list_conflicts(db.session, scope(), _status(args), args["page"], PER_PAGE)
    return render_template("console/conflicts.html", result=result, args=args)


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@write
def conflict_resolve(conflict_id):
    """Keep one of the two values; the other side's value comes back as a new version."""
    choice = parse(ConflictChoice(), request.form)["choice"]
    caller = scope()
    value = getattr(conflicts.get_conflict(db.session, caller, str(conflict_id)), choice)
    conflicts.resolve_conflict(db.session, caller, str(conflict_id), value)
    flash({"text": _("Conflict resolved.")}, "ok")
    return back("console.conflict_list")


@bp.get("/quarantine")
def quarantine_list():
    """Rejected ops, as sent, with their reasons."""
    args = parse(StatusFilter(), request.args)
    result = quarantine.list_quarantine(db.session, scope(), _status(args), args["page"], PER_PAGE)
    return render_template("console/quarantine.html", result=result, args=args)


@bp.post("/quarantine/<uuid:entry_id>/retry")
@write
def quarantine_retry(entry_id):
    """Apply the op again, as sent or with corrected data."""
    text = parse(QuarantineRetry(), request.form)["data"]
    try:
        data = json.loads(text) if text else None
    except ValueError:
        raise ValidationFailedError(details={"data": [_("Not valid JSON.")]}) from None
    outcome = quarantine.retry(db.session, scope(), str(entry_id), data)
    if outcome["result"]["status"] == "rejected":
        flash({"text": _("Still rejected: %(reason)s", reason=outcome["result"]["error"]["message"]),
               "details": outcome["result"]["error"].get("details")}, "error")
    else:
        flash({"text": _("Applied again.")}, "ok")
    return back("console.quarantine_list")


@bp.post("/quarantine/<uuid:entry_id>/discard")
@write
def quarantine_discard(entry_id):
    """Keep the op on record as discarded, with a reason."""
    args = parse(DiscardArgs(), request.form)
    quarantine.discard(db.session, scope(), str(entry_id), args["reason"])
    flash({"text": _("Discarded.")}, "ok")
    return back("console.quarantine_list")
