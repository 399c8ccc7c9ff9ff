"""Workplace members (双报到): who registered, register and end, the printable service report and its
files; webhooks: subscriptions, the delivery log and a replay button."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app, flash, render_template, request
from marshmallow import validate

from schemas.base import Str
from schemas.outreach import (
    DELIVERY_STATUSES,
    EVENT_TYPES,
    GRANTS,
    ORGANISATION_KINDS,
    DeliveryListArgs,
    RegistrationCreate,
    RegistrationEnd,
    RegistrationListArgs,
    ServiceReportArgs,
    SubscriptionCreate,
)
from sync.errors import ValidationFailedError

from ...extensions import db
from ...services import registrations, webhooks
from ...uow import write
from .. import bp
from ..export_files import HEADERS
from ..forms import IGNORED, parse
from ..i18n import gettext as _
from ..service_report import report_file
from .common import areas, back, members, scope

PER_PAGE = 100


class ReportQuery(ServiceReportArgs):
    """The report's filters as the console sends them: a printable page unless a file is asked for."""

    format = Str(load_default="html", validate=validate.OneOf(("html", "csv", "xlsx")))


# --- registrations --------------------------------------------------------------------------------


@bp.get("/registrations")
def registration_list():
    """Who registered from which organisation; register a member, end a registration."""
    args = parse(RegistrationListArgs(), request.args)
    found = registrations.list_registrations(db.session, scope(), {**args, "per_page": PER_PAGE})
    return render_template("console/registrations.html", found=found, args=args, areas=areas(), members=members(),
                           kinds=ORGANISATION_KINDS)


@bp.post("/registrations")
@write
def registration_add():
    """Register a member from a home organisation."""
    registration = registrations.register(db.session, scope(), parse(RegistrationCreate(), request.form))
    flash({"text": _("%(name)s registered from %(organisation)s.", name=registration.display_name,
                     organisation=registration.home_organisation)}, "ok")
    return back("console.registration_list")


@bp.post("/registrations/<uuid:registration_id>/end")
@write
def registration_end(registration_id):
    """End a registration; the page lists the households that now have no member."""
    args = parse(RegistrationEnd(), request.form)
    ended = registrations.end(db.session, scope(), str(registration_id), args["ended_on"], args["reason"])
    return render_template("console/registration_ended.html", ended=ended)


@bp.get("/registrations/report")
def registration_report():
    """The service report: a printable page, or the same rows as CSV or XLSX for the home organisation."""
    args = parse(ReportQuery(), request.args)
    report = registrations.service_report(db.session, scope(), args, current_app.config["POINTS"])
    if args["format"] != "html":
        return report_file(report, args["format"])
    return render_template("console/registration_report.html", report=report, args=args, areas=areas(),
                           columns=registrations.REPORT_COLUMNS, headers=HEADERS)


# --- webhooks -------------------------------------------------------------------------------------


def _subscription_form() -> dict:
    """The form's fields; the event types come as several checkboxes of one name."""
    data = {k: v for k, v in request.form.items() if k not in IGNORED and k != "event_types" and v.strip()}
    data["event_types"] = request.form.getlist("event_types")
    try:
        return SubscriptionCreate().load(data)
    except ma.ValidationError as exc:
        raise ValidationFailedError(details=exc.messages) from None


@bp.get("/webhooks")
def webhook_log():
    """Subscriptions of the areas in scope and the latest deliveries with every attempt."""
    session, caller = db.session, scope()
    args = parse(DeliveryListArgs(), request.args)
    subscriptions = webhooks.list_subscriptions(session, caller, 1, 1000)["items"]
    deliveries = webhooks.list_deliveries(session, caller, args["subscription_id"], args["status"], args["page"],
                                          PER_PAGE)
    return render_template("console/webhooks.html", subscriptions=subscriptions, deliveries=deliveries,
                           areas=areas(), event_types=EVENT_TYPES, grants=GRANTS, statuses=DELIVERY_STATUSES,
                           args=args, names={s.id: s.name for s in subscriptions})


@bp.post("/webhooks/subscriptions")
@write
def webhook_subscribe():
    """Subscribe a platform; its signing secret is shown once, on the page that follows."""
    subscription = webhooks.create_subscription(db.session, scope(), _subscription_form())
    return render_template("console/webhook_secret.html", subscription=subscription)


@bp.post("/webhooks/subscriptions/<uuid:subscription_id>/deactivate")
@write
def webhook_deactivate(subscription_id):
    subscription = webhooks.deactivate_subscription(db.session, scope(), str(subscription_id))
    flash({"text": _("Subscription %(name)s switched off.", name=subscription.name)}, "ok")
    return back("console.webhook_log")


@bp.post("/webhooks/deliveries/<uuid:delivery_id>/replay")
@write
def webhook_replay(delivery_id):
    """Queue a delivery again; the worker sends it at its next round."""
    webhooks.replay(db.session, scope(), str(delivery_id))
    flash({"text": _("The delivery is queued again.")}, "ok")
    return back("console.webhook_log")
