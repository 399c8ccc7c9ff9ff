"""The audit log of personal-data reads on the wire."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, PageArgsQuery, Str, UUIDStr, page_schema

AUDIT_ACTIONS = ["read", "list", "export"]


class AuditEventSchema(BaseSchema):
    id = fields.String()
    at = DateTimeTZ()
    user_id = fields.String()
    role = fields.String()
    device_id = fields.String(allow_none=True)
    action = fields.String()
    entity = fields.String()
    household_id = fields.String()
    community_id = fields.String(allow_none=True)
    endpoint = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)


class AuditListArgs(PageArgsQuery):
    household_id = UUIDStr(load_default=None)
    user_id = UUIDStr(load_default=None)
    action = Str(load_default=None, validate=validate.OneOf(AUDIT_ACTIONS))


AuditPage = page_schema(AuditEventSchema, "AuditPage")
