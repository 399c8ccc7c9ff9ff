"""The overview: what a coordinator should act on first, over the statistics, sweeps and points services."""
from __future__ import annotations

from flask import current_app, render_template

from ...extensions import db
from ...services import points, stats, sweeps
from ...services import requests as request_service
from ...services.common import sync_settings
from .. import bp
from ..charts import bars
from ..forms import STATUSES
from ..i18n import gettext as _
from ..i18n import label
from .common import areas, scope

RECENT_DAYS = 30
LIST_LENGTH = 10


@bp.get("/dashboard")
def dashboard():
    """Coverage per grid, overdue households and requests, feedback owed, rising categories, points."""
    session, caller, settings = db.session, scope(), sync_settings()
    coverage = stats.coverage(session, caller, None, settings)
    by_status = {s: request_service.list_requests(session, caller, {"status": s, "page": 1, "per_page": 1})["total"]
                 for s in STATUSES}
    overdue = request_service.list_requests(session, caller, {"overdue": True, "page": 1, "per_page": LIST_LENGTH})
    # Resolved but not yet brought back to the household: the loop is still open for the resident.
    feedback_owed = request_service.list_requests(session, caller, {"status": "resolved", "page": 1,
                                                                    "per_page": LIST_LENGTH})
    due = sweeps.list_due_visits(session, caller, settings, None, None, 1, LIST_LENGTH)
    rising = [(grid, stats.request_stats(session, caller, grid.id, RECENT_DAYS)["rising"])
              for grid in areas() if grid.kind == "grid"]
    leaders = points.leaderboard(session, caller, None, current_app.config["POINTS"], 1, LIST_LENGTH)
    charts = {
        "coverage": bars([(g["name"], g["coverage"] * 100) for g in coverage["grids"]], unit="%", maximum=100,
                         title=_("Visited within interval, per grid")),
        "status": bars([(label("status", s), n) for s, n in by_status.items()], title=_("Requests by status")),
        "points": bars([(row["display_name"], row["points"]) for row in leaders["items"]], title=_("Points")),
    }
    return render_template("console/dashboard.html", coverage=coverage, by_status=by_status, overdue=overdue,
                           feedback_owed=feedback_owed, due=due, rising=[r for r in rising if r[1]],
                           leaders=leaders, charts=charts, days=RECENT_DAYS)
