"""Requests (coordinators): the loop from a resident's request back to the resident."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import requests as s

from ..auth import accepts_integrations, coordinator_or_integration_scope, coordinator_scope, coordinators_only
from ..extensions import db
from ..services import requests
from ..uow import write

blp = Blueprint("requests", __name__, url_prefix="/api/v1/requests", description="Residents' requests")
BLUEPRINTS = (blp,)
for _blueprint in BLUEPRINTS:
    coordinators_only(_blueprint)  # the token and role before the body


@blp.route("")
@accepts_integrations("POST")
class Requests(MethodView):
    @blp.arguments(s.RequestListArgs, location="query")
    @blp.response(200, s.RequestPage)
    def get(self, args):
        """Requests in scope, newest first; ``overdue=true`` lists those late to handle or to bring back."""
        return requests.list_requests(db.session, coordinator_scope(), args)

    @blp.arguments(s.RequestCreate)
    @blp.response(201, s.RequestDetail)
    @blp.alt_response(200, schema=s.RequestDetail, description="an integration's external_id seen before")
    @write(retries=2)
    def post(self, args):
        """Record a request that came by phone or at the office, or from an integration (with ``external_id``)."""
        request, created = requests.create_request(db.session, coordinator_or_integration_scope(), args)
        return request, 201 if created else 200


@blp.route("/<uuid:request_id>")
class RequestById(MethodView):
    @blp.response(200, s.RequestDetail)
    def get(self, request_id):
        """A request with its events, its feedback task and its deadlines."""
        return requests.get_request(db.session, coordinator_scope(), str(request_id))


@blp.route("/<uuid:request_id>/assign")
class AssignRequest(MethodView):
    @blp.arguments(s.AssignArgs)
    @blp.response(200, s.RequestDetail)
    @blp.alt_response(409, description="invalid_transition")
    @write
    def post(self, args, request_id):
        """Assign an open or assigned request to a handler, optionally with its own due date."""
        return requests.assign(db.session, coordinator_scope(), str(request_id), args["handler"], args["due_at"])


@blp.route("/<uuid:request_id>/resolve")
class ResolveRequest(MethodView):
    @blp.arguments(s.ResolveArgs)
    @blp.response(200, s.RequestDetail)
    @blp.alt_response(409, description="invalid_transition")
    @write
    def post(self, args, request_id):
        """Resolve a request: the paired member gets a task to bring the answer back to the household."""
        return requests.resolve(db.session, coordinator_scope(), str(request_id), args["resolution"])


@blp.route("/<uuid:request_id>/reopen")
class ReopenRequest(MethodView):
    @blp.arguments(s.ReopenArgs)
    @blp.response(200, s.RequestDetail)
    @blp.alt_response(409, description="invalid_transition")
    @write
    def post(self, args, request_id):
        """Reopen a resolved or closed request."""
        return requests.reopen(db.session, coordinator_scope(), str(request_id), args["note"])
