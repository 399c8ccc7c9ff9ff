"""Console forms and filters, on the wire schemas' own field types (one set of limits for both)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import marshmallow as ma
from marshmallow import fields, validate
from werkzeug.datastructures import MultiDict

from schemas.base import BaseSchema, Str, Text, UUIDStr
from sync.errors import ValidationFailedError

from ..services.exports import KINDS
from .i18n import TIMEZONE

IGNORED = ("csrf_token", "back", "next")  # the console's own fields, not the schema's


def parse(schema: ma.Schema, source: MultiDict) -> dict:
    """Load a form or query string: blank inputs count as absent, errors are ``validation_failed``."""
    data = {k: v for k, v in source.items() if k not in IGNORED and v.strip() != ""}
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        raise ValidationFailedError(details=exc.messages) from None


def day_range(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Whole local days, ``date_from`` through ``date_to`` inclusive, as an aware half-open range."""
    zone = ZoneInfo(TIMEZONE)
    since = dt.datetime.combine(date_from, dt.time(), zone) if date_from else None
    until = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), zone) if date_to else None
    if since and until and since >= until:
        raise ValidationFailedError(details={"date_to": ["must not be before date_from"]})
    return since, until


class DateRange(BaseSchema):
    area_id = UUIDStr(load_default=None)
    date_from = fields.Date(load_default=None)
    date_to = fields.Date(load_default=None)


class ExportArgs(DateRange):
    kind = Str(required=True, validate=validate.OneOf(KINDS))
    format = Str(load_default="csv", validate=validate.OneOf(("csv", "xlsx")))


class HouseholdSearch(BaseSchema):
    q = Str(load_default=None)
    area_id = UUIDStr(load_default=None)
    member_id = UUIDStr(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))


class PairingForm(BaseSchema):
    member_id = UUIDStr(load_default=None)


class PageQuery(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))


class CommentForm(BaseSchema):
    comment = Text(load_default=None)


STATUSES = ("open", "assigned", "resolved", "closed")


class RequestFilter(BaseSchema):
    status = Str(load_default=None, validate=validate.OneOf(STATUSES))
    area_id = UUIDStr(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))


class AssignForm(BaseSchema):
    handler = Str(required=True, validate=validate.Length(min=1))
    due_date = fields.Date(load_default=None)


def end_of_day(day: dt.date | None) -> dt.datetime | None:
    """A due date picked as a day means the end of that day on the community's clock."""
    return dt.datetime.combine(day, dt.time(23, 59), ZoneInfo(TIMEZONE)) if day else None


REVIEW_STATES = ("pending", "approved", "flagged")


class VisitFilter(DateRange):
    member_id = UUIDStr(load_default=None)
    review = Str(load_default=None, validate=validate.OneOf(REVIEW_STATES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))


class StatusFilter(BaseSchema):
    status = Str(load_default="open", validate=validate.OneOf(("open", "resolved", "retried", "discarded", "all")))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000_000))


class ConflictChoice(BaseSchema):
    """Which side to keep: the value kept by the merge, or the one it discarded."""

    choice = Str(required=True, validate=validate.OneOf(("kept", "discarded")))


class QuarantineRetry(BaseSchema):
    """``data``: the op's data corrected by the coordinator, as JSON; blank retries the op as sent."""

    data = Text(load_default=None)


class LedgerUpload(BaseSchema):
    area_id = UUIDStr(required=True)
    dry_run = fields.Boolean(load_default=False)
