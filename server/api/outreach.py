"""Reaching beyond the community: workplace registrations (双报到) and their service report, webhook
subscriptions with their delivery log and replays (coordinators), integrations (admins)."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import outreach as s
from schemas.base import PageArgsQuery

from ..auth import coordinator_scope, coordinators_only, current_scope
from ..console.service_report import report_file
from ..extensions import db
from ..services import integrations, registrations, webhooks
from ..uow import write

registrations_blp = Blueprint("registrations", __name__, url_prefix="/api/v1/registrations",
                              description="Members registered from their workplace (双报到)")
webhooks_blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                         description="Events for other platforms")
integrations_blp = Blueprint("integrations", __name__, url_prefix="/api/v1/integrations",
                             description="Other platforms that raise requests")
BLUEPRINTS = (registrations_blp, webhooks_blp, integrations_blp)
for _blueprint in (registrations_blp, webhooks_blp):
    coordinators_only(_blueprint)  # the token and role before the body


@integrations_blp.before_request
def _admins_only():
    """Check the token and the role before the body is read."""
    current_scope().require_admin()


# --- registrations --------------------------------------------------------------------------------


@registrations_blp.route("")
class Registrations(MethodView):
    @registrations_blp.arguments(s.RegistrationListArgs, location="query")
    @registrations_blp.response(200, s.RegistrationPage)
    def get(self, args):
        """Members registered with areas in scope; ``active=true``: those still registered."""
        return registrations.list_registrations(db.session, coordinator_scope(), args)

    @registrations_blp.arguments(s.RegistrationCreate)
    @registrations_blp.response(201, s.RegistrationRecord)
    @registrations_blp.alt_response(409, description="conflict")
    @write
    def post(self, args):
        """Register a member with a community from a home organisation; pair it with households as usual."""
        return registrations.register(db.session, coordinator_scope(), args)


@registrations_blp.route("/<uuid:registration_id>/end")
class EndRegistration(MethodView):
    @registrations_blp.arguments(s.RegistrationEnd)
    @registrations_blp.response(200, s.RegistrationEnded)
    @registrations_blp.alt_response(409, description="conflict")
    @write
    def post(self, args, registration_id):
        """End a registration: the member's households there become unpaired, and are listed."""
        return registrations.end(db.session, coordinator_scope(), str(registration_id), args["ended_on"],
                                 args["reason"])


@registrations_blp.route("/report")
class ServiceReport(MethodView):
    @registrations_blp.arguments(s.ServiceReportArgs, location="query")
    @registrations_blp.response(200, s.ServiceReport)
    def get(self, args):
        """Service per registration over whole local days: JSON, or ``format=csv|xlsx`` for a file."""
        report = registrations.service_report(db.session, coordinator_scope(), args, current_app.config["POINTS"])
        return report if args["format"] == "json" else report_file(report, args["format"])


# --- webhooks -------------------------------------------------------------------------------------


@webhooks_blp.route("/subscriptions")
class Subscriptions(MethodView):
    @webhooks_blp.arguments(PageArgsQuery, location="query")
    @webhooks_blp.response(200, s.SubscriptionPage)
    def get(self, args):
        """Subscriptions of areas in scope (without their secrets)."""
        return webhooks.list_subscriptions(db.session, coordinator_scope(), args["page"], args["per_page"])

    @webhooks_blp.arguments(s.SubscriptionCreate)
    @webhooks_blp.response(201, s.SubscriptionIssued)
    @write
    def post(self, args):
        """Subscribe a URL to an area's events; the answer shows the signing secret, once."""
        return webhooks.create_subscription(db.session, coordinator_scope(), args)


@webhooks_blp.route("/subscriptions/<uuid:subscription_id>")
class SubscriptionById(MethodView):
    @webhooks_blp.response(200, s.SubscriptionRecord)
    @write
    def delete(self, subscription_id):
        """Switch a subscription off: no new events, queued ones are not sent."""
        return webhooks.deactivate_subscription(db.session, coordinator_scope(), str(subscription_id))


@webhooks_blp.route("/deliveries")
class Deliveries(MethodView):
    @webhooks_blp.arguments(s.DeliveryListArgs, location="query")
    @webhooks_blp.response(200, s.DeliveryPage)
    def get(self, args):
        """The delivery log, newest first: each event's body and every attempt with its status code."""
        return webhooks.list_deliveries(db.session, coordinator_scope(), args["subscription_id"], args["status"],
                                        args["page"], args["per_page"])


@webhooks_blp.route("/deliveries/<uuid:delivery_id>/replay")
class ReplayDelivery(MethodView):
    @webhooks_blp.response(200, s.DeliveryRecord)
    @write
    def post(self, delivery_id):
        """Send a delivery again (same body and id, signed afresh), through the outbox."""
        return webhooks.replay(db.session, coordinator_scope(), str(delivery_id))


# --- integrations ---------------------------------------------------------------------------------


@integrations_blp.route("")
class Integrations(MethodView):
    @integrations_blp.arguments(PageArgsQuery, location="query")
    @integrations_blp.response(200, s.IntegrationPage)
    def get(self, args):
        """Integrations (admins)."""
        return integrations.list_integrations(db.session, current_scope(), args["page"], args["per_page"])

    @integrations_blp.arguments(s.IntegrationCreate)
    @integrations_blp.response(201, s.IntegrationIssued)
    @write
    def post(self, args):
        """Create an integration for an area; the answer shows its token, once."""
        return integrations.create(db.session, current_scope(), args["name"], args["area_id"])


@integrations_blp.route("/<uuid:integration_id>/revoke")
class RevokeIntegration(MethodView):
    @integrations_blp.response(200, s.IntegrationRecord)
    @write
    def post(self, integration_id):
        """Revoke an integration's token."""
        return integrations.revoke(db.session, current_scope(), str(integration_id))
