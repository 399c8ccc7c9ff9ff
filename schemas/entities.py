"""Wire schemas of the synced entities: what a device may send (``*Data``) and what it gets (``*Record``).

A ``Data`` schema is loaded in full for a create and with ``partial=True`` for an update.
"""
from __future__ import annotations

import json
import re

import marshmallow as ma
from marshmallow import fields, validate

from .base import MAX_LIST, BaseSchema, Bool, DateTimeTZ, Int, Str, StrList, Text, UUIDStr


def PHONE(value):
    """A mobile or landline number: digits with optional +, spaces, dashes, brackets; 7 to 20 digits."""
    if value is None:
        return
    digits = sum(ch.isdigit() for ch in value)
    if not re.fullmatch(r"\+?[0-9][0-9 ()\-]*", value) or not 7 <= digits <= 20:
        raise ma.ValidationError("Not a valid phone number.")
OBSERVATIONS_MAX_BYTES = 16 * 1024


class Location(BaseSchema):
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90), allow_nan=False)
    lng = fields.Float(required=True, validate=validate.Range(min=-180, max=180), allow_nan=False)


class AttachmentRef(BaseSchema):
    sha256 = Str(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="64 lowercase hex digits."))
    mime = Str(allow_none=True)
    name = Str(allow_none=True)


def _attachments():
    return fields.List(fields.Nested(AttachmentRef), validate=validate.Length(max=MAX_LIST))


def _check_observations(value):
    if value is None:
        return
    text = json.dumps(value, ensure_ascii=False)
    if len(text.encode()) > OBSERVATIONS_MAX_BYTES:
        raise ma.ValidationError("At most 16 KiB as JSON.")
    if "\\u0000" in text:
        raise ma.ValidationError("must not contain NUL characters")


