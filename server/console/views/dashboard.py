"""The overview: what a coordinator should act on first."""
from __future__ import annotations

from flask import render_template

from ...extensions import db
from ...services import requests as request_service
from .. import bp
from ..charts import bars
from ..forms import STATUSES
from ..i18n import gettext as _, label
from .common import scope


@bp.get("/dashboard")
def dashboard():
    """Requests by status (overdue first), and the figures behind them as charts."""
    session, caller = db.session, scope()
    by_status = {s: request_service.list_requests(session, caller, {"status": s, "page": 1, "per_page": 1})["total"]
                 for s in STATUSES}
    overdue = request_service.list_requests(session, caller, {"overdue": True, "page": 1, "per_page": 20})
    status_chart = bars([(label("status", s), n) for s, n in by_status.items()], title=_("Requests by status"))
    return render_template("console/dashboard.html", by_status=by_status, overdue=overdue,
                           status_chart=status_chart)
