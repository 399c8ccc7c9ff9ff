"""The WatermelonDB sync contract's envelopes: pull and push arguments, the changes object, the answers.

The records inside a changes object are WatermelonDB raw records (``server.services.watermelondb`` maps
their columns onto the entity schemas of ``schemas.entities``); here only the envelope is checked.
"""
from __future__ import annotations

import json

from marshmallow import fields, validate

from .base import BaseSchema, Int, Str

TABLES = {
    "households": "household",
    "residents": "resident",
    "visits": "visit",
    "assistance_logs": "assistance_log",
    "requests": "request",
    "request_events": "request_event",
    "tasks": "task",
    "reviews": "review",
}
"""WatermelonDB table name → the engine's entity."""


class LastPulledAt(fields.Field):
    """WatermelonDB's ``lastPulledAt`` as its documented client sends it: a number, or ``null`` (also
    spelt ``0`` or empty by some clients) for "never pulled"."""

    default_error_messages = {"invalid": "Must be a timestamp this server answered, or null."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, "", "null", "0", 0):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.make_error("invalid") from None
        if not 0 < number < 2**62:
            raise self.make_error("invalid")
        return number


class WatermelonMigrationColumns(BaseSchema):
    table = Str(required=True)
    columns = fields.List(Str(), required=True, validate=validate.Length(max=1000))


class WatermelonMigration(BaseSchema):
    from_ = Int(required=True, data_key="from", validate=validate.Range(min=0, max=1_000_000))
    tables = fields.List(Str(), load_default=list, validate=validate.Length(max=1000))
    columns = fields.List(fields.Nested(WatermelonMigrationColumns), load_default=list, validate=validate.Length(max=1000))


class MigrationParam(fields.Field):
    """``migration`` arrives as JSON text in the query string (``null`` when there is none)."""

    default_error_messages = {"invalid": "Must be JSON: null or {{from, tables, columns}}."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, "", "null", "undefined"):
            return None
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError):
            raise self.make_error("invalid") from None
        if parsed is None:
            return None
        if not isinstance(parsed, dict):
            raise self.make_error("invalid")
        return WatermelonMigration().load(parsed)


class WatermelonPullArgs(BaseSchema):
    last_pulled_at = LastPulledAt(load_default=None)
    schema_version = fields.Integer(load_default=None, validate=validate.Range(min=1, max=1_000_000))
    migration = MigrationParam(load_default=None)
    send_created_as_updated = fields.Boolean(load_default=False)


class WatermelonPushArgs(BaseSchema):
    last_pulled_at = LastPulledAt(load_default=None)
    client_time = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**62))
    """The tablet's clock (epoch ms) when it sent the push, to correct its records' times for skew."""


class WatermelonTableChanges(BaseSchema):
    created = fields.List(fields.Dict(), load_default=list)
    updated = fields.List(fields.Dict(), load_default=list)
    deleted = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)


WatermelonChanges = BaseSchema.from_dict(
    {table: fields.Nested(WatermelonTableChanges) for table in TABLES}, name="WatermelonChanges")
"""A changes object: only the synced tables; another table is ``validation_failed`` (filter local-only
tables out in ``pushChanges``)."""


class WatermelonPullAnswer(BaseSchema):
    changes = fields.Nested(WatermelonChanges)
    timestamp = fields.Integer()


class WatermelonPushAnswer(BaseSchema):
    experimentalRejectedIds = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    results = fields.Dict(keys=fields.String(), values=fields.Dict())

