"""Every setting, read from the environment in one place. The README's table lists them all."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"

# name: (default, meaning). The README's settings table is checked against this mapping.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "DATABASE_URL": (None, "SQLAlchemy URL; default SQLite (WAL) at instance/lianhu.db"),
    "SECRET_KEY": (None, "signs cursors and sessions; generated into instance/secret_key when unset"),
    "LOG_LEVEL": ("INFO", "root log level"),
    "INSTANCE_PATH": (None, "where the SQLite database and generated secrets live (default instance/)"),
    "TOKEN_TTL_HOURS": ("24", "lifetime of a user token from POST /auth/token"),
    "ENROLLMENT_CODE_TTL_MINUTES": ("30", "lifetime of a tablet enrollment code"),
    "MAX_BODY_BYTES": ("2097152", "largest request body (a push batch is at most 2 MiB)"),
    "REQUEST_DUE_DAYS_URGENT": ("1", "days to handle an urgent request"),
    "REQUEST_DUE_DAYS_NORMAL": ("7", "days to handle a normal request"),
    "REQUEST_DUE_DAYS_LOW": ("30", "days to handle a low-urgency request"),
    "FEEDBACK_DUE_DAYS": ("7", "days to bring a resolution back to the household"),
    "HISTORY_DAYS": ("365", "how long record history (and pull cursors) reach back"),
    "SQLITE_BUSY_TIMEOUT_MS": ("15000", "how long a SQLite writer waits for the lock"),
}


def env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else SETTINGS[name][0]


def instance_dir() -> Path:
    return Path(env("INSTANCE_PATH") or INSTANCE_DIR)


def _secret_key(path: Path) -> str:
    """Read the instance's secret, creating it once; safe when several processes start together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            text = path.read_text().strip()
            if text:
                return text
            import time

            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty")
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def load(overrides: dict | None = None) -> dict:
    """Defaults, then the environment, then ``overrides`` (tests)."""
    overrides = dict(overrides or {})
    folder = Path(overrides.get("INSTANCE_PATH") or instance_dir())
    database_url = overrides.get("DATABASE_URL") or env("DATABASE_URL") or f"sqlite:///{folder / 'lianhu.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://"):]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    secret = overrides.get("SECRET_KEY") or env("SECRET_KEY") or _secret_key(folder / "secret_key")
    if len(secret) < 16:
        raise RuntimeError("SECRET_KEY must be at least 16 characters")
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": secret,
        "LOG_LEVEL": env("LOG_LEVEL"),
        "INSTANCE_PATH": str(folder),
        "TOKEN_TTL_HOURS": int(env("TOKEN_TTL_HOURS")),
        "ENROLLMENT_CODE_TTL_MINUTES": int(env("ENROLLMENT_CODE_TTL_MINUTES")),
        "MAX_CONTENT_LENGTH": int(env("MAX_BODY_BYTES")),
        "REQUEST_DUE_DAYS": {
            "urgent": int(env("REQUEST_DUE_DAYS_URGENT")),
            "normal": int(env("REQUEST_DUE_DAYS_NORMAL")),
            "low": int(env("REQUEST_DUE_DAYS_LOW")),
        },
        "FEEDBACK_DUE_DAYS": int(env("FEEDBACK_DUE_DAYS")),
        "HISTORY_DAYS": int(env("HISTORY_DAYS")),
        "SQLITE_BUSY_TIMEOUT_MS": int(env("SQLITE_BUSY_TIMEOUT_MS")),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "API_TITLE": "Lianhu",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": None,
        "OPENAPI_REDOC_PATH": None,
        "JSON_SORT_KEYS": False,
    }
    config.update({k: v for k, v in overrides.items() if k not in ("DATABASE_URL",)})
    return config
