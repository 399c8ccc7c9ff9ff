"""Pull: the changes in a device's scope since its cursor, a page at a time.

A first pull (no cursor) sends the whole current scope, then continues from the change-log position
taken before it started, so nothing committed meanwhile is missed. Later pulls read the change log after
the cursor's ``seq``; because ``seq`` is numbered in commit order (see ``sync.changes``), "everything
after the highest ``seq`` seen" never skips a change. Each change is sent as the record's current state,
decided by the scope at the time of the pull: an ``upsert`` or a ``delete`` tombstone for records in
scope; a household that moved in comes whole, one that moved out comes as an ``evict`` for itself and
every record that belongs to it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import cursor as cursors
from .entities import PULL_ORDER, SPECS
from .models import ChangeCounter, ChangeLog, Device, Household, utcnow
from .policy import Actor, Scope
from .settings import SyncSettings

HOUSEHOLD_SCOPED = PULL_ORDER[:6]
"""Entities that follow their household's pairing; tasks and reviews follow the person addressed."""


@dataclass
class PulledChange:
    entity: str
    id: str
    action: str
    version: int | None
    record: Any = None
    """The record's columns as attributes (not an ORM object): see ``_records``."""


@dataclass
class PullPage:
    changes: list[PulledChange]
    cursor: str
    has_more: bool
    server_time: dt.datetime


class _Page:
    def __init__(self, limit: int):
        self.limit = limit
        self.changes: list[PulledChange] = []
        self.position: dict[tuple[str, str], int] = {}

    @property
    def room(self) -> int:
        return self.limit - len(self.changes)

    def add(self, entity: str, record_id: str, action: str, version: int | None, record: Any = None):
        """Add a change; a record already on this page is replaced in place by its newer state.

        A page reads the log more than once, and a record may change between two reads: the later read
        is the newer state (or an evict after an upsert), so it must win, never be dropped.
        """
        key = (entity, record_id)
        change = PulledChange(entity, record_id, action, version, record)
        if key in self.position:
            self.changes[self.position[key]] = change
            return
        self.position[key] = len(self.changes)
        self.changes.append(change)


def current_seq(session: Session) -> int:
    return session.scalar(select(ChangeCounter.value).where(ChangeCounter.id == 1)) or 0


def pull(session: Session, actor: Actor, device: Device, token: str | None, limit: int, key: bytes,
         settings: SyncSettings, now: dt.datetime | None = None) -> PullPage:
    """One page of changes for ``device``. Raises ``InvalidCursorError`` / ``CursorExpiredError``."""
    now = now or utcnow()
    if token:
        cur = cursors.decode(token, key, device_id=device.id, epoch=device.resync_epoch,
                             max_age=dt.timedelta(days=settings.history_days), now=now)
    else:
        cur = cursors.Cursor(device.id, device.resync_epoch, current_seq(session), 0,
                             cursors.Pending("full"))
    scope = Scope(actor)
    page = _Page(limit)
    while page.room > 0:
        if cur.pending is not None:
            if not _send_pending(session, scope, cur.pending, page):
                break
            cur.pending = None
            continue
        rows = _log_rows(session, scope, cur.seq, page.room)
        if not rows:
            break
        _send_rows(session, scope, rows, cur, page)
    device.last_seen_at = device.last_sync_at = now
    has_more = cur.pending is not None or bool(_log_rows(session, scope, cur.seq, 1))
    cur.issued_at = int(now.timestamp())
    return PullPage(page.changes, cursors.encode(cur, key), has_more, now)


# --- the change log -------------------------------------------------------------------------------


