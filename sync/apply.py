"""Applying one change to one record: create, update (with three-way merge) and delete.

Used by device pushes and by coordinators' online edits alike, so both follow the same rules.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import requests as request_rules
from .attachments import attachment_ref_rows
from .changes import json_value, pending_history, record_change
from .entities import SPECS, EntitySpec
from .errors import ForbiddenError, IdTakenError, NotFoundError, OpRejected, StaleDeleteError
from .merge import UNKNOWN, FieldConflict, FieldOutcome, merge_field
from .models import Area, AttachmentRef, ChangeLog, Conflict, Household, Pairing, Request, utcnow
from .policy import Actor, Scope
from .rows import queue_row
from .settings import SyncSettings
from .txcache import tx_cache


@dataclass
class Change:
    """One change to apply: what a device op or an online edit asks for."""

    entity: str
    record_id: str
    action: str
    data: dict[str, Any]
    base_version: int | None
    recorded_at: dt.datetime
    """Already corrected by the device's clock offset."""


@dataclass
class Outcome:
    status: str
    version: int | None
    record: Any = None
    """The ORM object, or None for a leaf record, which is created as a row (``LEAVES``)."""
    conflicts: list[FieldConflict] = field(default_factory=list)


def _rejected(exc: Exception) -> OpRejected:
    if isinstance(exc, OpRejected):
        return exc
    code = getattr(exc, "code", "validation_failed")
    return OpRejected(code, getattr(exc, "message", str(exc)), getattr(exc, "details", {}))


def household_of(session: Session, spec: EntitySpec, record) -> str:
    return record.id if spec.name == "household" else record.household_id


def apply_change(
    session: Session, actor: Actor, change: Change, settings: SyncSettings, now: dt.datetime | None = None
) -> Outcome:
    """Apply ``change`` for ``actor``; raise ``OpRejected`` (with a stable code) when it cannot be."""
    now = now or utcnow()
    spec = SPECS[change.entity]
    if change.action not in spec.actions:
        if not spec.actions:
            raise OpRejected("forbidden", f"{spec.name} records are never pushed.")
        raise OpRejected("validation_failed", f"{spec.name} does not allow {change.action}.",
                         {"action": [f"must be one of {sorted(spec.actions)}"]})
    try:
        if change.action == "create":
            return _create(session, actor, spec, change, settings, now)
        if change.action == "update":
            return _update(session, actor, spec, change, settings, now)
        return _delete(session, actor, spec, change, now)
    except (NotFoundError, ForbiddenError) as exc:
        raise _rejected(exc) from None


# --- create -------------------------------------------------------------------------------------


def _create(session, actor, spec, change, settings, now) -> Outcome:
    model = spec.model
    cache = tx_cache(session)
    free = cache.id_is_free(spec.name, change.record_id)
    if free is False or (free is None and session.get(model, change.record_id) is not None):
        raise IdTakenError()
    scope = Scope(actor)
    data = dict(change.data)
    if spec.name in LEAVES:
        household = household_in_scope(session, scope, data["household_id"])
        return _create_leaf(session, actor, spec, change, household, now)
    record = model(id=change.record_id)
    if spec.name == "household":
        area = _area_for_new_household(session, scope, data.get("area_id"))
        record.community_id = area.community_id
    elif spec.name == "request_event":
        req = scope.require(session, Request, data["request_id"])
        record.household_id = req.household_id
        record.community_id = req.community_id
    else:
        household = household_in_scope(session, scope, data["household_id"])
        record.community_id = household.community_id
    for name, value in data.items():
        setattr(record, name, value)
    record.version = 1
    record.created_at = record.updated_at = now
    record.author_id = actor.user_id
    record.origin_device_id = actor.device_id
    if spec.name == "request":
        request_rules.prepare_new_request(record, settings, change.recorded_at)
    if spec.name == "request_event":
        request_rules.accept_event(session, actor, record, change.recorded_at, settings, now)
    session.add(record)
    cache.take(spec.name, record.id)
    session.flush()  # the request loop and pairings query what was just made
    fields = {name: [None, getattr(record, name)] for name in data}
    if spec.name == "request":
        fields["status"] = [None, record.status]
    _log(session, spec, record, "create", fields, actor, change.recorded_at)
    if spec.name == "household" and actor.role == "member":
        # A family that moved in stays with the member who found it until a coordinator re-pairs it.
        set_pairing(session, actor, record, actor.user_id, now)
    if spec.name == "request":
        request_rules.after_new_request(session, record, now)
    if spec.name == "request_event":
        request_rules.after_event(session, actor, record, settings, now)
    return Outcome("applied", record.version, record)


