"""WatermelonDB's sync contract over the engine: the same pull, push, merge and scope, other envelopes.

Pull: the engine's ``sync.pull.pull`` is run page after page until it has nothing more, and its changes
are folded into WatermelonDB's changes object (an ``upsert`` is a raw record, a ``delete`` or ``evict`` a
deleted id). The ``timestamp`` answered is ``seq + 1`` of the change-log position the engine reached; a
``watermelon_pulls`` row keeps, per device and timestamp, the engine's cursor and when it was answered.

Push: each pushed row becomes one op for ``sync.push.push`` (through ``sync_service.push``, so the op is
validated by the entity schemas like any other): a create with all of its columns, or an update of its
``_changed`` columns only, or a delete. An update's ``base_version`` is the version the tablet held when
the row was edited: the version as of the last pull this device had received before the row's
``updated_at`` (corrected by the device's clock offset). Why not simply the version at ``last_pulled_at``:
``synchronize()`` pulls before it pushes and keeps local values of changed columns ("client wins"), so the
pull just before the push has already brought the other side's edit, and a merge against it would never
see that the same column changed on both sides.

Op and batch ids are derived from the device, the row as sent and its base, so a push sent again (after
a lost answer) replays instead of applying twice.
"""
from __future__ import annotations

import bisect
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from marshmallow import fields
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from schemas.base import DateTimeTZ
from schemas.entities import DATA_SCHEMAS, RECORD_SCHEMAS
from schemas.watermelondb import TABLES
from sync import cursor as cursors
from sync import pull as pull_engine
from sync.apply import log_record
from sync.entities import SPECS
from sync.errors import InvalidCursorError, ValidationFailedError
from sync.models import ChangeLog, Device, OpLog, WatermelonPull, utcnow
from sync.policy import Scope
from sync.push import canonical_hash

from . import sync_service
from .common import sync_settings

PAGE = 1000
"""Engine pages per WatermelonDB pull: the contract has no paging, so one answer holds them all."""

RECENT_PULLS = 500
"""How many of a device's latest pulls a push looks through for each row's base."""

IDS = uuid.UUID("5f0c7a52-8d0e-4c1b-9a36-2f4d1e6b7c90")
"""Namespace of the op and batch ids derived from what a WatermelonDB client sends."""

NOT_PUSHED = {"id", "_status", "_changed", "created_at", "updated_at", "version", "author_id"}
"""Columns of a pulled-only table's row that are bookkeeping, not a change the device asks for."""


@dataclass(frozen=True)
class Columns:
    """How one table's columns map onto its entity's wire fields."""

    times: frozenset[str]
    """Times: epoch milliseconds in WatermelonDB, RFC 3339 on the engine's wire."""
    json: frozenset[str]
    """Sets, lists and objects: JSON text, since WatermelonDB columns hold only scalars."""
    writable: tuple[str, ...]
    """What a device may send (the entity's ``Data`` schema); empty for tasks and reviews."""
    nullable: frozenset[str]
    """Writable fields that take null: an empty string there means null."""


def _columns(entity: str) -> Columns:
    record = RECORD_SCHEMAS[entity]._declared_fields
    data_schema = DATA_SCHEMAS.get(entity)
    data = data_schema._declared_fields if data_schema else {}
    return Columns(
        times=frozenset(n for n, f in record.items() if isinstance(f, DateTimeTZ)),
        json=frozenset(n for n, f in record.items() if isinstance(f, (fields.List, fields.Dict, fields.Nested))),
        writable=tuple(data),
        nullable=frozenset(n for n, f in data.items() if f.allow_none),
    )


COLUMNS = {entity: _columns(entity) for entity in TABLES.values()}


# --- values ---------------------------------------------------------------------------------------


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: Any) -> Any:
    """Epoch ms as RFC 3339; anything else unchanged, for the entity schema to refuse."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    try:
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return value


def raw_record(session: Session, entity: str, record) -> dict[str, Any]:
    """A WatermelonDB raw record: the entity's wire record with times in ms and structures as JSON text."""
    columns = COLUMNS[entity]
    raw = {}
    for name, value in sync_service.serialize_record(entity, record).items():
        if value is not None and name in columns.times:
            value = _ms(getattr(record, name))
        elif value is not None and name in columns.json:
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        raw[name] = value
    return raw


