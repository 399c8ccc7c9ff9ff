"""The tablet's local store: the replica of its scope and the outbox of ops recorded offline.

One SQLite file. The replica holds what the server last said about each record (``records``), keyed by
(entity, id) with its version. Ops the member records offline wait in ``outbox`` until a push answers
them; what the app shows (``view``) is the replica with the outbox laid over it, so a pull that brings
newer server state "rebases" the member's pending edits without rewriting them: pending ops keep the
``base_version`` they were recorded against, which is what lets the server's three-way merge tell the
member's edits from everyone else's.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS records (
    entity TEXT NOT NULL, id TEXT NOT NULL,
    version INTEGER,
    data TEXT,                          -- the record as the server sent it (NULL for a tombstone)
    deleted INTEGER NOT NULL DEFAULT 0,
    provisional INTEGER NOT NULL DEFAULT 0,  -- written from our own acknowledged op, not yet pulled
    seen_epoch INTEGER NOT NULL DEFAULT 0,   -- the full pull that last saw it
    PRIMARY KEY (entity, id)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL, record_id TEXT NOT NULL, action TEXT NOT NULL,
    base_version INTEGER,
    base_op_id TEXT,                    -- base comes from this earlier op's answer (our own create)
    recorded_at TEXT NOT NULL,
    data TEXT,
    batch_id TEXT                       -- set once the op is put in a batch: a resend reuses it
);
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (entity, record_id);
CREATE TABLE IF NOT EXISTS files (       -- photos and documents recorded on this tablet, kept until wiped
    sha256 TEXT PRIMARY KEY, data BLOB NOT NULL, mime TEXT, name TEXT,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending (not known to be on the server), uploaded, refused
    error TEXT                               -- why the server refused it (too large, ...): not retried
);
CREATE TABLE IF NOT EXISTS answers (     -- the server's answer to each op this tablet sent
    op_id TEXT PRIMARY KEY, entity TEXT, record_id TEXT, action TEXT,
    status TEXT NOT NULL, version INTEGER, error TEXT, conflicts TEXT
);
"""


@dataclass
class OutboxOp:
    seq: int
    op_id: str
    entity: str
    record_id: str
    action: str
    base_version: int | None
    base_op_id: str | None
    recorded_at: str
    data: dict | None
    batch_id: str | None

    def wire(self) -> dict:
        return {"op_id": self.op_id, "entity": self.entity, "id": self.record_id, "action": self.action,
                "base_version": self.base_version, "recorded_at": self.recorded_at, "data": self.data}


@dataclass
class Held:
    version: int | None
    data: dict | None
    deleted: bool
    provisional: bool