class RecordMeta(BaseSchema):
    id = UUIDStr(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = DateTimeTZ(dump_only=True)
    updated_at = DateTimeTZ(dump_only=True)
    author_id = fields.String(dump_only=True, allow_none=True)


class HouseholdData(BaseSchema):
    area_id = UUIDStr(required=True)
    address = Str(required=True, validate=validate.Length(min=1))
    head_name = Str(allow_none=True)
    phone = Str(allow_none=True, validate=PHONE)
    tags = StrList()
    offline_served = Bool()
    sms_consent = Bool()
    visit_interval_days = Int(allow_none=True, validate=validate.Range(min=1, max=3650))
    notes = Text(allow_none=True)


class HouseholdRecord(RecordMeta, HouseholdData):
    member_id = fields.String(dump_only=True, allow_none=True)


class ResidentData(BaseSchema):
    household_id = UUIDStr(required=True)
    name = Str(required=True, validate=validate.Length(min=1))
    gender = Str(allow_none=True, validate=validate.OneOf(["F", "M"]))
    birth_year = Int(allow_none=True, validate=validate.Range(min=1880, max=2100))
    phone = Str(allow_none=True, validate=PHONE)
    relation = Str(allow_none=True)
    tags = StrList()
    status = Str(validate=validate.OneOf(["active", "moved_out", "deceased"]))


class ResidentRecord(RecordMeta, ResidentData):
    pass


class VisitData(BaseSchema):
    household_id = UUIDStr(required=True)
    visited_at = DateTimeTZ(required=True)
    kind = Str(required=True, validate=validate.OneOf(["routine", "assistance", "follow_up", "feedback"]))
    summary = Text(allow_none=True)
    observations = fields.Dict(allow_none=True, validate=_check_observations)
    duration_minutes = Int(allow_none=True, validate=validate.Range(min=0, max=24 * 60))
    location = fields.Nested(Location, allow_none=True)
    attachments = _attachments()


class VisitRecord(RecordMeta, VisitData):
    review_state = fields.String(dump_only=True)
    missing_attachments = fields.List(fields.String(), dump_only=True, metadata={
        "description": "SHA-256 of the attachments the server does not hold yet"})


class AssistanceLogData(BaseSchema):
    household_id = UUIDStr(required=True)
    resident_id = UUIDStr(allow_none=True)
    category = Str(required=True, validate=validate.Length(min=1))
    description = Text(allow_none=True)
    minutes = Int(allow_none=True, validate=validate.Range(min=0, max=24 * 60))
    occurred_at = DateTimeTZ(required=True)
    attachments = _attachments()


class AssistanceLogRecord(RecordMeta, AssistanceLogData):
    missing_attachments = fields.List(fields.String(), dump_only=True, metadata={
        "description": "SHA-256 of the attachments the server does not hold yet"})


URGENCIES = ["low", "normal", "urgent"]


class RequestData(BaseSchema):
    household_id = UUIDStr(required=True)
    resident_id = UUIDStr(allow_none=True)
    visit_id = UUIDStr(allow_none=True)
    category = Str(required=True, validate=validate.Length(min=1))
    description = Text(required=True, validate=validate.Length(min=1))
    urgency = Str(validate=validate.OneOf(URGENCIES))


class RequestRecord(RecordMeta, RequestData):
    status = fields.String(dump_only=True)
    source = fields.String(dump_only=True)
    handler = fields.String(dump_only=True, allow_none=True)
    raised_at = DateTimeTZ(dump_only=True)
    due_at = DateTimeTZ(dump_only=True, allow_none=True)
    resolution = fields.String(dump_only=True, allow_none=True)
    resolved_at = DateTimeTZ(dump_only=True, allow_none=True)
    feedback_due_at = DateTimeTZ(dump_only=True, allow_none=True)
    closed_at = DateTimeTZ(dump_only=True, allow_none=True)
    satisfaction = fields.Integer(dump_only=True, allow_none=True)


DEVICE_EVENT_ACTIONS = ["comment", "feedback_delivered", "reopen"]
CHANNELS = ["in_person", "phone", "sms", "notice"]


class RequestEventData(BaseSchema):
    request_id = UUIDStr(required=True)
    action = Str(required=True, validate=validate.OneOf(DEVICE_EVENT_ACTIONS))
    note = Text(allow_none=True)
    channel = Str(allow_none=True, validate=validate.OneOf(CHANNELS))
    satisfaction = Int(allow_none=True, validate=validate.Range(min=1, max=5))
    occurred_at = DateTimeTZ(required=True)


class RequestEventRecord(RecordMeta, RequestEventData):
    household_id = fields.String(dump_only=True)
    handler = fields.String(dump_only=True, allow_none=True)
    due_at = DateTimeTZ(dump_only=True, allow_none=True)
    effective_at = DateTimeTZ(dump_only=True)


class TaskRecord(RecordMeta):
    kind = fields.String()
    household_id = fields.String()
    request_id = fields.String(allow_none=True)
    member_id = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    due_at = DateTimeTZ(allow_none=True)
    status = fields.String()
    done_at = DateTimeTZ(allow_none=True)


class ReviewRecord(RecordMeta):
    visit_id = fields.String()
    household_id = fields.String()
    decision = fields.String()
    comment = fields.String(allow_none=True)
    reviewer_id = fields.String()
    summary = fields.String(allow_none=True)


DATA_SCHEMAS: dict[str, type[BaseSchema]] = {
    "household": HouseholdData,
    "resident": ResidentData,
    "visit": VisitData,
    "assistance_log": AssistanceLogData,
    "request": RequestData,
    "request_event": RequestEventData,
}

RECORD_SCHEMAS: dict[str, type[BaseSchema]] = {
    "household": HouseholdRecord,
    "resident": ResidentRecord,
    "visit": VisitRecord,
    "assistance_log": AssistanceLogRecord,
    "request": RequestRecord,
    "request_event": RequestEventRecord,
    "task": TaskRecord,
    "review": ReviewRecord,
}