def _op_data(entity: str, row: dict, names) -> dict[str, Any]:
    columns = COLUMNS[entity]
    data = {}
    for name in names:
        if name not in row:
            continue
        value = row[name]
        if value == "" and name in columns.nullable:
            value = None
        if value is not None and name in columns.times:
            value = _from_ms(value)
        elif isinstance(value, str) and name in columns.json:
            try:
                value = json.loads(value)
            except ValueError:
                pass  # the entity schema refuses the text, and the op is quarantined as sent
        data[name] = value
    return data


# --- pull -----------------------------------------------------------------------------------------


class _Changes:
    """Engine changes folded into one state per record: the highest version, or gone."""

    def __init__(self):
        self.state: dict[tuple[str, str], tuple[str, int | None, Any]] = {}

    def add(self, change: pull_engine.PulledChange) -> None:
        key = (change.entity, change.id)
        held = self.state.get(key)
        if change.action == "upsert":
            if held and held[0] == "upsert" and (held[1] or 0) >= (change.version or 0):
                return
            self.state[key] = ("upsert", change.version, change.record)
        else:  # a tombstone, or out of the tablet's scope: WatermelonDB has one word for both
            self.state[key] = ("gone", None, None)

    def answer(self, session: Session, as_created: bool) -> dict[str, dict[str, list]]:
        out = {table: {"created": [], "updated": [], "deleted": []} for table in TABLES}
        tables = {entity: table for table, entity in TABLES.items()}
        sync_service.complete_records(session, [
            pull_engine.PulledChange(entity, record_id, action, version, record)
            for (entity, record_id), (action, version, record) in self.state.items() if action == "upsert"])
        for (entity, record_id), (action, _, record) in self.state.items():
            lists = out[tables[entity]]
            if action == "gone":
                lists["deleted"].append(record_id)
            else:
                lists["created" if as_created else "updated"].append(raw_record(session, entity, record))
        return out


def _mark(session: Session, device: Device, timestamp: int) -> WatermelonPull:
    mark = session.get(WatermelonPull, (device.id, timestamp))
    if mark is None:
        raise InvalidCursorError("This last_pulled_at was never answered to this tablet: reset the local "
                                 "database and pull with last_pulled_at=null.")
    return mark


def _drain(session: Session, scope: Scope, device: Device, token: str | None, into: _Changes,
           entities: set[str] | None = None) -> tuple[str, int]:
    """Pull pages until the engine has no more; return the last cursor and the seq it stands for."""
    settings, key = sync_settings(), sync_service.cursor_key()
    while True:
        page = pull_engine.pull(session, scope.actor, device, token, PAGE, key, settings)
        for change in page.changes:
            if entities is None or change.entity in entities:
                into.add(change)
        token = page.cursor
        if not page.has_more:
            break
    reached = cursors.decode(token, key, device_id=device.id, epoch=device.resync_epoch,
                             max_age=dt.timedelta(days=settings.history_days), now=utcnow())
    return token, reached.seq


def pull(session: Session, scope: Scope, device: Device, args: dict) -> dict:
    """WatermelonDB's ``pullChanges``: every change in scope since ``last_pulled_at``, and a timestamp.

    A ``migration`` pull also brings every record of the tables it names (new tables, or tables with
    new columns), so the new columns get their values.
    """
    last = args["last_pulled_at"]
    token = _mark(session, device, last).cursor if last is not None else None
    changes = _Changes()
    token, seq = _drain(session, scope, device, token, changes)
    migration = args["migration"]
    if migration is not None and last is not None:
        named = set(migration["tables"]) | {c["table"] for c in migration["columns"]}
        entities = {TABLES[t] for t in named if t in TABLES}  # other tables are the app's own, local ones
        if entities:
            full_token, full_seq = _drain(session, scope, device, None, changes, entities)
            # Answer the smaller position: both runs have sent everything up to it, so nothing is skipped.
            if full_seq < seq:
                token, seq = full_token, full_seq
    timestamp = seq + 1  # above 0 even on an empty change log, and never smaller than an earlier answer
    _remember(session, device, timestamp, seq, token)
    as_created = last is None and not args["send_created_as_updated"]
    return {"changes": changes.answer(session, as_created), "timestamp": timestamp}


