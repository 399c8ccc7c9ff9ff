"""``flask --app wsgi db upgrade`` on an empty database gives exactly the models' schema.

Runs the real command in a subprocess, against a SQLite file in a temp folder, and, when the suite runs on
PostgreSQL, against a fresh database of its own that the test creates and drops.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sync.models import Base

ROOT = Path(__file__).resolve().parents[2]


def _upgrade(database_url: str, instance: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance),
           "SECRET_KEY": "migration-test-secret-0123456789"}
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run([str(flask), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _differences(sqlalchemy_url: str) -> list:
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "render_as_batch": True})
            diff = compare_metadata(context, Base.metadata)
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert revision, "db upgrade left no alembic revision"
    return diff


def test_upgrade_on_an_empty_sqlite_database_gives_the_models_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    _upgrade(url, tmp_path)
    assert _differences(url) == []
    _upgrade(url, tmp_path)  # a second upgrade is a no-op, not an error


@pytest.fixture
def fresh_postgres_database():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql", "postgres://")):
        pytest.skip("the suite runs on SQLite; the PostgreSQL upgrade is checked when DATABASE_URL is PostgreSQL")
    base = make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername="postgresql+psycopg")
    name = f"lianhu_migration_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_on_an_empty_postgresql_database_gives_the_models_schema(fresh_postgres_database, tmp_path):
    url = fresh_postgres_database.render_as_string(hide_password=False)
    _upgrade(url, tmp_path)
    assert _differences(url) == []
