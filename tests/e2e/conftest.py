"""Real gunicorn for end-to-end tests: a fresh schema, an admin made on the command line, 2+ workers on a
free port of 127.0.0.1. The database is ``DATABASE_URL`` when set (PostgreSQL in CI), else a SQLite file."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "e2e-admin-password"
RESET_SCHEMA = (
    "from server import create_app\n"
    "from server.extensions import db\n"
    "from sync.models import Base\n"
    "app = create_app()\n"
    "with app.app_context():\n"
    "    Base.metadata.drop_all(db.engine)\n"
    "    Base.metadata.create_all(db.engine)\n"
)


def _admin_connection(url):
    import psycopg

    return psycopg.connect(url.set(database="postgres").set(drivername="postgresql")
                           .render_as_string(hide_password=False), autocommit=True)


def _own_database(test_url: str | None) -> str | None:
    """On PostgreSQL the server gets a database of its own next to the tests' one, so tests that empty
    their tables between tests never pull the floor from under this session-long server."""
    if not test_url or not test_url.startswith("postgres"):
        return None
    from sqlalchemy.engine import make_url

    url = make_url(test_url)
    name = f"{url.database}_e2e"
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_own_database(database: str) -> None:
    if not database.startswith("postgres"):
        return
    from sqlalchemy.engine import make_url

    url = make_url(database)
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become ready")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """``{"url", "admin", "password", "database"}`` of a gunicorn serving a fresh database."""
    folder = tmp_path_factory.mktemp("e2e")
    database = _own_database(os.environ.get("DATABASE_URL")) or f"sqlite:///{folder / 'e2e.db'}"
    env = {**os.environ, "DATABASE_URL": database, "INSTANCE_PATH": str(folder), "FLASK_APP": "wsgi",
           "SECRET_KEY": "e2e-secret-key-0123456789abcdef", "LOG_LEVEL": "WARNING",
           # every e2e test enrolls its tablets from 127.0.0.1 on this one session-long server
           "RATE_LIMIT_LOGIN_ADDRESS": "100000/60", "RATE_LIMIT_ENROLL_ADDRESS": "100000/60",
           "RATE_LIMIT_LOGIN_USER": "100000/60"}
    subprocess.run([sys.executable, "-c", RESET_SCHEMA], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "-m", "flask", "create-user", "admin", "--role", "admin",
                    "--password", ADMIN_PASSWORD], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    log = open(folder / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", os.environ.get("E2E_WORKERS", "3"), "--bind",
         f"127.0.0.1:{port}", "--timeout", "60", "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield {"url": url, "admin": "admin", "password": ADMIN_PASSWORD, "database": database.split(":")[0],
               "log": folder / "gunicorn.log"}
    finally:
        process.send_signal(signal.SIGTERM)  # the master stops its own workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _drop_own_database(database)
