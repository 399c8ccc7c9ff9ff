"""Conflicts for review: a field changed on both sides, and the coordinator's final word on it."""
from __future__ import annotations

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.entities import DATA_SCHEMAS
from sync.apply import write_fields
from sync.changes import json_value
from sync.entities import SPECS
from sync.errors import ConflictError, NotFoundError, ValidationFailedError
from sync.models import Conflict, utcnow
from sync.policy import Scope

from .common import paginate


def _in_scope(scope: Scope):
    return scope.household_ids_clause(Conflict.household_id)


def list_conflicts(session: Session, scope: Scope, status: str | None, page: int, per_page: int) -> dict:
    stmt = select(Conflict).where(_in_scope(scope))
    if status:
        stmt = stmt.where(Conflict.status == status)
    return paginate(session, stmt, page, per_page, (Conflict.created_at.desc(), Conflict.id))


def _validated(entity: str, field: str, value):
    """The value as the entity's own schema reads that field, or validation_failed."""
    try:
        return DATA_SCHEMAS[entity]().load({field: value}, partial=True)[field]
    except ma.ValidationError as exc:
        raise ValidationFailedError(details={"value": exc.messages.get(field, exc.messages)}) from None


def get_conflict(session: Session, scope: Scope, conflict_id: str) -> Conflict:
    conflict = session.scalar(select(Conflict).where(Conflict.id == conflict_id, _in_scope(scope)))
    if conflict is None:
        raise NotFoundError("No such conflict.")
    return conflict


def resolve_conflict(session: Session, scope: Scope, conflict_id: str, value) -> Conflict:
    """Set the field to the chosen value as a new version (pulled as usual) and close the conflict."""
    conflict = get_conflict(session, scope, conflict_id)
    if conflict.status != "open":
        raise ConflictError("This conflict was already resolved.", {"status": conflict.status})
    typed = _validated(conflict.entity, conflict.field, value)
    record = scope.require(session, SPECS[conflict.entity].model, conflict.record_id)
    now = utcnow()
    write_fields(session, scope.actor, conflict.entity, record, {conflict.field: typed}, now)
    conflict.status = "resolved"
    conflict.resolved_at = now
    conflict.resolved_by = scope.actor.user_id
    conflict.resolved_value = json_value(typed)
    return conflict
