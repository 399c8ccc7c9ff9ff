"""Push and pull, for tablets."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import sync as s

from ..auth import device_scope
from ..extensions import db
from ..services import sync_service
from ..uow import write
from . import json_answer

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync", description="Tablet sync")
BLUEPRINTS = (blp,)


@blp.before_request
def _devices_only():
    """Check the token (a tablet's, not revoked) before the body is read."""
    device_scope()


@blp.route("/push")
class Push(MethodView):
    @blp.arguments(s.PushEnvelope)
    @blp.response(200, s.PushAnswer)
    @blp.alt_response(409, description="conflict (batch_id reused) or schema_unsupported")
    @blp.alt_response(413, description="batch_too_large")
    @write(retries=3)
    def post(self, envelope):
        """Push a batch of ops recorded offline: applied exactly once, in order, all or nothing."""
        scope, device = device_scope()
        # the request's Session itself, not the scoped proxy: the engine reaches it thousands of times a batch
        answer = sync_service.push(db.session(), scope, device, envelope, request.get_data(cache=True))
        return json_answer(sync_service.wire_push_answer(answer))


@blp.route("/pull")
class Pull(MethodView):
    @blp.arguments(s.PullArgs, location="query")
    @blp.response(200, s.PullAnswer)
    @blp.alt_response(400, description="invalid_cursor")
    @blp.alt_response(410, description="cursor_expired")
    @write
    def get(self, args):
        """The changes in the tablet's scope since its cursor; repeat while ``has_more``."""
        scope, device = device_scope()
        return json_answer(sync_service.pull(db.session(), scope, device, args["cursor"], args["limit"]))
