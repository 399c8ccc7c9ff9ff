"""Tablets' sync logs: a tablet uploads its own, coordinators read those of the tablets in their scope.

The fleet list itself is ``GET /api/v1/devices`` (``accounts.Devices``), answered by ``services.fleet``.
"""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import fleet as s
from schemas.base import PageArgsQuery

from ..auth import coordinator_scope, coordinators_only, device_scope
from ..extensions import db
from ..services import fleet
from ..uow import write

uploads_blp = Blueprint("device_log_uploads", __name__, url_prefix="/api/v1/devices/logs",
                        description="Tablets' own sync logs, for support")
logs_blp = Blueprint("device_logs", __name__, url_prefix="/api/v1/devices", description="Tablets' sync logs")
BLUEPRINTS = (uploads_blp, logs_blp)
coordinators_only(logs_blp)


@uploads_blp.before_request
def _devices_only():
    """A tablet's token (not revoked) before the body is read."""
    device_scope()


@uploads_blp.route("")
class DeviceLogUploads(MethodView):
    @uploads_blp.arguments(s.DeviceLogUpload)
    @uploads_blp.response(201, s.DeviceLogSummary)
    @uploads_blp.alt_response(413, description="body_too_large (past DEVICE_LOG_MAX_BYTES)")
    @write
    def post(self, args):
        """Upload this tablet's sync log for support; kept DEVICE_LOG_DAYS."""
        _, device = device_scope()
        return fleet.upload_log(db.session, device, current_app.config, args["text"], args["app_version"])


@logs_blp.route("/<uuid:device_id>/logs")
class DeviceLogs(MethodView):
    @logs_blp.arguments(PageArgsQuery, location="query")
    @logs_blp.response(200, s.DeviceLogPage)
    def get(self, args, device_id):
        """The logs a tablet in scope uploaded, newest first, without their text."""
        return fleet.list_logs(db.session, coordinator_scope(), str(device_id), args["page"], args["per_page"])


@logs_blp.route("/<uuid:device_id>/logs/<uuid:log_id>")
class DeviceLogById(MethodView):
    @logs_blp.response(200, s.DeviceLogSchema)
    def get(self, device_id, log_id):
        """One uploaded log, with its text."""
        return fleet.get_log(db.session, coordinator_scope(), str(device_id), str(log_id))