def _log_rows(session: Session, scope: Scope, after: int, limit: int) -> list[ChangeLog]:
    """Log rows after ``after`` that concern this scope, in ``seq`` order.

    Three index-friendly queries instead of one ``OR``, so the cost follows the scope: rows of the
    households in scope (by household, seq), and rows addressed to or leaving the person (by user, seq).

    All three stop at the counter's value read first. On PostgreSQL (READ COMMITTED) each statement
    sees its own snapshot: without the bound, a change committed between the first query and the second
    was missed by the first, while the second could return a later row (a pairing, a task) that moved
    the cursor past it for good. Every row up to the counter's value is committed once the value is
    visible (``sync.changes``), so each query sees all of them, whatever commits meanwhile.
    """
    me = scope.actor.user_id
    upto = current_seq(session)
    columns = (ChangeLog.seq, ChangeLog.entity, ChangeLog.record_id, ChangeLog.household_id,
               ChangeLog.audience_user_id, ChangeLog.former_user_id)
    window = (ChangeLog.seq > after, ChangeLog.seq <= upto)
    queries = [
        select(*columns).where(*window, scope.household_ids_clause(ChangeLog.household_id)),
        select(*columns).where(*window, ChangeLog.audience_user_id == me),
        select(*columns).where(*window, ChangeLog.former_user_id == me),
    ]
    found: dict[int, Any] = {}
    for query in queries:
        for row in session.execute(query.order_by(ChangeLog.seq).limit(limit)):
            found[row.seq] = row
    return [found[seq] for seq in sorted(found)[:limit]]


def _households_in_scope(session: Session, scope: Scope, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.scalars(select(Household.id).where(Household.id.in_(ids), scope.households())))


def _send_rows(session: Session, scope: Scope, rows, cur: cursors.Cursor, page: _Page) -> None:
    me = scope.actor.user_id
    mine = _households_in_scope(session, scope, {r.household_id for r in rows if r.household_id})
    records = _fetch(session, rows)
    for row in rows:
        if page.room <= 0:
            return
        if row.entity == "pairing":
            if me not in (row.audience_user_id, row.former_user_id):
                cur.seq = row.seq
                continue
            cur.seq = row.seq
            cur.pending = cursors.Pending("up" if row.household_id in mine else "ev", row.household_id)
            return
        record = records.get((row.entity, row.record_id))
        cur.seq = row.seq
        if record is None:
            continue
        if row.entity in ("task", "review"):
            addressed = record.member_id if row.entity == "task" else record.recipient_id
            if addressed == me:
                _send_record(page, row.entity, record)
            elif row.former_user_id == me:
                page.add(row.entity, record.id, "evict", None)
        elif row.household_id in mine:
            _send_record(page, row.entity, record)


def _fetch(session: Session, rows) -> dict[tuple[str, str], Any]:
    wanted: dict[str, set[str]] = {}
    for row in rows:
        if row.entity in SPECS:
            wanted.setdefault(row.entity, set()).add(row.record_id)
    found = {}
    for entity, ids in wanted.items():
        model = SPECS[entity].model
        for record in _records(session, _select_columns(model).where(model.id.in_(ids))):
            found[(entity, record.id)] = record
    return found


def _select_columns(model):
    return select(*model.__table__.c)


def _records(session: Session, stmt) -> list[SimpleNamespace]:
    """Rows as plain objects with the model's attributes: a page answers them and never changes them, so
    it needs none of what an ORM object costs to build (identity map, state, attribute events)."""
    return [SimpleNamespace(**row._mapping) for row in session.execute(stmt)]


def _send_record(page: _Page, entity: str, record) -> None:
    if record.deleted_at is not None:
        page.add(entity, record.id, "delete", record.version)
    else:
        page.add(entity, record.id, "upsert", record.version, record)


# --- runs of whole households ---------------------------------------------------------------------


def _send_pending(session: Session, scope: Scope, pending: cursors.Pending, page: _Page) -> bool:
    """Send the next part of ``pending``; return True once all of it is sent."""
    entities = PULL_ORDER if pending.mode == "full" else HOUSEHOLD_SCOPED
    while pending.step < len(entities):
        entity = entities[pending.step]
        model = SPECS[entity].model
        stmt = _select_columns(model).where(model.id > pending.after).order_by(model.id).limit(page.room)
        if pending.mode == "full":
            stmt = stmt.where(scope.records_listed(session, model), model.deleted_at.is_(None))
        else:
            column = model.id if model is Household else model.household_id
            stmt = stmt.where(column == pending.household_id)
            if pending.mode == "up":
                stmt = stmt.where(model.deleted_at.is_(None))
        batch = _records(session, stmt)
        for record in batch:
            if pending.mode == "ev":
                page.add(entity, record.id, "evict", None)
            else:
                page.add(entity, record.id, "upsert", record.version, record)
            pending.after = record.id
        if page.room <= 0:
            return False
        pending.step += 1
        pending.after = ""
    return True

