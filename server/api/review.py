"""Oversight for coordinators: review of visits, due visits, members' points, statistics."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import review as s

from ..auth import coordinator_scope, coordinators_only
from ..extensions import db
from ..services import points, review, stats, sweeps
from ..services.common import sync_settings
from ..uow import write

visits_blp = Blueprint("visits", __name__, url_prefix="/api/v1/visits", description="Review of visits")
due_blp = Blueprint("due-visits", __name__, url_prefix="/api/v1/due-visits", description="Households due a visit")
members_blp = Blueprint("members", __name__, url_prefix="/api/v1/members", description="Members' points")
stats_blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="Statistics")
BLUEPRINTS = (visits_blp, due_blp, members_blp, stats_blp)
for _blueprint in BLUEPRINTS:
    coordinators_only(_blueprint)  # the token and role before the body


@visits_blp.route("")
class Visits(MethodView):
    @visits_blp.arguments(s.VisitListArgs, location="query")
    @visits_blp.response(200, s.VisitPage)
    def get(self, args):
        """Visits in scope, newest first; ``member_id`` is the author, ``review`` the review state."""
        return review.list_visits(db.session, coordinator_scope(), args)


@visits_blp.route("/<uuid:visit_id>/review")
class VisitReview(MethodView):
    @visits_blp.arguments(s.ReviewArgs)
    @visits_blp.response(200, s.ReviewAnswer)
    @write
    def post(self, args, visit_id):
        """Approve or flag a visit; its author's tablet pulls the review."""
        return review.review_visit(db.session, coordinator_scope(), str(visit_id), args["decision"], args["comment"])


@due_blp.route("")
class DueVisits(MethodView):
    @due_blp.arguments(s.DueVisitArgs, location="query")
    @due_blp.response(200, s.DueVisitPage)
    def get(self, args):
        """Households past their visit interval, most overdue first; ``unpaired=true``: those with no member."""
        return sweeps.list_due_visits(db.session, coordinator_scope(), sync_settings(), args["area_id"],
                                      args["unpaired"], args["page"], args["per_page"])


@members_blp.route("/points")
class Leaderboard(MethodView):
    @members_blp.arguments(s.LeaderboardArgs, location="query")
    @members_blp.response(200, s.LeaderboardPage)
    def get(self, args):
        """Members in scope by points, most first."""
        return points.leaderboard(db.session, coordinator_scope(), args["area_id"], current_app.config["POINTS"],
                                  args["page"], args["per_page"], args["from_"], args["to"])


@members_blp.route("/<uuid:member_id>/points")
class MemberPoints(MethodView):
    @members_blp.arguments(s.PointsArgs, location="query")
    @members_blp.response(200, s.MemberPoints)
    def get(self, args, member_id):
        """A member's points, with what earned them."""
        return points.member_points(db.session, coordinator_scope(), str(member_id), current_app.config["POINTS"],
                                    args["from_"], args["to"])


@stats_blp.route("/coverage")
class Coverage(MethodView):
    @stats_blp.arguments(s.CoverageArgs, location="query")
    @stats_blp.response(200, s.CoverageAnswer)
    def get(self, args):
        """Per grid: households, visited within their interval, coverage ratio, overdue, unpaired."""
        return stats.coverage(db.session, coordinator_scope(), args["area_id"], sync_settings())


@stats_blp.route("/requests")
class RequestStats(MethodView):
    @stats_blp.arguments(s.RequestStatsArgs, location="query")
    @stats_blp.response(200, s.RequestStatsAnswer)
    def get(self, args):
        """Requests of the last ``days`` days by category and status, time to feedback, rising categories."""
        return stats.request_stats(db.session, coordinator_scope(), args["area_id"], args["days"])
