"""Accounts, areas, devices, households and pairings on the wire."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, Int, PageArgsQuery, Str, UUIDStr, page_schema
from .entities import HouseholdData, HouseholdRecord

ROLES = ["admin", "coordinator", "member"]
AREA_KINDS = ["community", "grid", "building"]


class LoginArgs(BaseSchema):
    username = Str(required=True)
    password = Str(required=True, limit=1000)


class UserSchema(BaseSchema):
    id = fields.String(dump_only=True)
    username = Str(required=True, validate=validate.Regexp(r"^[\w.@\-]{1,200}$", error="Letters, digits, . _ - @ only."))
    display_name = Str(required=True, validate=validate.Length(min=1))
    role = Str(required=True, validate=validate.OneOf(ROLES))
    area_id = UUIDStr(allow_none=True, load_default=None)
    password = Str(load_only=True, allow_none=True, limit=1000, validate=validate.Length(min=8))


class LoginAnswer(BaseSchema):
    token = fields.String()
    user = fields.Nested(UserSchema)


class AreaSchema(BaseSchema):
    id = fields.String(dump_only=True)
    name = Str(required=True, validate=validate.Length(min=1))
    kind = Str(required=True, validate=validate.OneOf(AREA_KINDS))
    parent_id = UUIDStr(allow_none=True, load_default=None)


class EnrollmentCodeAnswer(BaseSchema):
    code = fields.String()
    expires_at = DateTimeTZ()


class EnrollArgs(BaseSchema):
    code = Str(required=True, validate=validate.Length(min=1, max=40))
    name = Str(required=True, validate=validate.Length(min=1))
    platform = Str(allow_none=True)


class EnrollAnswer(BaseSchema):
    device_id = fields.String()
    token = fields.String()
    user = fields.Nested(UserSchema)


class DeviceSchema(BaseSchema):
    id = fields.String()
    user_id = fields.String()
    name = fields.String()
    platform = fields.String(allow_none=True)
    created_at = DateTimeTZ()
    last_seen_at = DateTimeTZ(allow_none=True)
    last_sync_at = DateTimeTZ(allow_none=True)
    revoked = fields.Function(lambda d: d.revoked_at is not None)
    revoked_at = DateTimeTZ(allow_none=True)
    app_version = fields.String(allow_none=True)
    schema_version = fields.Integer(allow_none=True)


class DeviceListArgs(PageArgsQuery):
    user_id = UUIDStr(load_default=None)


class UserListArgs(PageArgsQuery):
    role = Str(load_default=None, validate=validate.OneOf(ROLES))
    area_id = UUIDStr(load_default=None)


class HouseholdCreate(HouseholdData):
    id = UUIDStr(load_default=None)


class HouseholdPatch(HouseholdData):
    base_version = Int(required=True, validate=validate.Range(min=1))


class HouseholdEdited(HouseholdRecord):
    conflicts = fields.List(fields.Dict(), dump_only=True)


class HouseholdListArgs(PageArgsQuery):
    area_id = UUIDStr(load_default=None)
    q = Str(load_default=None)
    member_id = UUIDStr(load_default=None)
    unpaired = fields.Boolean(load_default=None)


class PairingArgs(BaseSchema):
    member_id = UUIDStr(required=True, allow_none=True)


AreaPage = page_schema(AreaSchema, "AreaPage")
UserPage = page_schema(UserSchema, "UserPage")
DevicePage = page_schema(DeviceSchema, "DevicePage")
HouseholdPage = page_schema(HouseholdRecord, "HouseholdPage")


class Ok(BaseSchema):
    ok = fields.Boolean()
