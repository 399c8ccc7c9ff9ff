"""What every console page shares: the caller's scope, the area list, and errors shown as pages."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from sync.errors import LianhuError

from ...auth import coordinator_scope
from ...errors import STATUS_BY_CODE
from ...extensions import db
from ...services import accounts
from .. import bp
from ..i18n import gettext as _

# Errors a person can fix by changing the form they sent: shown on the page they came from.
FIXABLE = {"validation_failed", "conflict", "username_taken", "invalid_transition", "stale_delete", "code_used"}


def scope():
    return coordinator_scope()


def areas():
    """Every area in the caller's scope, for filters and forms (tree order)."""
    return accounts.list_areas(db.session, scope(), 1, 1000)["items"]


def members():
    return accounts.list_users(db.session, scope(), "member", None, 1, 1000)["items"]


def back(default_endpoint: str = "console.dashboard", **values):
    """Where to return after a form: the page it came from, if that is a console page."""
    target = request.form.get("back", "")
    if target.startswith("/console/") and "//" not in target and "\\" not in target:
        return redirect(target, 303)
    return redirect(url_for(default_endpoint, **values), 303)


def error_message(error: LianhuError) -> str:
    messages = {
        "not_found": _("Not found, or not in your area."),
        "forbidden": _("You may not do this."),
        "validation_failed": _("Some input is not valid."),
        "username_taken": _("That username is taken."),
        "invalid_credentials": _("Wrong username or password."),
        "invalid_transition": _("This step is not allowed in the request's current state."),
        "conflict": _("The record changed meanwhile; reload and try again."),
        "code_used": _("The code was already used or has expired."),
    }
    return messages.get(error.code, error.message)


@bp.errorhandler(LianhuError)
def _console_error(error: LianhuError):
    db.session.rollback()
    status = STATUS_BY_CODE.get(error.code, 400)
    if request.method == "POST" and error.code in FIXABLE:
        flash({"text": error_message(error), "details": error.details}, "error")
        return back()
    return render_template("console/error.html", error=error, message=error_message(error), status=status), status
