"""What every console page shares: the caller's scope, the area and member lists, and the way back from a form."""
from __future__ import annotations

from flask import redirect, request, url_for

from ...auth import coordinator_scope
from ...extensions import db
from ...services import accounts


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
