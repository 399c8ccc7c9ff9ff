"""Integrations: other platforms (a hotline, the unified platform) that raise requests in one area.

An admin creates one and is shown its token once; only the token's SHA-256 is kept. The token works on
``POST /requests`` alone (``server.auth.accepts_integrations``), for households of its area.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.errors import NotFoundError
from sync.models import Integration, new_id, utcnow
from sync.policy import Scope

from ..auth import new_token, token_hash
from .common import paginate


def create(session: Session, scope: Scope, name: str, area_id: str) -> Integration:
    scope.require_admin()
    area = scope.require_area(session, area_id)
    token = new_token()
    integration = Integration(id=new_id(), name=name, area_id=area.id, token_hash=token_hash(token),
                              created_by=scope.actor.user_id, created_at=utcnow())
    session.add(integration)
    session.flush()
    integration.token = token  # shown once, in this answer
    return integration


def list_integrations(session: Session, scope: Scope, page: int, per_page: int) -> dict:
    scope.require_admin()
    return paginate(session, select(Integration), page, per_page, (Integration.created_at, Integration.id))


def revoke(session: Session, scope: Scope, integration_id: str) -> Integration:
    """From now on its token is unknown (401); the requests it raised stay."""
    scope.require_admin()
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise NotFoundError()
    integration.revoked_at = integration.revoked_at or utcnow()
    return integration
