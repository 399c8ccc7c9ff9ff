"""Structured logs: every log record is one JSON line, with one line per request and one per worker job.

The request line carries what an operator needs to follow a request through the fleet (request id,
endpoint, method, status, duration, device and user ids, ops in and out of a sync call) and nothing
personal: no path or query string (a household search puts names there), no body, no address, no
name, no phone, no client address. Services add their counts with ``annotate``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time

from flask import Flask, g, has_request_context, request

request_log = logging.getLogger("lianhu.request")
job_log = logging.getLogger("lianhu.job")

# Attributes every ``LogRecord`` has; anything else was passed with ``extra=`` and goes into the line.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields}`` on one line; tracebacks as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str) -> None:
    """One JSON handler on the root logger (once per process, however many apps are made)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    # The development server's access line shows the path and query (personal data); ours replaces it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def annotate(**fields) -> None:
    """Add counts (never personal data) to this request's log line; a no-op outside a request."""
    if has_request_context():
        g.setdefault("log_fields", {}).update(fields)


def request_seconds() -> float | None:
    """How long the current request has run, from the first thing the app did with it."""
    started = g.get("request_started")
    return None if started is None else time.perf_counter() - started


@contextlib.contextmanager
def job(name: str, **fields):
    """Log one line per worker job with its outcome and duration; the body may add fields to the dict."""
    started = time.perf_counter()
    outcome = {"job": name, **fields}
    try:
        yield outcome
    except Exception:
        outcome.setdefault("status", "error")
        raise
    finally:
        outcome.setdefault("status", "ok")
        outcome["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        job_log.log(logging.WARNING if outcome["status"] == "error" else logging.INFO, "job", extra=outcome)


def init_app(app: Flask) -> None:
    configure(app.config["LOG_LEVEL"])

    def _start_clock():
        g.request_started = time.perf_counter()
        g.pop("log_fields", None)  # ``g`` outlives a request where an app context was pushed around it

    # First of all hooks, so the duration includes authentication and everything after it.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)

    @app.after_request
    def _log_request(response):
        user_id, device_id = _caller_ids()
        seconds = request_seconds()
        request_log.info("request", extra={
            "request_id": g.get("request_id"),
            "endpoint": request.endpoint or "unmatched",
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1) if seconds is not None else None,
            "user_id": user_id,
            "device_id": device_id,
            **g.get("log_fields", {}),
        })
        return response


def _caller_ids() -> tuple[str | None, str | None]:
    """The caller's user and device ids, from the ``Actor`` that authentication made.

    Not ``g.user.id``: by now the request has committed, which expires the session's rows, so reading
    an attribute of ``g.user`` or ``g.device`` would load them again, a second transaction per request
    (on SQLite a ``BEGIN IMMEDIATE``, the write lock) for a log line. An integration has no user id."""
    actor = g.get("actor")
    if actor is None or actor.is_integration:
        return None, None
    return actor.user_id, actor.device_id
