"""WatermelonDB's sync contract, for tablet apps built on WatermelonDB's ``synchronize()``."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import watermelondb as s

from ..auth import device_scope
from ..extensions import db
from ..services import watermelondb
from ..uow import write

blp = Blueprint("watermelondb", __name__, url_prefix="/api/v1/watermelondb",
                description="WatermelonDB sync (pullChanges / pushChanges), over the same engine")
BLUEPRINTS = (blp,)


@blp.before_request
def _devices_only():
    """Check the token (a tablet's, not revoked) before the body is read."""
    device_scope()


@blp.route("/sync")
class Sync(MethodView):
    @blp.arguments(s.WatermelonPullArgs, location="query")
    @blp.response(200, s.WatermelonPullAnswer)
    @blp.alt_response(400, description="invalid_cursor (a last_pulled_at this tablet was never answered)")
    @blp.alt_response(410, description="cursor_expired: reset the local database, pull with null")
    @write(retries=3)
    def get(self, args):
        """pullChanges: every change in the tablet's scope since ``last_pulled_at``, and a new timestamp."""
        scope, device = device_scope()
        return watermelondb.pull(db.session, scope, device, args)

    @blp.arguments(s.WatermelonPushArgs, location="query")
    @blp.arguments(s.WatermelonChanges)
    @blp.response(200, s.WatermelonPushAnswer)
    @blp.alt_response(400, description="invalid_cursor (a last_pulled_at this tablet was never answered)")
    @write(retries=3)
    def post(self, args, changes):
        """pushChanges: the local changes, each row merged by the engine; all or nothing."""
        scope, device = device_scope()
        return watermelondb.push(db.session, scope, device, args, changes)
