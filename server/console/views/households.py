"""Households: search, a household's page (residents and timeline), and its pairing."""
from __future__ import annotations

from flask import flash, render_template, request

from ...extensions import db
from ...services import households
from ...uow import write
from .. import bp
from ..forms import HouseholdSearch, PairingForm, parse
from ..i18n import gettext as _
from .common import areas, back, members, scope

PER_PAGE = 50


@bp.get("/households")
def household_list():
    """Search households by address or head of household, area and member."""
    args = parse(HouseholdSearch(), request.args)
    result = households.search(db.session, scope(), args["area_id"], args["q"], args["page"], PER_PAGE,
                               args["member_id"])
    return render_template("console/households.html", result=result, args=args, areas=areas(),
                           members={m.id: m for m in members()})


@bp.get("/households/<uuid:household_id>")
def household_page(household_id):
    """A household with its residents and a timeline of visits, assistance and requests."""
    session, caller = db.session, scope()
    household = households.get(session, caller, str(household_id))
    return render_template("console/household.html", household=household,
                           residents=households.residents(session, caller, household.id),
                           timeline=households.timeline(session, caller, household.id),
                           members=members(), area_names={a.id: a.name for a in areas()})


@bp.post("/households/<uuid:household_id>/pairing")
@write
def household_pairing(household_id):
    """Pair the household with a member, or unpair it."""
    args = parse(PairingForm(), request.form)
    households.pair(db.session, scope(), str(household_id), args["member_id"])
    flash({"text": _("Pairing saved.")}, "ok")
    return back("console.household_page", household_id=household_id)
