"""Extensions, each with ``init_app``; the database session is scoped to a request or a job."""
from __future__ import annotations

from pathlib import Path

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from sync.models import Base

from . import sqlite

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()


def init_db(app) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            sqlite.configure(engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
