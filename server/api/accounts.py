"""Accounts, areas, users, enrollment codes and devices."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas import accounts as s
from schemas import fleet as fleet_schemas
from schemas.base import PageArgsQuery

from .. import ratelimit
from ..auth import coordinator_scope, coordinators_only, public
from ..extensions import db
from ..services import accounts, fleet
from ..uow import write

auth_blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Tokens for people")
areas_blp = Blueprint("areas", __name__, url_prefix="/api/v1/areas", description="The area tree")
users_blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Members and coordinators")
devices_blp = Blueprint("devices", __name__, url_prefix="/api/v1/devices", description="Tablets")
BLUEPRINTS = (auth_blp, areas_blp, users_blp, devices_blp)
for _blueprint in (areas_blp, users_blp, devices_blp):
    coordinators_only(_blueprint)


@auth_blp.route("/token")
@public
class Token(MethodView):
    @auth_blp.arguments(s.LoginArgs)
    @auth_blp.response(200, s.LoginAnswer)
    @auth_blp.alt_response(401, description="invalid_credentials")
    @auth_blp.alt_response(429, description="rate_limited (with Retry-After)")
    @write
    def post(self, args):
        """Log in with username and password; answers a user token."""
        ratelimit.check_login(args["username"])
        return accounts.login(db.session, args["username"], args["password"], current_app.config["TOKEN_TTL_HOURS"])


@areas_blp.route("")
class Areas(MethodView):
    @areas_blp.arguments(PageArgsQuery, location="query")
    @areas_blp.response(200, s.AreaPage)
    def get(self, args):
        """The areas in the caller's scope."""
        return accounts.list_areas(db.session, coordinator_scope(), args["page"], args["per_page"])

    @areas_blp.arguments(s.AreaSchema)
    @areas_blp.response(201, s.AreaSchema)
    @write
    def post(self, args):
        """Add a community (admin), or a grid or building under an area in scope."""
        return accounts.create_area(db.session, coordinator_scope(), args["name"], args["kind"], args["parent_id"])


@users_blp.route("")
class Users(MethodView):
    @users_blp.arguments(s.UserListArgs, location="query")
    @users_blp.response(200, s.UserPage)
    def get(self, args):
        """The users in the caller's scope."""
        return accounts.list_users(db.session, coordinator_scope(), args["role"], args["area_id"],
                                   args["page"], args["per_page"])

    @users_blp.arguments(s.UserSchema)
    @users_blp.response(201, s.UserSchema)
    @users_blp.alt_response(409, description="username_taken")
    @write
    def post(self, args):
        """Add a member (coordinators) or any user (admins)."""
        return accounts.create_user(db.session, coordinator_scope(), args)


@users_blp.route("/<uuid:user_id>/enrollment-codes")
class EnrollmentCodes(MethodView):
    @users_blp.response(201, s.EnrollmentCodeAnswer)
    @write
    def post(self, user_id):
        """Issue a single-use, short-lived code that enrolls a tablet for this user."""
        return accounts.issue_enrollment_code(db.session, coordinator_scope(), str(user_id),
                                              current_app.config["ENROLLMENT_CODE_TTL_MINUTES"])


@devices_blp.route("")
class Devices(MethodView):
    @devices_blp.arguments(fleet_schemas.FleetDeviceListArgs, location="query")
    @devices_blp.response(200, fleet_schemas.FleetDevicePage)
    def get(self, args):
        """The tablets of the users in scope: last sync, versions, backlog and health flags."""
        return fleet.list_devices(db.session, coordinator_scope(), current_app.config, args["user_id"], args["flag"],
                                  args["page"], args["per_page"])


@devices_blp.route("/enroll")
@public
class Enroll(MethodView):
    @devices_blp.arguments(s.EnrollArgs)
    @devices_blp.response(201, s.EnrollAnswer)
    @devices_blp.alt_response(410, description="code_used")
    @devices_blp.alt_response(429, description="rate_limited (with Retry-After)")
    @write
    def post(self, args):
        """Enroll a tablet with an enrollment code; answers its device token."""
        ratelimit.check_enroll()
        return accounts.enroll(db.session, args["code"], args["name"], args.get("platform"))


@devices_blp.route("/<uuid:device_id>/revoke")
class Revoke(MethodView):
    @devices_blp.response(200, s.DeviceSchema)
    @write
    def post(self, device_id):
        """Revoke a lost tablet: its token gets 401 device_revoked (wipe) from now on."""
        return accounts.revoke_device(db.session, coordinator_scope(), str(device_id))


@devices_blp.route("/<uuid:device_id>/resync")
class Resync(MethodView):
    @devices_blp.response(200, s.DeviceSchema)
    @write
    def post(self, device_id):
        """Make the tablet start again with a full pull (its next pull answers 410 cursor_expired)."""
        return accounts.request_resync(db.session, coordinator_scope(), str(device_id))
