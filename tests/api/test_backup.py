"""Backup and restore, by the commands docs/backup.md gives, on the database the suite runs on."""
from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from sqlalchemy.engine import make_url

from server import create_app
from server.extensions import db
from tests.conftest import Api, Tablet, op


def _seed(world):
    household = world.household("幸福路1号", member="m1", phone="13812345678", notes="独居，腿脚不便")
    tablet = world.tablet("m1")
    visit_id = str(uuid.uuid4())
    tablet.push([op("visit", visit_id, data={"household_id": household["id"], "kind": "routine",
                                             "visited_at": "2026-12-01T09:00:00+08:00", "summary": "血压正常"})])
    tablet.pull_all()
    return household, tablet, visit_id


def _check_restored(url: str, app, household, tablet, visit_id):
    """A server on the restored database answers the same data to the same tokens."""
    restored = create_app({"DATABASE_URL": url, "SECRET_KEY": app.config["SECRET_KEY"],
                           "INSTANCE_PATH": app.config["INSTANCE_PATH"], "TESTING": True})
    try:
        with restored.app_context():
            client = restored.test_client()
            logged_in = client.post("/api/v1/auth/token", json={"username": "coord", "password": "password-123"})
            assert logged_in.status_code == 200, logged_in.get_json()
            coordinator = Api(client, logged_in.get_json()["token"])
            got = coordinator.get(f"/api/v1/households/{household['id']}").get_json()
            assert got["notes"] == "独居，腿脚不便" and got["phone"] == "13812345678"
            again = Tablet(client, tablet.token, tablet.device_id, tablet.user)
            again.cursor = tablet.cursor
            assert again.pull_all() == []  # its cursor still reads: nothing new since the backup
            fresh = Tablet(client, tablet.token, tablet.device_id, tablet.user)
            fresh.pull_all()
            assert fresh.replica[("visit", visit_id)]["summary"] == "血压正常"
            db.session.close()
    finally:
        with restored.app_context():
            db.engine.dispose()


def test_sqlite_backup_and_restore(world, app, dialect, tmp_path):
    if dialect != "sqlite":
        pytest.skip("the SQLite procedure; the PostgreSQL one runs on PostgreSQL")
    household, tablet, visit_id = _seed(world)
    source = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    backup = tmp_path / "lianhu-backup.db"
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", source, f".backup '{backup}'"], check=True)
    else:  # the same online backup, through Python's sqlite3 module
        import sqlite3

        with sqlite3.connect(source) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
    restored = tmp_path / "restored" / "lianhu.db"
    restored.parent.mkdir()
    shutil.copy(backup, restored)
    check = subprocess.run(["sqlite3", str(restored), "PRAGMA integrity_check"], capture_output=True, text=True) \
        if shutil.which("sqlite3") else None
    if check is not None:
        assert check.stdout.strip() == "ok"
    _check_restored(f"sqlite:///{restored}", app, household, tablet, visit_id)


def test_postgresql_backup_and_restore(world, app, dialect, tmp_path):
    if dialect != "postgresql":
        pytest.skip("the PostgreSQL procedure; the SQLite one runs on SQLite")
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore are not installed")
    household, tablet, visit_id = _seed(world)
    db.session.close()
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = tmp_path / "lianhu.dump"
    subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", libpq], check=True)
    target = f"{url.database}_restore_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{target}"'], check=True)
    try:
        restored = url.set(database=target)
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error",
                        f"--dbname={restored.set(drivername='postgresql').render_as_string(hide_password=False)}",
                        str(dump)], check=True)
        _check_restored(restored.render_as_string(hide_password=False), app, household, tablet, visit_id)
    finally:
        subprocess.run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'], check=True)
