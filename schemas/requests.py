"""Requests on the coordinators' side: lists, the detail with events and task, and the desk's events."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, PageArgsQuery, Str, Text, UUIDStr, page_schema
from .entities import URGENCIES, RequestEventRecord, RequestRecord, TaskRecord

STATUSES = ["open", "assigned", "resolved", "closed"]


class RequestListArgs(PageArgsQuery):
    status = Str(load_default=None, validate=validate.OneOf(STATUSES))
    area_id = UUIDStr(load_default=None)
    overdue = fields.Boolean(load_default=None)
    household_id = UUIDStr(load_default=None)


class RequestCreate(BaseSchema):
    """A request that came by phone or at the office (``source`` is ``office``)."""

    id = UUIDStr(load_default=None)
    household_id = UUIDStr(required=True)
    resident_id = UUIDStr(allow_none=True)
    category = Str(required=True, validate=validate.Length(min=1))
    description = Text(required=True, validate=validate.Length(min=1))
    urgency = Str(load_default="normal", validate=validate.OneOf(URGENCIES))
    # Integrations only (another platform's request): its id there; the same id answers the same request.
    external_id = Str(load_default=None, validate=validate.Length(min=1))


class AssignArgs(BaseSchema):
    handler = Str(required=True, validate=validate.Length(min=1))
    due_at = DateTimeTZ(allow_none=True, load_default=None)


class ResolveArgs(BaseSchema):
    resolution = Text(required=True, validate=validate.Length(min=1))


class ReopenArgs(BaseSchema):
    note = Text(allow_none=True, load_default=None)


class RequestListItem(RequestRecord):
    area_id = fields.String(dump_only=True)
    external_id = fields.String(dump_only=True, allow_none=True)
    overdue = fields.Boolean(dump_only=True)


class DeskEventRecord(RequestEventRecord):
    origin_device_id = fields.String(dump_only=True, allow_none=True)


class RequestDetail(RequestListItem):
    events = fields.List(fields.Nested(DeskEventRecord), dump_only=True)
    task = fields.Nested(TaskRecord, dump_only=True, allow_none=True)


RequestPage = page_schema(RequestListItem, "RequestPage")
