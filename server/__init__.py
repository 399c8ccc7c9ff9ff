"""The Flask application: ``create_app()`` builds it from defaults, the environment and test overrides."""
from __future__ import annotations

import uuid

from flask import Flask, g, jsonify, request
from sqlalchemy import text

from . import config as config_module
from . import errors
from .extensions import db, init_db


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    settings = config_module.load(config)
    app.config.update(settings)
    app.json.sort_keys = False
    from . import logging as request_logging

    request_logging.init_app(app)  # first: its clock starts before every other hook

    if app.config["PROXY_COUNT"]:  # behind nginx: the client's address, not the proxy's
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    init_db(app)
    errors.init_app(app)

    from . import api as api_module
    from . import cli, console, docs

    api_module.init_app(app)
    errors.init_app(app)  # after flask-smorest, whose own handler it replaces
    cli.init_app(app)
    docs.init_app(app)
    console.init_app(app)

    @app.before_request
    def _request_id():
        for name in ("actor", "user", "device"):  # never carried over from another request
            g.pop(name, None)
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else str(uuid.uuid4())

    from . import auth

    auth.init_app(app)  # after the request id is set and ``g`` is cleared

    @app.after_request
    def _headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    from . import metrics

    metrics.init_app(app)

    from .services import audit

    audit.init_app(app)  # after the headers hook, so that it runs before it on the way out

    @app.get("/healthz")
    def healthz():
        """The process is up."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        """The database answers."""
        db.session.execute(text("SELECT 1"))
        return jsonify({"status": "ready"})

    return app