LEAVES = frozenset({"visit", "resident", "assistance_log"})
"""Records nothing else in a transaction refers to: created as plain rows (``sync.rows`` says why)."""


def _create_leaf(session, actor, spec, change, household, now) -> Outcome:
    row = {**change.data, "id": change.record_id, "community_id": household.community_id, "version": 1,
           "created_at": now, "updated_at": now, "author_id": actor.user_id, "origin_device_id": actor.device_id}
    queue_row(session, spec.model.__table__, row)
    tx_cache(session).take(spec.name, change.record_id)
    if "attachments" in spec.model.__table__.c:
        for ref in attachment_ref_rows(spec.name, row):
            queue_row(session, AttachmentRef.__table__, ref)
    created = SimpleNamespace(**row)
    fields = {name: [None, value] for name, value in change.data.items()}
    _log(session, spec, created, "create", fields, actor, change.recorded_at)
    if spec.name == "visit":
        request_rules.after_visit(session, actor, created, household, now)
    return Outcome("applied", 1, None)


def household_in_scope(session: Session, scope: Scope, household_id: str) -> Household:
    """``scope.require`` for households, remembered for the rest of the transaction."""
    cache = tx_cache(session).in_scope
    key = (scope.actor.user_id, household_id)
    household = cache.get(key)
    if household is None:
        household = cache[key] = scope.require(session, Household, household_id)
    return household


def _area_for_new_household(session: Session, scope: Scope, area_id: str | None) -> Area:
    area = session.get(Area, area_id) if area_id else None
    actor = scope.actor
    if area is None:
        raise NotFoundError("No such area.", {"area_id": area_id})
    if actor.role == "admin":
        return area
    if not actor.area_path or not area.path.startswith(actor.area_path):
        raise NotFoundError("No such area.", {"area_id": area_id})
    return area


# --- update -------------------------------------------------------------------------------------


def _load_for_change(session, actor, spec, change):
    model = spec.model
    record = tx_cache(session).loaded.get((spec.name, change.record_id))
    if record is None:
        stmt = select(model).where(model.id == change.record_id, Scope(actor).records(model))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        record = session.scalar(stmt)
    if record is None:
        raise NotFoundError("No such record.")
    if record.deleted_at is not None:
        raise NotFoundError("The record was deleted.", {"deleted": True})
    if spec.authored and record.author_id != actor.user_id:
        raise ForbiddenError("Only its author may change this record.")
    if change.base_version is not None and change.base_version > record.version:
        raise OpRejected("validation_failed", "base_version is ahead of the server's version.",
                         {"base_version": [f"the server's version is {record.version}"]})
    return record


def _history_since(session, spec, record, base_version: int) -> list[ChangeLog] | None:
    """Changes after ``base_version``, oldest first, or None when history no longer reaches back."""
    known = tx_cache(session).history.get((spec.name, record.id))
    if known is not None:
        rows = [row for row in known if row.version is not None and row.version > base_version]
    else:
        rows = list(
            session.scalars(
                select(ChangeLog)
                .where(ChangeLog.entity == spec.name, ChangeLog.record_id == record.id,
                       ChangeLog.version > base_version)
                .order_by(ChangeLog.version)
            )
        )
    # Changes made earlier in this transaction (the same batch) are numbered and written only at commit.
    queued = [ChangeLog(**{k: v for k, v in row.items() if k != "seq"})
              for row in pending_history(session, spec.name, record.id)
              if row["version"] is not None and row["version"] > base_version]
    rows = sorted(rows + queued, key=lambda r: r.version)
    if {r.version for r in rows} != set(range(base_version + 1, record.version + 1)):
        return None
    return rows


