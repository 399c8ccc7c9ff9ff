"""Accounts, areas and tablets: login, users, enrollment codes, enrollment, revocation."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from sync.errors import (
    CodeUsedError,
    ForbiddenError,
    InvalidCredentialsError,
    NotFoundError,
    UsernameTakenError,
    ValidationFailedError,
)
from sync.models import ApiToken, Area, Device, EnrollmentCode, User, new_id, utcnow
from sync.policy import Scope

from .. import auth
from .common import paginate

PARENT_KIND = {"community": None, "grid": "community", "building": "grid"}


def login(session: Session, username: str, password: str, ttl_hours: int) -> dict:
    user = session.scalar(select(User).where(User.username == username))
    if not auth.verify_password(user, password):
        raise InvalidCredentialsError()
    token = auth.new_token()
    session.add(ApiToken(user_id=user.id, token_hash=auth.token_hash(token),
                         expires_at=auth.token_expiry(ttl_hours)))
    return {"token": token, "user": user}


def logout(session: Session, token: str) -> None:
    """End a user token before its expiry (the console's logout)."""
    session.execute(delete(ApiToken).where(ApiToken.token_hash == auth.token_hash(token)))


# --- areas ----------------------------------------------------------------------------------------


def create_area(session: Session, scope: Scope, name: str, kind: str, parent_id: str | None) -> Area:
    expected_parent = PARENT_KIND[kind]
    if expected_parent is None:
        if parent_id is not None:
            raise ValidationFailedError(details={"parent_id": ["a community has no parent"]})
        if scope.actor.role != "admin":
            raise ForbiddenError("Only an admin creates communities.")
        area_id = new_id()
        area = Area(id=area_id, name=name, kind=kind, parent_id=None, community_id=area_id, path=f"/{area_id}/")
    else:
        if parent_id is None:
            raise ValidationFailedError(details={"parent_id": [f"a {kind} needs a parent {expected_parent}"]})
        parent = scope.require_area(session, parent_id)
        if parent.kind != expected_parent:
            raise ValidationFailedError(details={"parent_id": [f"the parent of a {kind} is a {expected_parent}"]})
        area_id = new_id()
        area = Area(id=area_id, name=name, kind=kind, parent_id=parent.id, community_id=parent.community_id,
                    path=f"{parent.path}{area_id}/")
    session.add(area)
    session.flush()
    return area


def list_areas(session: Session, scope: Scope, page: int, per_page: int) -> dict:
    return paginate(session, select(Area).where(scope.areas()), page, per_page, (Area.path,))


# --- users ----------------------------------------------------------------------------------------


def create_user(session: Session, scope: Scope, data: dict) -> User:
    role = data["role"]
    if not scope.may_grant_role(role):
        raise ForbiddenError("Coordinators add members; an admin adds coordinators and admins.")
    area_id = data.get("area_id")
    if area_id is not None:
        scope.require_area(session, area_id)
    elif scope.actor.role != "admin" or role != "admin":
        raise ValidationFailedError(details={"area_id": ["required for members and coordinators"]})
    if session.scalar(select(User.id).where(User.username == data["username"])) is not None:
        raise UsernameTakenError()
    password = data.get("password")
    user = User(username=data["username"], display_name=data["display_name"], role=role, area_id=area_id,
                password_hash=auth.hash_password(password) if password else None, active=True)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session, scope: Scope, role: str | None, area_id: str | None,
               page: int, per_page: int) -> dict:
    stmt = select(User).where(scope.users())
    if role:
        stmt = stmt.where(User.role == role)
    if area_id:
        area = scope.require_area(session, area_id)
        stmt = stmt.where(User.area_id.in_(select(Area.id).where(Area.path.startswith(area.path))))
    return paginate(session, stmt, page, per_page, (User.username,))


def issue_enrollment_code(session: Session, scope: Scope, user_id: str, ttl_minutes: int) -> dict:
    user = scope.require_user(session, user_id)
    code = auth.new_enrollment_code()
    expires_at = utcnow() + dt.timedelta(minutes=ttl_minutes)
    session.add(EnrollmentCode(user_id=user.id, code_hash=auth.token_hash(auth.normalize_code(code)),
                               created_by=scope.actor.user_id, expires_at=expires_at))
    return {"code": code, "expires_at": expires_at}


# --- devices --------------------------------------------------------------------------------------


def enroll(session: Session, code: str, name: str, platform: str | None) -> dict:
    digest = auth.token_hash(auth.normalize_code(code))
    entry = session.scalar(select(EnrollmentCode).where(EnrollmentCode.code_hash == digest))
    if entry is None:
        raise InvalidCredentialsError("No such enrollment code.")
    now = utcnow()
    device_id = new_id()
    # Claim the code atomically, so two tablets racing with one code cannot both enroll.
    claimed = session.execute(
        update(EnrollmentCode)
        .where(EnrollmentCode.id == entry.id, EnrollmentCode.used_at.is_(None), EnrollmentCode.expires_at > now)
        .values(used_at=now, device_id=device_id)
    ).rowcount
    if claimed != 1:
        raise CodeUsedError()
    user = session.get(User, entry.user_id)
    if user is None or not user.active:
        raise CodeUsedError("The account of this code is disabled.")
    token = auth.new_token()
    device = Device(id=device_id, user_id=user.id, name=name, platform=platform,
                    token_hash=auth.token_hash(token), created_at=now, last_seen_at=now)
    session.add(device)
    session.flush()
    return {"device_id": device.id, "token": token, "user": user}


def _devices_in_scope(scope: Scope):
    return select(Device).where(Device.user_id.in_(select(User.id).where(scope.users())))


def list_devices(session: Session, scope: Scope, user_id: str | None, page: int, per_page: int) -> dict:
    stmt = _devices_in_scope(scope)
    if user_id:
        stmt = stmt.where(Device.user_id == user_id)
    return paginate(session, stmt, page, per_page, (Device.created_at, Device.id))


def require_device(session: Session, scope: Scope, device_id: str) -> Device:
    device = session.scalar(_devices_in_scope(scope).where(Device.id == device_id))
    if device is None:
        raise NotFoundError("No such device.")
    return device


def revoke_device(session: Session, scope: Scope, device_id: str) -> Device:
    device = require_device(session, scope, device_id)
    if device.revoked_at is None:
        device.revoked_at = utcnow()
    return device


def request_resync(session: Session, scope: Scope, device_id: str) -> Device:
    device = require_device(session, scope, device_id)
    device.resync_epoch += 1
    return device