class Store:
    """A tablet's SQLite file; every method is one local transaction."""

    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.RLock()
        self._depth = 0
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    # --- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                           "SET value = excluded.value", (key, json.dumps(value)))

    # --- replica --------------------------------------------------------------------------------

    def held(self, entity: str, record_id: str) -> Held | None:
        with self._lock:
            row = self._db.execute("SELECT version, data, deleted, provisional FROM records "
                                   "WHERE entity = ? AND id = ?", (entity, record_id)).fetchone()
        if row is None:
            return None
        return Held(row[0], json.loads(row[1]) if row[1] else None, bool(row[2]), bool(row[3]))

    def put_record(self, entity: str, record_id: str, version: int | None, data: dict | None, *,
                   deleted: bool = False, provisional: bool = False, seen_epoch: int | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO records (entity, id, version, data, deleted, provisional, seen_epoch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entity, id) DO UPDATE SET version = excluded.version, "
                "data = excluded.data, deleted = excluded.deleted, provisional = excluded.provisional, "
                "seen_epoch = MAX(records.seen_epoch, excluded.seen_epoch)",
                (entity, record_id, version, json.dumps(data, ensure_ascii=False) if data is not None else None,
                 int(deleted), int(provisional), seen_epoch or 0))

    def drop_record(self, entity: str, record_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM records WHERE entity = ? AND id = ?", (entity, record_id))

    def mark_seen(self, entity: str, record_id: str, epoch: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE records SET seen_epoch = ? WHERE entity = ? AND id = ?", (epoch, entity, record_id))

    def drop_unseen(self, epoch: int) -> int:
        """After a full pull: drop what it did not bring (out of scope now, or gone while we were away)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM records WHERE seen_epoch < ?", (epoch,)).rowcount

    def replica(self) -> dict[tuple[str, str], dict]:
        """The live records as the server sent them: ``{(entity, id): {"version", "data"}}``."""
        with self._lock:
            rows = self._db.execute("SELECT entity, id, version, data FROM records WHERE deleted = 0").fetchall()
        return {(e, i): {"version": v, "data": json.loads(d) if d else None} for e, i, v, d in rows}

    # --- outbox ---------------------------------------------------------------------------------

    def append_op(self, op: dict, base_op_id: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO outbox (op_id, entity, record_id, action, base_version, base_op_id, recorded_at, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (op["op_id"], op["entity"], op["id"], op["action"], op["base_version"], base_op_id,
                 op["recorded_at"], json.dumps(op["data"], ensure_ascii=False) if op["data"] is not None else None))

    def outbox(self, batch_id: str | None = ..., entity: str | None = None,
               record_id: str | None = None) -> list[OutboxOp]:
        sql, args = "SELECT seq, op_id, entity, record_id, action, base_version, base_op_id, recorded_at, data, " \
                    "batch_id FROM outbox WHERE 1 = 1", []
        if batch_id is None:
            sql += " AND batch_id IS NULL"
        elif batch_id is not ...:
            sql += " AND batch_id = ?"
            args.append(batch_id)
        if entity is not None:
            sql += " AND entity = ? AND record_id = ?"
            args += [entity, record_id]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [OutboxOp(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]) if r[8] else None, r[9])
                for r in rows]

    def open_batch_id(self) -> str | None:
        """The batch sent but not yet answered, if any: it must be resent before anything else."""
        with self._lock:
            row = self._db.execute("SELECT batch_id FROM outbox WHERE batch_id IS NOT NULL "
                                   "ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def assign_batch(self, batch_id: str, ops: list[OutboxOp]) -> None:
        with self.transaction() as db:
            for op in ops:
                db.execute("UPDATE outbox SET batch_id = ?, base_version = ? WHERE op_id = ?",
                           (batch_id, op.base_version, op.op_id))

    def release_batch(self, batch_id: str, keep: list[str]) -> None:
        """Take ops back out of a batch that was never applied (it was too large)."""
        with self.transaction() as db:
            db.executemany("UPDATE outbox SET batch_id = NULL WHERE op_id = ? AND batch_id = ?",
                           [(op_id, batch_id) for op_id in keep])

    def remove_op(self, op_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM outbox WHERE op_id = ?", (op_id,))

    def record_answer(self, op: OutboxOp, result: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO answers (op_id, entity, record_id, action, status, version, error, conflicts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (op_id) DO UPDATE SET status = excluded.status, "
                "version = excluded.version, error = excluded.error, conflicts = excluded.conflicts",
                (op.op_id, op.entity, op.record_id, op.action, result["status"], result.get("version"),
                 json.dumps(result.get("error")), json.dumps(result.get("conflicts") or [], ensure_ascii=False)))

    def answer(self, op_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT status, version, error FROM answers WHERE op_id = ?", (op_id,)).fetchone()
        return {"status": row[0], "version": row[1], "error": json.loads(row[2])} if row else None

    def rejected(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT op_id, entity, record_id, action, error FROM answers "
                                    "WHERE status = 'rejected'").fetchall()
        return [{"op_id": r[0], "entity": r[1], "id": r[2], "action": r[3], "error": json.loads(r[4])} for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "records": self._db.execute("SELECT COUNT(*) FROM records WHERE deleted = 0").fetchone()[0],
                "outbox": self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
                "rejected": self._db.execute("SELECT COUNT(*) FROM answers WHERE status = 'rejected'").fetchone()[0],
                "uploads_waiting": self._db.execute("SELECT COUNT(*) FROM files WHERE state = 'pending'").fetchone()[0],
            }

    # --- files (attachments) ---------------------------------------------------------------------

    def put_file(self, sha256: str, data: bytes, mime: str | None, name: str | None) -> None:
        """Keep a file's bytes; the same bytes recorded twice are one file (content-addressed)."""
        with self.transaction() as db:
            db.execute("INSERT INTO files (sha256, data, mime, name) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (sha256) DO NOTHING", (sha256, data, mime, name))

    def file(self, sha256: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0] if row else None

    def files(self, state: str | None = None) -> list[str]:
        """The hashes of the files held, in the order recorded; only those in ``state`` if given."""
        sql, args = "SELECT sha256 FROM files", []
        if state is not None:
            sql, args = sql + " WHERE state = ?", [state]
        with self._lock:
            return [r[0] for r in self._db.execute(sql + " ORDER BY rowid", args)]

    def file_states(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT sha256, state FROM files").fetchall())

    def set_file_state(self, sha256: str, state: str, error: dict | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE files SET state = ?, error = ? WHERE sha256 = ?",
                       (state, json.dumps(error, ensure_ascii=False) if error else None, sha256))

    # --- the app's view -------------------------------------------------------------------------

    def view(self, entity: str, record_id: str) -> dict | None:
        """The record as the member sees it: the replica with pending ops laid over it."""
        held = self.held(entity, record_id)
        record = dict(held.data) if held and held.data and not held.deleted else None
        for op in self.outbox(entity=entity, record_id=record_id):
            if op.action == "create":
                record = {"id": record_id, **(op.data or {})}
            elif op.action == "update" and record is not None:
                record.update(op.data or {})
            elif op.action == "delete":
                record = None
        return record

    def view_all(self, entity: str) -> list[dict]:
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM records WHERE entity = ? AND deleted = 0 UNION "
                "SELECT record_id FROM outbox WHERE entity = ? ORDER BY 1", (entity, entity))]
        return [r for r in (self.view(entity, i) for i in ids) if r is not None]

    def wipe(self) -> None:
        """Forget everything: a revoked tablet keeps no personal data (photos included)."""
        with self.transaction() as db:
            for table in ("records", "outbox", "answers", "files", "meta"):
                db.execute(f"DELETE FROM {table}")
