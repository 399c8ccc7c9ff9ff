"""Console login (a user token kept in the signed session cookie) and the CSRF check of every form."""
from __future__ import annotations

import hmac
import secrets

from flask import Flask, g, redirect, request, session, url_for

from sync.errors import ForbiddenError, UnauthenticatedError

from ..auth import authenticate_token
from . import bp

PUBLIC_ENDPOINTS = {"console.login", "console.login_post", "console.language", "console.static"}


class CsrfError(ForbiddenError):
    default_message = "The form has expired or did not come from this console; reload the page and try again."


def csrf_token() -> str:
    """The session's CSRF token, made on first use; every console form sends it back."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def start_session(token: str) -> None:
    """A fresh session for a fresh login: nothing from before (nor its CSRF token) carries over."""
    session.clear()
    session["token"] = token
    session["csrf"] = secrets.token_urlsafe(32)


@bp.before_request
def _check_csrf():
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfError()
    return None


@bp.before_request
def _require_login():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    token = session.get("token")
    try:
        if not token:
            raise UnauthenticatedError()
        authenticate_token(token)
    except UnauthenticatedError:
        session.pop("token", None)
        return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
    if g.device is not None or g.actor.role not in ("admin", "coordinator"):
        session.clear()
        raise ForbiddenError("The console is for coordinators.")
    return None


@bp.after_request
def _no_store(response):
    # Pages hold personal data: never kept in a shared browser's cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["has_page"] = lambda endpoint: endpoint in app.view_functions
