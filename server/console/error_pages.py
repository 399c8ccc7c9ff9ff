"""Errors under ``/console/`` drawn as a console page in the reader's language, with the status the API would give.

``server/errors.py`` stays the one handler: it decides every error's code, status and headers, and calls
``render`` here instead of building JSON when the path is the console's. A form error a person can fix goes back
to the form as a message; anything else is the error page (title, message, a way back, and for a server failure
the request id to quote when reporting it).
"""
from __future__ import annotations

from flask import Flask, flash, g, make_response, render_template, request

from .. import errors
from ..extensions import db
from . import bp
from .i18n import lazy_gettext
from .views.common import back

# Errors a person can fix by changing the form they sent: shown on the page they came from.
FIXABLE = {"validation_failed", "conflict", "username_taken", "invalid_transition", "stale_delete", "code_used"}

MESSAGES = {
    "not_found": lazy_gettext("Not found, or not in your area."),
    "forbidden": lazy_gettext("You may not do this."),
    "validation_failed": lazy_gettext("Some input is not valid."),
    "username_taken": lazy_gettext("That username is taken."),
    "invalid_credentials": lazy_gettext("Wrong username or password."),
    "invalid_transition": lazy_gettext("This step is not allowed in the request's current state."),
    "conflict": lazy_gettext("The record changed meanwhile; reload and try again."),
    "code_used": lazy_gettext("The code was already used or has expired."),
    "method_not_allowed": lazy_gettext("This page cannot be used that way; go back and use its links and buttons."),
    "bad_request": lazy_gettext("The request could not be read; go back and try again."),
    "body_too_large": lazy_gettext("What was sent is too large."),
    "rate_limited": lazy_gettext("Too many attempts; wait a few minutes and try again."),
    "internal_error": lazy_gettext("Something went wrong on the server. Please try again; if it happens again, "
                                   "tell the administrator the request id below."),
    "unavailable": lazy_gettext("The server cannot reach its database right now; try again in a moment."),
}

TITLES = {
    400: lazy_gettext("Bad request"),
    403: lazy_gettext("Not allowed"),
    404: lazy_gettext("Page not found"),
    405: lazy_gettext("Not allowed"),
    409: lazy_gettext("Changed meanwhile"),
    413: lazy_gettext("Too large"),
    422: lazy_gettext("Input not valid"),
    429: lazy_gettext("Too many attempts"),
    500: lazy_gettext("Server error"),
    503: lazy_gettext("Temporarily unavailable"),
}


def message_for(code: str, fallback: str) -> str:
    """The error in the reader's language; a code without a console wording keeps the server's own text."""
    return str(MESSAGES.get(code, fallback))


def render(code: str, message: str, details: dict, status: int):
    # The failed request's transaction must not be used again to draw the page (PostgreSQL refuses to).
    db.session.rollback()
    if request.method == "POST" and code in FIXABLE:
        flash({"text": message_for(code, message), "details": details}, "error")
        return back()
    if status >= 500:
        # The server itself failed: draw the page without the menu, which would ask the database for the user.
        g.pop("user", None)
    page = render_template(
        "console/error.html", code=code, status=status, details=details,
        title=str(TITLES.get(status, lazy_gettext("Error"))), message=message_for(code, message),
        request_id=(details.get("request_id") or g.get("request_id")) if status >= 500 else None)
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"  # unknown URLs never reach the blueprint's own hook
    return response


def init_app(app: Flask) -> None:
    errors.register_page(app, bp.url_prefix, render)
