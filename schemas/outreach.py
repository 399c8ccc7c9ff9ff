"""Reaching beyond the community: workplace registrations (双报到), integrations that raise requests,
and webhook subscriptions with their delivery log."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .base import BaseSchema, PageArgsQuery, Str, Text, UUIDStr, page_schema

ORGANISATION_KINDS = ["government", "school", "enterprise", "public_institution", "other"]
EVENT_TYPES = ["request.raised", "request.assigned", "request.resolved", "request.closed", "request.reopened",
               "household.overdue"]
GRANTS = ["none", "contact"]
DELIVERY_STATUSES = ["pending", "retrying", "delivered", "failed"]
REPORT_FORMATS = ["json", "csv", "xlsx"]


# --- registrations --------------------------------------------------------------------------------


class RegistrationCreate(BaseSchema):
    user_id = UUIDStr(required=True)
    area_id = UUIDStr(required=True)
    home_organisation = Str(required=True, validate=validate.Length(min=1))
    organisation_kind = Str(load_default="other", validate=validate.OneOf(ORGANISATION_KINDS))
    started_on = fields.Date(required=True)


class RegistrationEnd(BaseSchema):
    ended_on = fields.Date(load_default=None)
    reason = Text(load_default=None, allow_none=True)


class RegistrationListArgs(PageArgsQuery):
    area_id = UUIDStr(load_default=None)
    home_organisation = Str(load_default=None)
    active = fields.Boolean(load_default=None)


class RegistrationRecord(BaseSchema):
    id = fields.String(dump_only=True)
    user_id = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    area_id = fields.String(dump_only=True)
    community_id = fields.String(dump_only=True)
    home_organisation = fields.String(dump_only=True)
    organisation_kind = fields.String(dump_only=True)
    started_on = fields.Date(dump_only=True)
    ended_on = fields.Date(dump_only=True, allow_none=True)
    end_reason = fields.String(dump_only=True, allow_none=True)
    registered_by = fields.String(dump_only=True, allow_none=True)
    ended_by = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


RegistrationPage = page_schema(RegistrationRecord, "RegistrationPage")


class UnpairedHousehold(BaseSchema):
    id = fields.String(dump_only=True)
    area_id = fields.String(dump_only=True)
    address = fields.String(dump_only=True)


class RegistrationEnded(BaseSchema):
    registration = fields.Nested(RegistrationRecord, dump_only=True)
    unpaired_households = fields.List(fields.Nested(UnpairedHousehold), dump_only=True)


class ServiceReportArgs(BaseSchema):
    """The period is whole local days, ``from`` through ``to``; rows are registrations."""

    area_id = UUIDStr(load_default=None)
    home_organisation = Str(load_default=None)
    registration_id = UUIDStr(load_default=None)
    from_ = fields.Date(load_default=None, data_key="from")
    to = fields.Date(load_default=None)
    format = Str(load_default="json", validate=validate.OneOf(REPORT_FORMATS))

    @validates_schema
    def _ordered(self, data, **_):
        if data.get("from_") and data.get("to") and data["to"] < data["from_"]:
            raise ValidationError("must not be before from", "to")


class ServiceRow(BaseSchema):
    registration_id = fields.String()
    member_id = fields.String()
    display_name = fields.String()
    home_organisation = fields.String()
    organisation_kind = fields.String()
    started_on = fields.Date()
    ended_on = fields.Date(allow_none=True)
    visits = fields.Integer()
    approved_visits = fields.Integer()
    assistance_logs = fields.Integer()
    closed_requests = fields.Integer()
    points = fields.Integer()


class ServiceReport(BaseSchema):
    date_from = fields.Date(allow_none=True, data_key="from")
    date_to = fields.Date(allow_none=True, data_key="to")
    rows = fields.List(fields.Nested(ServiceRow))
    totals = fields.Dict()


# --- integrations ---------------------------------------------------------------------------------


class IntegrationCreate(BaseSchema):
    name = Str(required=True, validate=validate.Length(min=1))
    area_id = UUIDStr(required=True)


class IntegrationRecord(BaseSchema):
    id = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    area_id = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)


class IntegrationIssued(IntegrationRecord):
    token = fields.String(dump_only=True)


IntegrationPage = page_schema(IntegrationRecord, "IntegrationPage")


# --- webhooks -------------------------------------------------------------------------------------


class SubscriptionCreate(BaseSchema):
    area_id = UUIDStr(required=True)
    name = Str(required=True, validate=validate.Length(min=1))
    url = Str(required=True, validate=validate.URL(schemes={"http", "https"}, require_tld=False))
    event_types = fields.List(Str(validate=validate.OneOf(EVENT_TYPES)), required=True,
                              validate=validate.Length(min=1, max=len(EVENT_TYPES)))
    grant = Str(load_default="none", validate=validate.OneOf(GRANTS))


class SubscriptionRecord(BaseSchema):
    id = fields.String(dump_only=True)
    area_id = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    url = fields.String(dump_only=True)
    event_types = fields.List(fields.String(), dump_only=True)
    grant = fields.String(dump_only=True)
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class SubscriptionIssued(SubscriptionRecord):
    """The signing secret is shown once, in the answer that created it."""

    secret = fields.String(dump_only=True)


SubscriptionPage = page_schema(SubscriptionRecord, "SubscriptionPage")


class DeliveryListArgs(PageArgsQuery):
    subscription_id = UUIDStr(load_default=None)
    status = Str(load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))


class DeliveryAttempt(BaseSchema):
    at = fields.String()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    outcome = fields.String()


class DeliveryRecord(BaseSchema):
    id = fields.String(dump_only=True)
    subscription_id = fields.String(dump_only=True)
    event_type = fields.String(dump_only=True)
    status = fields.String(dump_only=True)
    attempts = fields.List(fields.Nested(DeliveryAttempt), dump_only=True)
    body = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    delivered_at = fields.DateTime(dump_only=True, allow_none=True)


DeliveryPage = page_schema(DeliveryRecord, "DeliveryPage")

