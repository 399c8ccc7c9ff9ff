"""The HTTP API (``/api/v1``) and its OpenAPI document, generated from the schemas."""
from __future__ import annotations

import json
import re
from typing import Any

from apispec import BasePlugin
from flask import Response, current_app
from flask_smorest import Api, Blueprint
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser

from schemas.base import ErrorSchema
from sync import jsoncodec

from .. import errors

LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonBodyParser(FlaskParser):
    """Read a request body as JSON whatever its ``Content-Type``.

    webargs reads a body only when it is declared ``application/json`` and silently treats any other body
    as absent, so a careful client that forgot the header would get "missing field" errors about fields it
    did send. Every body this API takes is JSON, so it is parsed as such; text that is not JSON answers
    400 ``malformed_json`` as usual.

    Query strings follow the schemas' own unknown-field policy (``BaseSchema``: unknown is an error), as
    bodies do: a misspelt filter such as ``?areaid=`` must not silently answer the unfiltered list.
    """

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _raw_load_json(self, req):
        raw = req.get_data(cache=True)
        data = webargs_core.parse_json(raw)
        # JSON may spell a lone UTF-16 surrogate (``"\\ud800"``), which is no Unicode text: UTF-8, and so
        # the database, cannot hold it. Such a body is not UTF-8 JSON; refuse it before it reaches a query.
        if LONE_SURROGATE_ESCAPE.search(raw):
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                self._handle_invalid_json_error(exc, req)
        return data


def json_answer(body: Any, status: int = 200) -> Response:
    """An answer already in wire form (dumped by its schema's compiled dumper), encoded once.

    ``@blp.response`` passes a ``Response`` through, so its schema still documents the answer while the
    sync routes skip the second, slower dump through marshmallow and the standard library's encoder.
    """
    return current_app.response_class(jsoncodec.dumps_bytes(body), status=status, mimetype="application/json")


# Set on the class before any route module is imported: ``@blp.arguments`` binds the parser when it decorates.
Blueprint.ARGUMENTS_PARSER = JsonBodyParser()


class ErrorResponsesPlugin(BasePlugin):
    """Every error answer in the document has the one error shape: an ``alt_response`` documented by its
    code alone (``401: invalid_credentials``) gets the error schema, so no error is shown without a body."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            for status, response in operation.get("responses", {}).items():
                is_error = str(status) == "default" or (str(status).isdigit() and int(status) >= 400)
                if is_error and isinstance(response, dict) and "content" not in response:
                    response["content"] = {"application/json": {"schema": "Error"}}


class LianhuApi(Api):
    """flask-smorest with the protocol's one error shape, in answers and in the OpenAPI document."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


api = LianhuApi(spec_kwargs={"extra_plugins": [ErrorResponsesPlugin()]})


def init_app(app) -> None:
    from ..services import webhooks
    from . import accounts, attachments, audit, fleet, households, ops, outreach, requests, review, sync, watermelondb

    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    api.init_app(app)
    webhooks.register_listeners()  # the request loop's moves become webhook deliveries
    for module in (accounts, attachments, fleet, households, sync, requests, review, ops, audit, watermelondb,
                   outreach):
        for blueprint in module.BLUEPRINTS:
            api.register_blueprint(blueprint)
