"""The sync envelopes: push batch and answer, pull page."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, Int, Str, UUIDStr

ENTITIES = ["household", "resident", "visit", "assistance_log", "request", "request_event", "task", "review"]
ACTIONS = ["create", "update", "delete"]


class ClientInfo(BaseSchema):
    app_version = Str(allow_none=True)
    schema_version = Int(allow_none=True, validate=validate.Range(min=0, max=1_000_000))
    platform = Str(allow_none=True)
    outbox_length = Int(allow_none=True, validate=validate.Range(min=0))
    oldest_unsynced_at = DateTimeTZ(allow_none=True)


class OpSchema(BaseSchema):
    op_id = UUIDStr(required=True)
    entity = Str(required=True, validate=validate.OneOf(ENTITIES))
    id = UUIDStr(required=True)
    action = Str(required=True, validate=validate.OneOf(ACTIONS))
    base_version = Int(allow_none=True, load_default=None, validate=validate.Range(min=0))
    recorded_at = DateTimeTZ(required=True)
    data = fields.Dict(allow_none=True, load_default=None)


class PushEnvelope(BaseSchema):
    batch_id = UUIDStr(required=True)
    client_time = DateTimeTZ(required=True)
    client = fields.Nested(ClientInfo, allow_none=True)
    ops = fields.List(fields.Raw(), required=True)


class ConflictReport(BaseSchema):
    field = fields.String()
    kept = fields.Raw(allow_none=True)
    discarded = fields.Raw(allow_none=True)


class OpError(BaseSchema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()


class OpResult(BaseSchema):
    op_id = fields.String()
    status = fields.String(validate=validate.OneOf(["applied", "merged", "duplicate", "rejected"]))
    version = fields.Integer(allow_none=True)
    conflicts = fields.List(fields.Nested(ConflictReport))
    error = fields.Nested(OpError, allow_none=True)


class PushAnswer(BaseSchema):
    batch_id = fields.String()
    server_time = DateTimeTZ()
    results = fields.List(fields.Nested(OpResult))


class PullArgs(BaseSchema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=4000))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000))


class PulledChange(BaseSchema):
    entity = fields.String()
    id = fields.String()
    action = fields.String(validate=validate.OneOf(["upsert", "delete", "evict"]))
    version = fields.Integer(allow_none=True)
    data = fields.Dict(allow_none=True)


class PullAnswer(BaseSchema):
    changes = fields.List(fields.Nested(PulledChange))
    cursor = fields.String()
    has_more = fields.Boolean()
    server_time = DateTimeTZ()
