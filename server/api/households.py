"""Households and pairings (coordinators)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import accounts as s
from schemas.entities import HouseholdRecord

from ..auth import coordinator_scope, coordinators_only
from ..extensions import db
from ..services import households
from ..uow import write

blp = Blueprint("households", __name__, url_prefix="/api/v1/households", description="Households and pairings")
BLUEPRINTS = (blp,)
coordinators_only(blp)


@blp.route("")
class Households(MethodView):
    @blp.arguments(s.HouseholdListArgs, location="query")
    @blp.response(200, s.HouseholdPage)
    def get(self, args):
        """Search the households in scope by area, address or head of household."""
        return households.search(db.session, coordinator_scope(), args["area_id"], args["q"], args["page"],
                                 args["per_page"], args["member_id"], args["unpaired"])

    @blp.arguments(s.HouseholdCreate)
    @blp.response(201, HouseholdRecord)
    @write
    def post(self, args):
        """Add a household."""
        return households.create(db.session, coordinator_scope(), args)


@blp.route("/<uuid:household_id>")
class HouseholdById(MethodView):
    @blp.response(200, HouseholdRecord)
    def get(self, household_id):
        """A household, with its pairing (``member_id``) and ``version``."""
        return households.get(db.session, coordinator_scope(), str(household_id))

    @blp.arguments(s.HouseholdPatch(partial=("area_id", "address")))
    @blp.response(200, s.HouseholdEdited)
    @write
    def patch(self, args, household_id):
        """Edit a household online; merged against tablets' edits like a tablet's own change."""
        base_version = args.pop("base_version")
        return households.edit(db.session, coordinator_scope(), str(household_id), base_version, args)


@blp.route("/<uuid:household_id>/pairing")
class HouseholdPairing(MethodView):
    @blp.arguments(s.PairingArgs)
    @blp.response(200, HouseholdRecord)
    @write
    def put(self, args, household_id):
        """Pair the household with a member (or ``null`` to unpair it)."""
        return households.pair(db.session, coordinator_scope(), str(household_id), args["member_id"])
