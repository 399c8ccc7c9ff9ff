"""The coordinators' console: server-rendered pages under ``/console/`` over the API's own services.

Views stay thin like the API's: parse a form with a schema, call a service with the caller's ``Scope``,
render. The console holds no rule of its own; who sees what is still ``sync.policy``'s business.
"""
from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")


def init_app(app: Flask) -> None:
    from . import error_pages, i18n, security, views  # noqa: F401  (views attach their routes to ``bp``)

    # The session cookie carries the console's login: never readable by scripts, never sent cross-site.
    # (Flask's defaults hold these keys already, so they are set, not defaulted.) Whether it is sent over
    # HTTPS only is the deployment's SESSION_COOKIE_SECURE setting (server/config.py).
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_PATH"] = "/console"
    i18n.init_app(app)
    security.init_app(app)
    error_pages.init_app(app)  # errors under /console/ are pages, not the API's JSON
    app.register_blueprint(bp)
