"""Review of visits, due visits, members' points and statistics, on the coordinators' side."""
from __future__ import annotations

from marshmallow import fields, validate

from .base import BaseSchema, DateTimeTZ, PageArgsQuery, Str, Text, UUIDStr, page_schema
from .entities import ReviewRecord, VisitRecord

REVIEW_STATES = ["pending", "approved", "flagged"]


class VisitListArgs(PageArgsQuery):
    area_id = UUIDStr(load_default=None)
    member_id = UUIDStr(load_default=None)
    household_id = UUIDStr(load_default=None)
    review = Str(load_default=None, validate=validate.OneOf(REVIEW_STATES))
    from_ = DateTimeTZ(load_default=None, data_key="from")
    to = DateTimeTZ(load_default=None)


class ReviewArgs(BaseSchema):
    decision = Str(required=True, validate=validate.OneOf(["approved", "flagged"]))
    comment = Text(allow_none=True, load_default=None)


class ReviewAnswer(ReviewRecord):
    recipient_id = fields.String()


class DueVisitArgs(PageArgsQuery):
    area_id = UUIDStr(load_default=None)
    unpaired = fields.Boolean(load_default=None)


class DueVisit(BaseSchema):
    household_id = fields.String()
    address = fields.String()
    head_name = fields.String(allow_none=True)
    area_id = fields.String()
    member_id = fields.String(allow_none=True)
    interval_days = fields.Integer()
    last_visited_at = DateTimeTZ(allow_none=True)
    due_at = DateTimeTZ()
    days_overdue = fields.Integer()


class PointsArgs(BaseSchema):
    from_ = DateTimeTZ(load_default=None, data_key="from")
    to = DateTimeTZ(load_default=None)


class LeaderboardArgs(PageArgsQuery, PointsArgs):
    area_id = UUIDStr(load_default=None)


class MemberPoints(BaseSchema):
    member_id = fields.String()
    display_name = fields.String()
    area_id = fields.String(allow_none=True)
    approved_visits = fields.Integer()
    assistance_logs = fields.Integer()
    closed_requests = fields.Integer()
    points = fields.Integer()


class CoverageArgs(BaseSchema):
    area_id = UUIDStr(load_default=None)


class GridCoverage(BaseSchema):
    area_id = fields.String()
    name = fields.String()
    households = fields.Integer()
    visited_within_interval = fields.Integer()
    coverage = fields.Float()
    overdue = fields.Integer()
    unpaired = fields.Integer()


class CoverageAnswer(BaseSchema):
    area_id = fields.String(allow_none=True)
    as_of = DateTimeTZ()
    households = fields.Integer()
    visited_within_interval = fields.Integer()
    coverage = fields.Float()
    overdue = fields.Integer()
    unpaired = fields.Integer()
    grids = fields.List(fields.Nested(GridCoverage))


class RequestStatsArgs(BaseSchema):
    area_id = UUIDStr(load_default=None)
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))


class RisingCategory(BaseSchema):
    category = fields.String()
    current = fields.Integer()
    previous = fields.Integer()


class RequestStatsAnswer(BaseSchema):
    area_id = fields.String(allow_none=True)
    days = fields.Integer()
    since = DateTimeTZ()
    total = fields.Integer()
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_category_status = fields.Dict(keys=fields.String(), values=fields.Dict())
    overdue = fields.Integer()
    median_hours_to_feedback = fields.Float(allow_none=True)
    median_hours_to_close = fields.Float(allow_none=True)
    rising = fields.List(fields.Nested(RisingCategory))


VisitPage = page_schema(VisitRecord, "VisitPage")
DueVisitPage = page_schema(DueVisit, "DueVisitPage")
LeaderboardPage = page_schema(MemberPoints, "LeaderboardPage")
