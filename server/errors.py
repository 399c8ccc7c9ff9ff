"""The one error shape, and the one table from error codes to HTTP statuses.

``{"error": {"code": "...", "message": "...", "details": {...}}}`` for every error, whatever raised it. The one
exception is a part of the site that people read in a browser (the console): it registers a page for its path
prefix, and its errors, decided here like every other, are drawn as that page with the same status.
"""
from __future__ import annotations

import logging
import uuid

from flask import Flask, current_app, g, has_request_context, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from sync.errors import LianhuError, RateLimitedError

log = logging.getLogger("lianhu.errors")

STATUS_BY_CODE = {
    "malformed_json": 400,
    "invalid_cursor": 400,
    "bad_request": 400,
    "unauthenticated": 401,
    "invalid_credentials": 401,
    "device_revoked": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "username_taken": 409,
    "schema_unsupported": 409,
    "id_taken": 409,
    "stale_delete": 409,
    "invalid_transition": 409,
    "op_id_reused": 409,
    "cursor_expired": 410,
    "code_used": 410,
    "batch_too_large": 413,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "validation_failed": 422,
    "hash_mismatch": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "unavailable": 503,
}

HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 410: "cursor_expired", 413: "body_too_large",
              415: "unsupported_media_type", 422: "validation_failed", 429: "rate_limited",
              503: "unavailable"}


PAGES_KEY = "lianhu.error_pages"


def register_page(app: Flask, prefix: str, render) -> None:
    """Errors under ``prefix`` (a path like ``/console``) are answered by ``render(code, message, details,
    status)``, which returns a response, instead of the JSON shape."""
    app.extensions.setdefault(PAGES_KEY, {})[prefix.rstrip("/")] = render


def _page_for(path: str):
    for prefix, render in current_app.extensions.get(PAGES_KEY, {}).items():
        if path == prefix or path.startswith(prefix + "/"):
            return render
    return None


def error_response(code: str, message: str, details: dict | None = None, status: int | None = None,
                   headers: dict | None = None):
    """Every error answer: the JSON shape, or the page registered for the request's path."""
    status = status or STATUS_BY_CODE.get(code, 400)
    render = _page_for(request.path) if has_request_context() else None
    response = None
    if render is not None:
        try:
            response = render(code, message, details or {}, status)
        except Exception:  # noqa: BLE001  a page that cannot be drawn must not turn an error into a crash
            log.exception("error page for %s failed; answering JSON", request.path)
    if response is None:
        response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
        response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_messages(messages) -> dict:
    """webargs nests errors by location ({"json": {...}}); the wire shape is field → messages."""
    if not isinstance(messages, dict):
        return {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    flat: dict = {}
    for location, errors in messages.items():
        if location in ("json", "query", "querystring", "form", "headers", "view_args", "files"):
            if isinstance(errors, dict):
                flat.update(errors)
            else:
                flat["_schema"] = errors
        else:
            flat[location] = errors
    return flat


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    headers = dict(data.get("headers") or {})
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 400 and messages and "json" in messages and not isinstance(messages["json"], dict):
        return error_response("malformed_json", "The body is not valid JSON.", {}, 400, headers)
    if status == 413:
        code = "batch_too_large" if request.path.endswith("/sync/push") else "body_too_large"
        return error_response(code, "The request body is too large.", {}, 413, headers)
    if status == 422:
        return error_response("validation_failed", "The input is not valid.",
                              _flatten_messages(messages or {}), 422, headers)
    if status >= 500:
        return _internal_error(error)
    code = HTTP_CODES.get(status, "bad_request")
    message = data.get("message") or error.description or error.name
    return error_response(code, message, _flatten_messages(messages) if messages else {}, status, headers)


def handle_lianhu_error(error: LianhuError):
    headers = dict(getattr(error, "headers", None) or {})  # e.g. an upload's Upload-Offset
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(error.retry_after)
    return error_response(error.code, error.message, error.details, STATUS_BY_CODE.get(error.code, 400), headers)


def handle_database_error(error: DBAPIError):
    if isinstance(error, OperationalError) or error.connection_invalidated:
        log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else error)
        return error_response("unavailable", "The database is not reachable; try again shortly.", {}, 503,
                              {"Retry-After": "5"})
    return _internal_error(error)


def _internal_error(error: BaseException):
    request_id = getattr(g, "request_id", None) or str(uuid.uuid4())
    log.error("unexpected error, request %s", request_id, exc_info=error)
    return error_response("internal_error", "Something went wrong on the server.", {"request_id": request_id}, 500)


def handle_unexpected(error: Exception):
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    if isinstance(error, LianhuError):
        return handle_lianhu_error(error)
    if isinstance(error, DBAPIError):
        return handle_database_error(error)
    return _internal_error(error)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(LianhuError, handle_lianhu_error)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
