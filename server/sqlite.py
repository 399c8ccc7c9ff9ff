"""SQLite under several gunicorn processes: WAL, one writer at a time, and checkpoints kept off the commits.

Every transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers queue for the write lock instead of
failing when a read transaction tries to become a write. Measured with two workers and ten tablets pushing
20-op batches (py-spy of a worker, and every commit timed), that queue cost more than the work around it:

- SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a writer that finds the
  lock taken wakes up long after it was released: 49% of a worker's time was spent waiting in
  ``BEGIN IMMEDIATE``. ``begin_immediate`` tries again every fraction of a millisecond (a try costs
  microseconds), so the lock changes hands about as soon as it is free.
- SQLite checkpoints the WAL into the database at the end of a commit, once the WAL holds 1,000 pages,
  after the write lock is released. When the next writer begins before that checkpoint ends, the WAL
  cannot start over, so it keeps growing and every later commit runs a checkpoint of its own: a commit
  took 1.6 ms on average (p90 6.8 ms), and once writers were handed the lock at once the WAL grew by
  hundreds of MB a minute and a commit took 2.9-3.8 ms (0.08 ms in a single process). ``WalCheckpoints``
  turns the automatic checkpoint off and runs a ``RESTART`` checkpoint after every ``CHECKPOINT_EVERY_ROWS``
  rows a process writes; it copies the WAL whole under the write lock, so the next writer starts it over.
  Commits now take 0.4 ms, plus about 15 ms of checkpoint every 16 pushes, and the WAL stays near 20 MB.

Nothing here changes what a transaction sees or when it commits; durability stays ``synchronous=NORMAL``
in WAL mode (a checkpoint syncs the database file).
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time

from sqlalchemy import event

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.0002
LONGEST_PAUSE_SECONDS = 0.001
# Rows, because a connection counts them for free (``total_changes``) where pages cannot be counted from
# Python. A 20-visit push writes some 60 rows and, with random UUID keys spread over every index, about
# 280 pages; 1,000 rows make a checkpoint of 4,000-5,000 pages (about 20 MB of WAL, 15 ms to copy).
CHECKPOINT_EVERY_ROWS = 1000
# How long one checkpoint keeps trying for the write lock, and for readers outside the app (a backup, the
# sqlite3 shell) to finish; past this it stops, having copied what it could, until the next threshold.
CHECKPOINT_BUSY_TIMEOUT_MS = 100


def configure(engine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout and foreign keys on every connection; BEGIN IMMEDIATE; our own checkpoints."""
    checkpoints = WalCheckpoints(busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # WalCheckpoints runs them
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        begin_immediate(connection, int(busy_timeout_ms))

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection, record):
        if dbapi_connection is not None:
            checkpoints.after_use(dbapi_connection, record)


def begin_immediate(connection, busy_timeout_ms: int) -> None:
    """``BEGIN IMMEDIATE`` (the write lock, at once), waiting at most ``busy_timeout_ms`` for another writer.

    The connection keeps its busy timeout for every other statement; only this wait is our own. Past the
    timeout, or on any other error, the last try goes through SQLAlchemy, so it fails as SQLite's own
    would, with the error SQLAlchemy wraps (``database is locked`` is answered 503)."""
    driver = connection.connection.driver_connection
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = FIRST_PAUSE_SECONDS
    driver.execute("PRAGMA busy_timeout=0")
    try:
        while time.monotonic() + pause < deadline:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # any other error: raised as below
                    break
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


class WalCheckpoints:
    """Counts the rows this process writes (``total_changes`` of each connection as it goes back to the
    pool) and runs a ``RESTART`` checkpoint every ``CHECKPOINT_EVERY_ROWS`` of them.

    It runs on the connection just returned, outside any transaction, before the request that wrote the
    last rows answers (about 15 ms for 4,500 pages). One that cannot finish in time (another process's
    checkpoint, a reader outside the app) still copies what it can and waits for the next threshold, so a
    long backup never stalls every write; a failing one is logged, never raised: the request that
    triggered it has already committed."""

    def __init__(self, busy_timeout_ms: int, every_rows: int = CHECKPOINT_EVERY_ROWS):
        self.busy_timeout_ms, self.every_rows = int(busy_timeout_ms), every_rows
        self.rows_since_checkpoint = 0
        self._lock = threading.Lock()

    def after_use(self, dbapi_connection, record) -> None:
        try:
            changes = dbapi_connection.total_changes
        except sqlite3.Error:  # closed under us: nothing to count, and the pool will replace it
            return
        written = changes - record.info.get("lianhu_changes_seen", 0)
        record.info["lianhu_changes_seen"] = changes
        with self._lock:  # threads of one process share the count
            self.rows_since_checkpoint += written
            due = self.rows_since_checkpoint >= self.every_rows
            if due:
                self.rows_since_checkpoint = 0
        if due:
            self.checkpoint(dbapi_connection)

    def checkpoint(self, dbapi_connection) -> tuple | None:
        """Copy the whole WAL into the database and let the next writer start it over. Answers SQLite's
        ``(busy, pages in the WAL, pages copied)`` of the last try, or None when the checkpoint failed.

        A try that finds the write lock taken copies what it can beside the writer and answers busy at
        once (busy timeout 0); the next try, a moment later, has only the pages written meanwhile left to
        copy, so once it holds the lock it holds it briefly."""
        deadline = time.monotonic() + CHECKPOINT_BUSY_TIMEOUT_MS / 1000
        pause = FIRST_PAUSE_SECONDS
        try:
            dbapi_connection.execute("PRAGMA busy_timeout=0")
            try:
                while True:
                    result = tuple(dbapi_connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
                    if not result[0] or time.monotonic() + pause >= deadline:
                        return result
                    time.sleep(pause)
                    pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
            finally:
                dbapi_connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
            return None