def _update(session, actor, spec, change, settings, now) -> Outcome:
    record = _load_for_change(session, actor, spec, change)
    for name in spec.immutable & change.data.keys():
        if json_value(change.data[name]) != json_value(getattr(record, name)):
            raise OpRejected("validation_failed", f"{name} cannot change.", {name: ["cannot change after create"]})
    data = {k: v for k, v in change.data.items() if k not in spec.immutable}
    stale = change.base_version is not None and change.base_version < record.version
    writes: dict[str, Any] = {}
    conflicts: list[FieldConflict] = []
    if not stale:
        writes = {k: v for k, v in data.items() if json_value(v) != json_value(getattr(record, k))}
    else:
        history = _history_since(session, spec, record, change.base_version)
        for name, device_value in data.items():
            outcome = _merge_one(spec, record, name, device_value, history, actor, change.recorded_at)
            if outcome.write:
                writes[name] = outcome.value
            if outcome.conflict:
                conflicts.append(outcome.conflict)
    if writes:
        _write(session, actor, spec, record, writes, change.recorded_at, now)
    for conflict in conflicts:
        session.add(Conflict(
            entity=spec.name, record_id=record.id, field=conflict.field,
            kept=json_value(conflict.kept), discarded=json_value(conflict.discarded),
            device_id=actor.device_id, user_id=actor.user_id, community_id=record.community_id,
            household_id=household_of(session, spec, record), created_at=now,
        ))
    return Outcome("merged" if stale else "applied", record.version, record, conflicts)


def _merge_one(spec, record, name, device_value, history, actor, device_time):
    server_value = getattr(record, name)
    is_set = name in spec.set_fields
    if history is None:
        outcome = merge_field(
            name, is_set=is_set, base=UNKNOWN, server=json_value(server_value),
            device=json_value(device_value), changed_by_others=True,
            server_recorded_at=record.updated_at, device_recorded_at=device_time,
        )
        return _restore(outcome, device_value, server_value)
    touching = [r for r in history if name in r.fields]
    base = touching[0].fields[name][0] if touching else json_value(server_value)
    others = [r for r in touching if not _same_source(r, actor)]
    added: list[Any] = []
    removed: list[Any] = []
    for r in others:
        old, new = r.fields[name]
        if isinstance(old, list) or isinstance(new, list):
            added += [x for x in (new or []) if x not in (old or [])]
            removed += [x for x in (old or []) if x not in (new or [])]
    outcome = merge_field(
        name, is_set=is_set, base=base, server=json_value(server_value),
        device=json_value(device_value), changed_by_others=bool(others),
        server_recorded_at=max((r.recorded_at for r in others), default=record.updated_at),
        device_recorded_at=device_time, others_added=added, others_removed=removed,
    )
    return _restore(outcome, device_value, server_value)


def _restore(outcome: FieldOutcome, device_value, server_value) -> FieldOutcome:
    """Merging compares wire values; write back the typed value the schema produced."""
    value = outcome.value
    if not isinstance(device_value, list):
        if value == json_value(device_value):
            value = device_value
        elif value == json_value(server_value):
            value = server_value
    return FieldOutcome(outcome.write, value, outcome.conflict)


def _same_source(row: ChangeLog, actor: Actor) -> bool:
    """A device's own earlier changes never conflict with its later ones."""
    return actor.device_id is not None and row.device_id == actor.device_id


