"""The HTTP API (``/api/v1``) and its OpenAPI document, generated from the schemas."""
from __future__ import annotations

from flask_smorest import Api

from schemas.base import ErrorSchema

from .. import errors


class LianhuApi(Api):
    """flask-smorest with the protocol's one error shape, in answers and in the OpenAPI document."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


api = LianhuApi()


def init_app(app) -> None:
    from . import accounts, households, ops, requests, review, sync

    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    api.init_app(app)
    for module in (accounts, households, sync, requests, review, ops):
        for blueprint in module.BLUEPRINTS:
            api.register_blueprint(blueprint)
