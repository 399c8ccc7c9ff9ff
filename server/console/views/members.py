"""Members and tablets: add a member, issue an enrollment code (text and QR), see and revoke tablets."""
from __future__ import annotations

from urllib.parse import quote

import segno
from flask import current_app, flash, render_template, request

from schemas.accounts import UserSchema

from ...extensions import db
from ...services import accounts
from ...uow import write
from .. import bp
from ..forms import PageQuery, parse
from ..i18n import gettext as _
from .common import areas, back, scope

PER_PAGE = 100


@bp.get("/members")
def member_list():
    """Members in scope and their tablets, with last sync."""
    session, caller = db.session, scope()
    args = parse(PageQuery(), request.args)
    people = accounts.list_users(session, caller, None, None, args["page"], PER_PAGE)
    devices = accounts.list_devices(session, caller, None, 1, 1000)["items"]
    by_user: dict[str, list] = {}
    for device in devices:
        by_user.setdefault(device.user_id, []).append(device)
    return render_template("console/members.html", people=people, devices=by_user, areas=areas())


@bp.post("/members")
@write
def member_add():
    """Add a member (coordinators) or any user (admins): the API's own rules."""
    user = accounts.create_user(db.session, scope(), parse(UserSchema(), request.form))
    flash({"text": _("Added %(name)s.", name=user.display_name)}, "ok")
    return back("console.member_list")


def enrollment_payload(code: str) -> str:
    """What the QR code holds: the server to enroll with and the code, so a tablet needs no typing."""
    return f"lianhu://enroll?server={quote(request.url_root, safe='')}&code={code}"


@bp.post("/members/<uuid:user_id>/enrollment-code")
@write
def member_enrollment_code(user_id):
    """Issue a single-use code; shown once, as text and as a QR code made here."""
    session, caller = db.session, scope()
    issued = accounts.issue_enrollment_code(session, caller, str(user_id),
                                            current_app.config["ENROLLMENT_CODE_TTL_MINUTES"])
    user = caller.require_user(session, str(user_id))
    payload = enrollment_payload(issued["code"])
    qr_svg = segno.make(payload, error="m").svg_inline(scale=5, title=issued["code"])
    return render_template("console/enrollment_code.html", user=user, issued=issued, payload=payload, qr_svg=qr_svg)


@bp.post("/devices/<uuid:device_id>/revoke")
@write
def device_revoke(device_id):
    """Revoke a lost tablet: its next call is told to wipe itself."""
    device = accounts.revoke_device(db.session, scope(), str(device_id))
    flash({"text": _("Tablet %(name)s revoked.", name=device.name)}, "ok")
    return back("console.member_list")


@bp.post("/devices/<uuid:device_id>/resync")
@write
def device_resync(device_id):
    """Make the tablet start again from a full pull."""
    device = accounts.request_resync(db.session, scope(), str(device_id))
    flash({"text": _("Tablet %(name)s will pull everything again.", name=device.name)}, "ok")
    return back("console.member_list")
