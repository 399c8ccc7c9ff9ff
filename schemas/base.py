"""The base of every wire schema: unknown fields are errors, strings are bounded and never hold NUL."""
from __future__ import annotations

import datetime as dt
import uuid

import marshmallow as ma
from marshmallow import fields, validate

SHORT = 200
LONG = 20_000
MAX_LIST = 50


class BaseSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True


def _no_nul(value):
    if isinstance(value, str) and "\x00" in value:
        raise ma.ValidationError("must not contain NUL characters")


class Str(fields.String):
    """A bounded string without NUL; ``limit`` defaults to the short-string limit."""

    def __init__(self, *args, limit: int = SHORT, **kwargs):
        extra = kwargs.pop("validate", None)
        validators = list(extra) if isinstance(extra, (list, tuple)) else ([extra] if extra else [])
        super().__init__(*args, validate=[validate.Length(max=limit), _no_nul, *validators], **kwargs)


def Text(*args, **kwargs) -> Str:
    return Str(*args, limit=LONG, **kwargs)


class UUIDStr(fields.String):
    """A UUID, answered in its canonical lowercase form."""

    default_error_messages = {"invalid_uuid": "Not a valid UUID."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(uuid.UUID(text))
        except (ValueError, AttributeError, TypeError):
            raise self.make_error("invalid_uuid") from None


class DateTimeTZ(fields.DateTime):
    """RFC 3339 with an offset in, UTC with ``Z`` out."""

    default_error_messages = {"naive": "Must carry a UTC offset (e.g. +08:00 or Z)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and "\x00" in value:
            raise self.make_error("invalid", input=value, obj_type="datetime")
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            raise self.make_error("naive")
        if not (1900 <= result.year <= 2200):
            raise ma.ValidationError("Out of range.")
        return result.astimezone(dt.timezone.utc)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is dt.timezone.utc:  # what the database hands back: no conversion to make
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class StrList(fields.List):
    """A list of short strings, at most ``MAX_LIST`` items, kept in order without duplicates."""

    def __init__(self, **kwargs):
        super().__init__(Str(), validate=validate.Length(max=MAX_LIST), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list) and len(value) > MAX_LIST:
            raise ma.ValidationError(f"At most {MAX_LIST} items.")
        items = super()._deserialize(value, attr, data, **kwargs)
        return list(dict.fromkeys(items))


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, no fractions, no booleans."""

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


def Int(**kwargs) -> fields.Integer:
    kwargs.setdefault("strict", True)
    return StrictInteger(**kwargs)


class Bool(fields.Boolean):
    """A JSON boolean: only true or false."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class PageArgs(BaseSchema):
    page = Int(load_default=1, validate=validate.Range(min=1, max=10_000_000))
    per_page = Int(load_default=50, validate=validate.Range(min=1, max=1000))


class PageArgsQuery(PageArgs):
    """Query-string page arguments: numbers come as text there."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    return type(name, (BaseSchema,), {
        "items": fields.List(fields.Nested(item_schema)),
        "page": fields.Integer(),
        "per_page": fields.Integer(),
        "total": fields.Integer(),
    })


class ErrorBody(BaseSchema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(BaseSchema):
    error = fields.Nested(ErrorBody, required=True)