def _remember(session: Session, device: Device, timestamp: int, seq: int, token: str) -> None:
    now = utcnow()
    mark = session.get(WatermelonPull, (device.id, timestamp))
    if mark is None:
        session.add(WatermelonPull(device_id=device.id, timestamp=timestamp, seq=seq, cursor=token,
                                   created_at=now))
    else:
        mark.cursor = token  # a fresh cursor for the same position; created_at stays the first answer's
    cutoff = now - dt.timedelta(days=sync_settings().history_days)
    session.execute(delete(WatermelonPull).where(WatermelonPull.device_id == device.id,
                                                 WatermelonPull.created_at < cutoff))


# --- push -----------------------------------------------------------------------------------------


class _Bases:
    """The version of each pushed record as the tablet held it when the row was edited."""

    def __init__(self, session: Session, device: Device, mark: WatermelonPull | None, offset: dt.timedelta):
        self.session, self.offset = session, offset
        self.pulls: list[tuple[dt.datetime, int]] = []
        if mark is not None:
            rows = session.execute(
                select(WatermelonPull.created_at, WatermelonPull.seq)
                .where(WatermelonPull.device_id == device.id, WatermelonPull.timestamp <= mark.timestamp)
                .order_by(WatermelonPull.timestamp.desc()).limit(RECENT_PULLS)).all()
            self.pulls = sorted((r.created_at, r.seq) for r in rows)
        self.history: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def seq_at(self, edited_at: dt.datetime | None) -> int | None:
        """The position of the last pull answered before the edit (corrected to the server's clock)."""
        if not self.pulls:
            return None
        if edited_at is None:  # no edit time: the pull before the one that preceded this push
            return self.pulls[-2][1] if len(self.pulls) > 1 else self.pulls[-1][1]
        index = bisect.bisect_right([at for at, _ in self.pulls], edited_at + self.offset) - 1
        return self.pulls[max(index, 0)][1]

    def load(self, entity: str, ids: list[str]) -> None:
        for row in self.session.execute(select(ChangeLog.record_id, ChangeLog.seq, ChangeLog.version).where(
                ChangeLog.entity == entity, ChangeLog.record_id.in_(ids), ChangeLog.version.is_not(None))):
            self.history.setdefault((entity, row.record_id), []).append((row.seq, row.version))

    def version(self, entity: str, record, edited_at: dt.datetime | None) -> int:
        seq = self.seq_at(edited_at)
        if seq is None:
            return 0  # nothing known of what the tablet saw: every change by others counts as concurrent
        history = self.history.get((entity, record.id), [])
        before = [v for s, v in history if s <= seq]
        if before:
            return max(before)
        after = [v for s, v in history if s > seq]
        return min(after) - 1 if after else record.version


@dataclass
class _Planned:
    table: str
    row_id: str
    op: dict
    record: Any


def _edit_time(row: dict) -> dt.datetime | None:
    value = row.get("updated_at")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _row_id(table: str, row: Any) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise ValidationFailedError("Every pushed record needs a string id.", {table: ["a record without an id"]})
    return row["id"]


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower() and "\x00" not in text
    except ValueError:
        return False


