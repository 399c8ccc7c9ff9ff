"""SQLite under several processes: the write lock handed over at once, and the WAL copied off the commits."""
from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from server import sqlite
from server.extensions import db
from tests.conftest import hold_sqlite_write_lock


@pytest.fixture
def engine(dialect, tmp_path):
    """An engine on a SQLite file of its own, configured as the app's is (SQLite runs only)."""
    if dialect != "sqlite":
        pytest.skip("SQLite's locking and WAL")
    path = tmp_path / "lock.db"
    engine = create_engine(f"sqlite:///{path}")
    sqlite.configure(engine, 300)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    engine.path = path
    yield engine
    engine.dispose()


def wal_pages(path) -> int:
    """Pages in the WAL now, as a passive checkpoint (which waits for nobody) reports them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        conn.close()


def test_a_writer_waits_for_the_lock_and_keeps_its_busy_timeout(engine):
    holder = hold_sqlite_write_lock(engine.path, 0.15)
    started = time.monotonic()
    with engine.begin() as conn:
        waited = time.monotonic() - started
        conn.execute(text("INSERT INTO t (v) VALUES ('after the other writer')"))
        busy_timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    holder.join()
    assert 0.1 <= waited < 0.3 and busy_timeout == 300


def test_past_the_busy_timeout_the_writer_gets_sqlites_own_error(engine):
    holder = hold_sqlite_write_lock(engine.path, 0.6)
    with pytest.raises(OperationalError, match="database is locked"):
        with engine.begin():
            pass
    holder.join()
    with engine.begin() as conn:  # the connection is fine afterwards, with its busy timeout back
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300


def test_the_wal_starts_over_once_a_process_has_written_enough_rows(engine):
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0  # no checkpoint in a commit
    few = sqlite.CHECKPOINT_EVERY_ROWS // 4
    for _ in range(2):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 500}] * few)
    grown = wal_pages(engine.path)
    assert grown > 10  # below the threshold the WAL only grows
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 500}] * sqlite.CHECKPOINT_EVERY_ROWS)
    with engine.begin() as conn:  # the first write after the checkpoint starts the WAL over
        conn.execute(text("INSERT INTO t (v) VALUES ('one more')"))
    assert wal_pages(engine.path) < grown


def test_a_checkpoint_that_fails_is_logged_not_raised(engine, caplog):
    broken = sqlite3.connect(engine.path)
    broken.close()
    assert sqlite.WalCheckpoints(300).checkpoint(broken) is None
    assert "WAL checkpoint failed" in caplog.text


def test_the_apps_connections_are_configured_the_same_way(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's settings")
    with db.engine.connect() as conn:
        settings = [conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "wal_autocheckpoint", "foreign_keys", "busy_timeout")]
    assert settings == ["wal", 0, 1, app.config["SQLITE_BUSY_TIMEOUT_MS"]]
