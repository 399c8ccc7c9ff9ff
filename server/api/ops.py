"""Conflicts and quarantined ops (coordinators): nothing a device sends is lost, and nothing is left unseen."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import ops as s

from ..auth import coordinator_scope, coordinators_only
from ..extensions import db
from ..services import conflicts, quarantine
from ..uow import write

conflicts_blp = Blueprint("conflicts", __name__, url_prefix="/api/v1/conflicts", description="Merge conflicts")
quarantine_blp = Blueprint("quarantine", __name__, url_prefix="/api/v1/quarantine", description="Rejected ops")
BLUEPRINTS = (conflicts_blp, quarantine_blp)
for _blueprint in BLUEPRINTS:
    coordinators_only(_blueprint)  # the token and role before the body


@conflicts_blp.route("")
class Conflicts(MethodView):
    @conflicts_blp.arguments(s.ConflictListArgs, location="query")
    @conflicts_blp.response(200, s.ConflictPage)
    def get(self, args):
        """Fields changed on both sides, one entry per field, newest first."""
        return conflicts.list_conflicts(db.session, coordinator_scope(), args["status"], args["page"],
                                        args["per_page"])


@conflicts_blp.route("/<uuid:conflict_id>/resolve")
class ResolveConflict(MethodView):
    @conflicts_blp.arguments(s.ConflictResolveArgs)
    @conflicts_blp.response(200, s.ConflictSchema)
    @conflicts_blp.alt_response(409, description="conflict (already resolved)")
    @write
    def post(self, args, conflict_id):
        """Set the field to the chosen value, as a new version that tablets pull."""
        return conflicts.resolve_conflict(db.session, coordinator_scope(), str(conflict_id), args["value"])


@quarantine_blp.route("")
class Quarantine(MethodView):
    @quarantine_blp.arguments(s.QuarantineListArgs, location="query")
    @quarantine_blp.response(200, s.QuarantinePage)
    def get(self, args):
        """Rejected ops of the devices of the users in scope, as sent, with their reasons."""
        return quarantine.list_quarantine(db.session, coordinator_scope(), args["status"], args["page"],
                                          args["per_page"])


@quarantine_blp.route("/<uuid:entry_id>/retry")
class RetryQuarantined(MethodView):
    @quarantine_blp.arguments(s.RetryArgs)
    @quarantine_blp.response(200, s.RetryAnswer)
    @quarantine_blp.alt_response(409, description="conflict (already retried or discarded)")
    @write
    def post(self, args, entry_id):
        """Apply the op again for its device's user, as sent or with corrected ``data``."""
        return quarantine.retry(db.session, coordinator_scope(), str(entry_id), args["data"])


@quarantine_blp.route("/<uuid:entry_id>/discard")
class DiscardQuarantined(MethodView):
    @quarantine_blp.arguments(s.DiscardArgs)
    @quarantine_blp.response(200, s.QuarantineSchema)
    @quarantine_blp.alt_response(409, description="conflict (already retried or discarded)")
    @write
    def post(self, args, entry_id):
        """Keep the op on record as discarded, with a reason."""
        return quarantine.discard(db.session, coordinator_scope(), str(entry_id), args["reason"])