def _plan(session: Session, device: Device, changes: dict, bases: _Bases, fallback_time: dt.datetime) -> list[_Planned]:
    """One op per pushed row, parents' tables first, each table's creates, then updates, then deletes."""
    planned = []
    for table, entity in TABLES.items():
        lists = changes.get(table)
        if not lists:
            continue
        spec, columns = SPECS[entity], COLUMNS[entity]
        upserts = [("created", row) for row in lists["created"]] + [("updated", row) for row in lists["updated"]]
        ids = [_row_id(table, row) for _, row in upserts] + list(lists["deleted"])
        known = [i for i in ids if _is_uuid(i)]
        existing = {r.id: r for r in session.scalars(select(spec.model).where(spec.model.id.in_(known)))} if known else {}
        bases.load(entity, [i for i in known if i in existing])

        def op_id(row_id, action, base, row, table=table) -> str:
            return str(uuid.uuid5(IDS, canonical_hash([device.id, table, row_id, action, base, row])))

        def add(row_id, action, data, base, edited_at, row, table=table, entity=entity, existing=existing):
            recorded = edited_at or fallback_time
            op = {"op_id": op_id(row_id, action, base, row, table), "entity": entity, "id": row_id, "action": action,
                  "base_version": base, "recorded_at": recorded.isoformat(), "data": data}
            planned.append(_Planned(table, row_id, op, existing.get(row_id)))

        # a create pushed before, exactly as now, is replayed (the engine answers its first result)
        creates = {op_id(row["id"], "create", None, row) for kind, row in upserts if kind == "created"}
        replayed = set(session.scalars(select(OpLog.op_id).where(
            OpLog.device_id == device.id, OpLog.op_id.in_(creates)))) if creates else set()

        for kind, row in upserts:
            row_id, record, edited_at = row["id"], existing.get(row["id"]), _edit_time(row)
            writable = columns.writable or [c for c in row if c not in NOT_PUSHED]
            # a create sent again (its answer was lost) updates the record this device made
            own_resend = kind == "created" and record is not None and record.origin_device_id == device.id
            replay = kind == "created" and op_id(row_id, "create", None, row) in replayed
            if record is None or replay or (kind == "created" and not own_resend):
                data = {k: v for k, v in _op_data(entity, row, writable).items() if v is not None}
                add(row_id, "create", data, None, edited_at, row)
                continue
            changed = row.get("_changed") if kind == "updated" else None
            names = [c for c in changed.split(",") if c in writable] if isinstance(changed, str) and changed else writable
            data = _op_data(entity, row, names)
            if data:
                add(row_id, "update", data, bases.version(entity, record, edited_at), edited_at, row)
        for row_id in lists["deleted"]:
            record = existing.get(row_id)
            if record is None or record.deleted_at is not None:
                continue  # nothing to delete: WatermelonDB's contract says to ignore it
            add(row_id, "delete", None, bases.version(entity, record, None), None, row_id)
    return planned


def push(session: Session, scope: Scope, device: Device, args: dict, changes: dict) -> dict:
    """WatermelonDB's ``pushChanges``: every row through the engine, in one transaction.

    Answers ``experimentalRejectedIds`` (the records the tablet must keep as unsynced: creates the server
    refused) and each row's engine result. A refused update or delete, and a merge that kept the other
    side's value, leave the tablet's copy different from the server's: those records are logged again, so
    the tablet's next pull brings the server's state back.
    """
    now = utcnow()
    last = args["last_pulled_at"]
    mark = _mark(session, device, last) if last is not None else None
    if args["client_time"] is not None:
        client_time = dt.datetime.fromtimestamp(args["client_time"] / 1000, dt.timezone.utc)
    else:  # keep the offset estimated earlier, rather than resetting it to zero
        client_time = now - dt.timedelta(seconds=device.clock_offset_seconds or 0)
    bases = _Bases(session, device, mark, now - client_time)
    planned = _plan(session, device, changes, bases, mark.created_at if mark else now)

    per_batch = sync_settings().max_ops_per_batch
    results: list[dict] = []
    for start in range(0, len(planned), per_batch):
        chunk = [p.op for p in planned[start:start + per_batch]]
        batch_id = uuid.uuid5(IDS, canonical_hash([device.id, last, [op["op_id"] for op in chunk]]))
        answer = sync_service.push(session, scope, device, {
            "batch_id": str(batch_id), "client_time": client_time, "ops": chunk, "client": {}})
        results += answer["results"]

    rejected: dict[str, list[str]] = {}
    by_table: dict[str, dict[str, dict]] = {}
    for item, result in zip(planned, results, strict=True):
        by_table.setdefault(item.table, {})[item.row_id] = result
        if result["status"] == "rejected" and item.op["action"] == "create":
            rejected.setdefault(item.table, []).append(item.row_id)
        elif result["status"] == "rejected" or result["conflicts"]:
            _send_again(session, scope, item)
    return {"experimentalRejectedIds": rejected, "results": by_table}


def _send_again(session: Session, scope: Scope, item: _Planned) -> None:
    entity = TABLES[item.table]
    model = SPECS[entity].model
    record = session.scalar(select(model).where(model.id == item.row_id, scope.records(model),
                                                model.deleted_at.is_(None)))
    if record is not None:  # out of scope or gone: the tablet's next pull removes it anyway
        log_record(session, scope.actor, entity, record, "resend", {})
