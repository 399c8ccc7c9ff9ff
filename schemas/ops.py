"""Conflicts and quarantined ops on the coordinators' side."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, PageArgsQuery, Str, Text, page_schema
from .sync import OpResult


class ConflictListArgs(PageArgsQuery):
    status = Str(load_default=None, validate=validate.OneOf(["open", "resolved"]))


class ConflictSchema(BaseSchema):
    id = fields.String()
    entity = fields.String()
    record_id = fields.String()
    field = fields.String()
    kept = fields.Raw(allow_none=True)
    discarded = fields.Raw(allow_none=True)
    status = fields.String()
    device_id = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    household_id = fields.String(allow_none=True)
    created_at = DateTimeTZ()
    resolved_at = DateTimeTZ(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolved_value = fields.Raw(allow_none=True)


class ConflictResolveArgs(BaseSchema):
    """``value`` is checked against the entity's own field schema by the service."""

    value = fields.Raw(required=True, allow_none=True)


class QuarantineListArgs(PageArgsQuery):
    status = Str(load_default=None, validate=validate.OneOf(["open", "retried", "discarded"]))


class QuarantineSchema(BaseSchema):
    id = fields.String()
    device_id = fields.String(allow_none=True)
    user_id = fields.String(allow_none=True)
    batch_id = fields.String(allow_none=True)
    op_id = fields.String(allow_none=True)
    op = fields.Raw()
    error = fields.Dict()
    status = fields.String()
    retry_result = fields.Dict(allow_none=True)
    discard_reason = fields.String(allow_none=True)
    handled_by = fields.String(allow_none=True)
    handled_at = DateTimeTZ(allow_none=True)
    created_at = DateTimeTZ()


class RetryArgs(BaseSchema):
    """``data`` replaces the op's data; it is validated like a pushed op's."""

    data = fields.Dict(allow_none=True, load_default=None)


class RetryAnswer(BaseSchema):
    result = fields.Nested(OpResult)
    quarantine = fields.Nested(QuarantineSchema)


class DiscardArgs(BaseSchema):
    reason = Text(required=True, validate=validate.Length(min=1))


ConflictPage = page_schema(ConflictSchema, "ConflictPage")
QuarantinePage = page_schema(QuarantineSchema, "QuarantinePage")
