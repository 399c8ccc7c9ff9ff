"""Log in and out of the console."""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for

from schemas.accounts import LoginArgs
from sync.errors import ForbiddenError, InvalidCredentialsError

from ...extensions import db
from ...services import accounts
from ...uow import write
from .. import bp
from ..forms import parse
from ..i18n import gettext as _
from ..security import start_session
from .common import back

CONSOLE_ROLES = ("admin", "coordinator")


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return url_for("console.dashboard")


@bp.get("/login")
def login():
    """The login form."""
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_post():
    """Check the password, then keep a user token in the session (the API's own login)."""
    try:
        token = _login(parse(LoginArgs(), request.form))
    except (InvalidCredentialsError, ForbiddenError) as exc:
        message = _("Wrong username or password.") if isinstance(exc, InvalidCredentialsError) \
            else _("The console is for coordinators and admins.")
        return render_template("console/login.html", error=message, next=request.form.get("next", "")), 401
    start_session(token)
    return redirect(_safe_next(request.form.get("next")), 303)


@write
def _login(args: dict) -> str:
    answer = accounts.login(db.session, args["username"], args["password"], current_app.config["TOKEN_TTL_HOURS"])
    if answer["user"].role not in CONSOLE_ROLES:
        raise ForbiddenError()  # rolls the new token back
    return answer["token"]


@bp.post("/logout")
@write
def logout():
    """End the session and its token."""
    accounts.logout(db.session, session["token"])
    session.clear()
    return redirect(url_for("console.login"), 303)


@bp.get("/")
def index():
    return redirect(url_for("console.dashboard"))


@bp.post("/language")
def language():
    """Remember the chosen language for this session."""
    session["lang"] = request.form.get("lang", "")
    return back()
