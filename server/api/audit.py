"""The audit log of who read which household's personal data (admins)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import audit as s

from ..auth import current_scope
from ..extensions import db
from ..services import audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Who read residents' data")
BLUEPRINTS = (blp,)


@blp.before_request
def _admins_only():
    """Check the token and the role before the query is read."""
    current_scope().require_admin()


@blp.route("")
class AuditLog(MethodView):
    @blp.arguments(s.AuditListArgs, location="query")
    @blp.response(200, s.AuditPage)
    def get(self, args):
        """Reads and exports of households' personal data, newest first (admins only)."""
        return audit.list_events(db.session, current_scope(), args["household_id"], args["user_id"],
                                 args["action"], args["page"], args["per_page"])