def _write(session, actor, spec, record, writes, recorded_at, now) -> None:
    fields = {name: [getattr(record, name), value] for name, value in writes.items()}
    for name, value in writes.items():
        setattr(record, name, value)
    record.version += 1
    record.updated_at = now
    _log(session, spec, record, "update", fields, actor, recorded_at)


def write_fields(session, actor: Actor, entity: str, record, writes: dict[str, Any],
                 now: dt.datetime | None = None) -> None:
    """A server-side change of some fields (a service's own, not a merge): a new version, logged."""
    now = now or utcnow()
    writes = {k: v for k, v in writes.items() if json_value(v) != json_value(getattr(record, k))}
    if writes:
        _write(session, actor, SPECS[entity], record, writes, now, now)


# --- delete -------------------------------------------------------------------------------------


def _delete(session, actor, spec, change, now) -> Outcome:
    record = _load_for_change(session, actor, spec, change)
    if change.base_version is not None and change.base_version < record.version:
        history = _history_since(session, spec, record, change.base_version)
        if history is None or any(not _same_source(r, actor) for r in history):
            raise StaleDeleteError(details={"version": record.version})
    record.deleted_at = now
    record.version += 1
    record.updated_at = now
    _log(session, spec, record, "delete", {}, actor, change.recorded_at)
    return Outcome("applied", record.version, record)


# --- the log, pairings --------------------------------------------------------------------------


def _log(session, spec, record, action, fields, actor: Actor, recorded_at) -> None:
    audience = None
    if spec.name == "task":
        audience = record.member_id
    elif spec.name == "review":
        audience = record.recipient_id
    record_change(
        session, entity=spec.name, record_id=record.id, community_id=record.community_id,
        household_id=household_of(session, spec, record), action=action, version=record.version,
        fields=fields, device_id=actor.device_id, user_id=actor.user_id, recorded_at=recorded_at,
        audience_user_id=audience,
    )


def log_record(session: Session, actor: Actor, entity: str, record, action: str,
               fields: dict[str, list[Any]], recorded_at: dt.datetime | None = None,
               former_user_id: str | None = None) -> None:
    """Log a change made by a service (tasks, reviews, request status) with the engine's rules."""
    spec = SPECS[entity]
    _log(session, spec, record, action, fields, actor, recorded_at or utcnow())
    if former_user_id:
        pending = session.info["lianhu.pending_changes"][-1]
        pending["former_user_id"] = former_user_id


def set_pairing(session: Session, actor: Actor, household: Household, member_id: str | None,
                now: dt.datetime | None = None) -> str | None:
    """Pair ``household`` with ``member_id`` (or unpair it); return the former member.

    The change is logged so that the former member's next pull evicts the household and everything
    that belongs to it, and the new member's brings its full current state.
    """
    now = now or utcnow()
    cache = tx_cache(session)
    for key in [k for k in cache.in_scope if k[1] == household.id]:  # scope decisions about it no longer hold
        del cache.in_scope[key]
    for key in [k for k, record in cache.loaded.items() if household_of(session, SPECS[k[0]], record) == household.id]:
        del cache.loaded[key]
    pairing = session.get(Pairing, household.id)
    former = pairing.member_id if pairing else None
    if former == member_id:
        return former
    if member_id is None:
        session.delete(pairing)
    elif pairing is None:
        session.add(Pairing(household_id=household.id, member_id=member_id,
                            community_id=household.community_id, paired_at=now, paired_by=actor.user_id))
    else:
        pairing.member_id = member_id
        pairing.paired_at = now
        pairing.paired_by = actor.user_id
    session.flush()
    record_change(
        session, entity="pairing", record_id=household.id, community_id=household.community_id,
        household_id=household.id, action="pair", version=None,
        fields={"member_id": [former, member_id]}, device_id=actor.device_id, user_id=actor.user_id,
        recorded_at=now, audience_user_id=member_id, former_user_id=former,
    )
    request_rules.after_pairing(session, actor, household, member_id, now)
    return former
