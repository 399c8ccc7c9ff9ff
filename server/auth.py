"""Tokens and passwords: who is calling. What they may see is ``sync.policy``'s business."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import current_app, g, request
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from sync.errors import DeviceRevokedError, UnauthenticatedError
from sync.models import ApiToken, Area, Device, Integration, User, utcnow
from sync.policy import INTEGRATION, Actor, Scope, actor_for

from .extensions import db

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_enrollment_code() -> str:
    """Ten characters a person can type from a screen (about 50 bits); single use and short-lived."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def hash_password(password: str) -> str:
    from flask import current_app

    return generate_password_hash(password, method=current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))


# A hash to check against when the user does not exist, so both paths take as long.
_DUMMY_HASH = None


def verify_password(user: User | None, password: str) -> bool:
    global _DUMMY_HASH
    if user is None or not user.password_hash or not user.active:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(user.password_hash, password)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate(allow_integration: bool = False) -> Actor:
    """The caller from its bearer token: a user token or a device token (acting as its user), or, on
    the calls that accept one, an integration token."""
    if "actor" in g:
        return g.actor
    token = _bearer()
    if token is None:
        raise UnauthenticatedError()
    return authenticate_token(token, allow_integration)


def _integration_actor(session, digest: str) -> Actor | None:
    integration = session.scalar(select(Integration).where(Integration.token_hash == digest,
                                                           Integration.revoked_at.is_(None)))
    if integration is None:
        return None
    area = session.get(Area, integration.area_id)
    g.user, g.device, g.integration = None, None, integration
    g.actor = Actor(integration.id, INTEGRATION, area.id, area.path)
    return g.actor


def authenticate_token(token: str, allow_integration: bool = False) -> Actor:
    """The caller behind ``token`` (a bearer header's, or the console session's), kept in ``g``.

    The token is looked up in the database on every request, never remembered between requests, so that
    revoking a tablet or disabling an account refuses its very next call. A tablet's token is tried first,
    since sync calls are most of the traffic; each lookup brings the user and the user's area in the same
    query, so a tablet's request costs one query to authenticate (``actor_for`` then finds the area in the
    session's identity map)."""
    digest = token_hash(token)
    session = db.session
    found = session.execute(_with_user_and_area(Device).where(Device.token_hash == digest)).first()
    if found is not None:
        device, user, _area = found
        if device.revoked_at is not None:
            raise DeviceRevokedError()
    else:
        found = session.execute(_with_user_and_area(ApiToken).where(ApiToken.token_hash == digest)).first()
        if found is None:
            actor = _integration_actor(session, digest) if allow_integration else None
            if actor is None:
                raise UnauthenticatedError()
            return actor
        api_token, user, _area = found
        device = None
        if api_token.expires_at <= utcnow():
            raise UnauthenticatedError("The token has expired; log in again.")
    if not user.active:
        raise UnauthenticatedError("This account is disabled.")
    g.user, g.device = user, device
    g.actor = actor_for(session, user, device.id if device else None)
    return g.actor


def _with_user_and_area(holder):
    """``holder`` (a ``Device`` or an ``ApiToken``) with its user and the user's area, if any."""
    return (select(holder, User, Area).join(User, User.id == holder.user_id)
            .outerjoin(Area, Area.id == User.area_id))


def current_scope() -> Scope:
    return Scope(authenticate())


def coordinator_scope() -> Scope:
    scope = current_scope()
    scope.require_coordinator()
    return scope


def coordinator_or_integration_scope() -> Scope:
    """A coordinator's scope, or an integration's on a call that accepts integration tokens."""
    scope = current_scope()
    if not scope.actor.is_integration:
        scope.require_coordinator()
    return scope


def public(view_class):
    """Mark an API view that needs no token (logging in, enrolling a tablet)."""
    view_class.public = True
    return view_class


def _is_public(app) -> bool:
    view = app.view_functions.get(request.endpoint)
    return getattr(getattr(view, "view_class", None), "public", False)


def accepts_integrations(*methods: str):
    """Mark the methods of an API view that also take an integration token (another platform's).
    Everywhere else such a token is unknown: 401 ``unauthenticated``."""

    def mark(view_class):
        view_class.integration_methods = frozenset(methods)
        return view_class

    return mark


def _accepts_integration(app) -> bool:
    view = app.view_functions.get(request.endpoint)
    return request.method in getattr(getattr(view, "view_class", None), "integration_methods", ())


def init_app(app) -> None:
    @app.before_request
    def _authenticate_api_calls():
        """Check the bearer token of every ``/api/v1`` call before its input is read, so that a revoked
        tablet is told to wipe (401 ``device_revoked``) whatever it sends, and a caller without a valid
        token learns nothing from validation errors. Unknown routes and methods answer 404/405 as usual."""
        if request.path.startswith("/api/v1/") and request.endpoint is not None and not _is_public(app):
            authenticate(allow_integration=_accepts_integration(app))


def coordinators_only(blueprint) -> None:
    """Check the role of every call of ``blueprint`` but its public views before the body is read: a
    member or a tablet gets 403, never validation details. The views still ask for their scope."""

    @blueprint.before_request
    def _require_coordinator():
        if request.endpoint is not None and not _is_public(current_app):
            if _accepts_integration(current_app) and authenticate().is_integration:
                return
            coordinator_scope()


def device_scope() -> tuple[Scope, Device]:
    scope = current_scope()
    scope.require_device()
    return scope, g.device


def token_expiry(hours: int) -> dt.datetime:
    return utcnow() + dt.timedelta(hours=hours)
