"""Every setting, read from the environment in one place. The README's table lists them all."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from sync import jsoncodec

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
    "RATE_LIMIT_LOGIN_USER": ("10/300", "POST /auth/token attempts per username, `attempts/seconds`"),
    "RATE_LIMIT_LOGIN_ADDRESS": ("100/300", "POST /auth/token attempts per client address, `attempts/seconds`"),
    "RATE_LIMIT_ENROLL_ADDRESS": ("20/300", "POST /devices/enroll attempts per client address, `attempts/seconds`"),
    "OP_LOG_DAYS": ("180", "how long pushed op ids and batch answers are kept for replays (at least 90)"),
    "QUARANTINE_DAYS": ("365", "how long handled (retried or discarded) quarantined ops are kept"),
    "AUDIT_DAYS": ("1095", "how long the audit log of personal-data reads is kept"),
    "VISIT_INTERVAL_DAYS_BY_TAG": ("独居老人:7,残疾人:14,低保户:14",
                                   "visit interval by household tag, `tag:days,...` (the shortest applies)"),
    "VISIT_INTERVAL_DAYS_DEFAULT": ("30", "visit interval of a household with no own interval and no listed tag"),
    "POINTS_APPROVED_VISIT": ("2", "points a member earns for a visit a coordinator approved"),
    "POINTS_ASSISTANCE_LOG": ("1", "points a member earns for an assistance log"),
    "POINTS_CLOSED_REQUEST": ("3", "points a member earns for delivering the feedback that closed a request"),
    "OUTBOX_GATEWAY": ("log", "how outbox messages leave: `log` (record and log them) or `http`"),
    "OUTBOX_HTTP_URL": (None, "where the `http` gateway POSTs each message as JSON (required for `http`)"),
    "OUTBOX_HTTP_TOKEN": (None, "sent as `Authorization: Bearer` by the `http` gateway, when set"),
    "OUTBOX_HTTP_TIMEOUT_SECONDS": ("10", "how long the `http` gateway waits for an answer"),
    "OUTBOX_MAX_ATTEMPTS": ("8", "deliveries tried before a message is marked failed"),
    "OUTBOX_BACKOFF_SECONDS": ("30", "wait before the first retry; doubled after each failure"),
    "OUTBOX_BACKOFF_MAX_SECONDS": ("3600", "longest wait between retries"),
    "OUTBOX_LEASE_SECONDS": ("300", "a claimed message whose worker died is claimed again after this"),
    "OUTBOX_BATCH_SIZE": ("20", "messages a worker claims at a time"),
    "WEBHOOK_TIMEOUT_SECONDS": ("10", "how long a webhook delivery waits for the receiver's answer"),
    "WORKER_POLL_SECONDS": ("5", "the worker's pause when the outbox is empty"),
    "SWEEP_INTERVAL_SECONDS": ("3600", "how often the worker runs the sweeps (due visits)"),
    "ATTACHMENT_MAX_BYTES": ("10485760", "largest attachment (photo, document) a tablet may upload"),
    "ATTACHMENT_ORPHAN_HOURS": ("72", "an upload no record refers to (or left unfinished) is purged after this"),
    "ATTACHMENT_STORAGE": ("filesystem", "where attachments are kept: `filesystem` or `s3` (S3-compatible)"),
    "ATTACHMENT_PATH": (None, "the `filesystem` storage's folder (default instance/attachments)"),
    "ATTACHMENT_S3_BUCKET": (None, "the `s3` storage's bucket (required for `s3`)"),
    "ATTACHMENT_S3_PREFIX": ("", "key prefix inside the bucket"),
    "ATTACHMENT_S3_ENDPOINT_URL": (None, "an S3-compatible server's URL; unset for AWS itself"),
    "ATTACHMENT_S3_REGION": (None, "the bucket's region; credentials come from the usual AWS_* variables"),
    "PROXY_COUNT": ("0", "reverse proxies in front of the app (nginx: 1); their X-Forwarded-For/-Proto are trusted, "
                         "so rate limits and METRICS_ALLOW_CIDRS see the client's address"),
    "SESSION_COOKIE_SECURE": ("false", "`true` marks the console's session cookie `Secure` (sent over HTTPS only): "
                                       "set true behind HTTPS; false is for plain HTTP on 127.0.0.1 (`make run`)"),
    "METRICS_TOKEN": (None, "bearer token a scraper must send to `/metrics`; with neither this nor "
                            "METRICS_ALLOW_CIDRS set, `/metrics` answers 404"),
    "METRICS_ALLOW_CIDRS": (None, "networks that may scrape `/metrics`, comma-separated "
                                  "(`10.0.0.0/8,127.0.0.1/32`); when set, other addresses get 404"),
    "PROMETHEUS_MULTIPROC_DIR": (None, "an empty directory where each gunicorn worker keeps its metrics, so "
                                       "`/metrics` adds them up (deploy/gunicorn.conf.py sets and clears it)"),
    "FLEET_STALE_DAYS": ("3", "a tablet that has not synced for this many days is flagged `stale`"),
    "FLEET_BACKLOG_HOURS": ("48", "a tablet whose oldest unsynced op is older than this is flagged `backlog`"),
    "DEVICE_LOG_MAX_BYTES": ("262144", "largest sync log a tablet may upload (UTF-8 bytes)"),
    "DEVICE_LOG_DAYS": ("30", "how long uploaded tablet logs are kept"),
    "DEVICE_LOG_KEEP_PER_DEVICE": ("20", "uploaded logs kept per tablet; older ones are dropped on upload"),
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
        raise RuntimeError(f"{path} is empty") from None
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _days_by_tag(text: str) -> dict[str, int]:
    """``tag:days,tag:days`` → {tag: days}; a malformed entry stops the app at start."""
    result = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        tag, sep, days = entry.rpartition(":")
        if not sep or not tag.strip() or not days.strip().isdigit() or int(days) < 1:
            raise RuntimeError(f"VISIT_INTERVAL_DAYS_BY_TAG: cannot read {entry!r} (expected tag:days)")
        result[tag.strip()] = int(days)
    return result


def _rate_limit(name: str) -> str:
    """``attempts/seconds``, checked at start so a typo cannot switch a limit off."""
    text = env(name)
    if not re.fullmatch(r"[1-9][0-9]*/[1-9][0-9]*", text or ""):
        raise RuntimeError(f"{name} must look like 10/300 (attempts/seconds), not {text!r}")
    return text


def _at_least(name: str, minimum: int) -> int:
    value = int(env(name))
    if value < minimum:
        raise RuntimeError(f"{name} must be at least {minimum}")
    return value


def _networks(name: str) -> tuple:
    """``10.0.0.0/8,127.0.0.1`` → networks; a typo stops the app at start instead of opening /metrics."""
    import ipaddress

    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in (env(name) or "").split(",") if part.strip())
    except ValueError as exc:
        raise RuntimeError(f"{name}: {exc}") from None


def _flag(name: str) -> bool:
    """``true``/``false`` (or 1/0, yes/no, on/off); anything else stops the app, so a typo cannot turn it off."""
    text = (env(name) or "").strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise RuntimeError(f"{name} must be true or false, not {text!r}")


def _existing_dir(name: str) -> str | None:
    # prometheus_client reads this variable from the environment itself, when it is first imported.
    path = env(name)
    if path is not None and not Path(path).is_dir():
        raise RuntimeError(f"{name}: {path} is not a directory")
    return path


def _attachment_storage() -> str:
    kind = env("ATTACHMENT_STORAGE")
    if kind not in ("filesystem", "s3"):
        raise RuntimeError(f"ATTACHMENT_STORAGE must be filesystem or s3, not {kind!r}")
    if kind == "s3" and not env("ATTACHMENT_S3_BUCKET"):
        raise RuntimeError("ATTACHMENT_STORAGE=s3 needs ATTACHMENT_S3_BUCKET")
    return kind


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
        "RATE_LIMIT_LOGIN_USER": _rate_limit("RATE_LIMIT_LOGIN_USER"),
        "RATE_LIMIT_LOGIN_ADDRESS": _rate_limit("RATE_LIMIT_LOGIN_ADDRESS"),
        "RATE_LIMIT_ENROLL_ADDRESS": _rate_limit("RATE_LIMIT_ENROLL_ADDRESS"),
        "OP_LOG_DAYS": _at_least("OP_LOG_DAYS", 90),
        "QUARANTINE_DAYS": _at_least("QUARANTINE_DAYS", 1),
        "AUDIT_DAYS": _at_least("AUDIT_DAYS", 1),
        "VISIT_INTERVAL_DAYS_BY_TAG": _days_by_tag(env("VISIT_INTERVAL_DAYS_BY_TAG")),
        "VISIT_INTERVAL_DAYS_DEFAULT": int(env("VISIT_INTERVAL_DAYS_DEFAULT")),
        "POINTS": {
            "approved_visit": int(env("POINTS_APPROVED_VISIT")),
            "assistance_log": int(env("POINTS_ASSISTANCE_LOG")),
            "closed_request": int(env("POINTS_CLOSED_REQUEST")),
        },
        "OUTBOX_GATEWAY": env("OUTBOX_GATEWAY"),
        "OUTBOX_HTTP_URL": env("OUTBOX_HTTP_URL"),
        "OUTBOX_HTTP_TOKEN": env("OUTBOX_HTTP_TOKEN"),
        "OUTBOX_HTTP_TIMEOUT_SECONDS": float(env("OUTBOX_HTTP_TIMEOUT_SECONDS")),
        "OUTBOX_MAX_ATTEMPTS": int(env("OUTBOX_MAX_ATTEMPTS")),
        "OUTBOX_BACKOFF_SECONDS": float(env("OUTBOX_BACKOFF_SECONDS")),
        "OUTBOX_BACKOFF_MAX_SECONDS": float(env("OUTBOX_BACKOFF_MAX_SECONDS")),
        "OUTBOX_LEASE_SECONDS": float(env("OUTBOX_LEASE_SECONDS")),
        "OUTBOX_BATCH_SIZE": int(env("OUTBOX_BATCH_SIZE")),
        "WEBHOOK_TIMEOUT_SECONDS": float(env("WEBHOOK_TIMEOUT_SECONDS")),
        "WORKER_POLL_SECONDS": float(env("WORKER_POLL_SECONDS")),
        "SWEEP_INTERVAL_SECONDS": float(env("SWEEP_INTERVAL_SECONDS")),
        "ATTACHMENT_MAX_BYTES": _at_least("ATTACHMENT_MAX_BYTES", 1),
        "ATTACHMENT_ORPHAN_HOURS": _at_least("ATTACHMENT_ORPHAN_HOURS", 1),
        "ATTACHMENT_STORAGE": _attachment_storage(),
        "ATTACHMENT_PATH": env("ATTACHMENT_PATH") or str(folder / "attachments"),
        "ATTACHMENT_S3_BUCKET": env("ATTACHMENT_S3_BUCKET"),
        "ATTACHMENT_S3_PREFIX": env("ATTACHMENT_S3_PREFIX"),
        "ATTACHMENT_S3_ENDPOINT_URL": env("ATTACHMENT_S3_ENDPOINT_URL"),
        "ATTACHMENT_S3_REGION": env("ATTACHMENT_S3_REGION"),
        "PROXY_COUNT": _at_least("PROXY_COUNT", 0),
        "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE"),
        "METRICS_TOKEN": env("METRICS_TOKEN"),
        "METRICS_ALLOW_CIDRS": _networks("METRICS_ALLOW_CIDRS"),
        "PROMETHEUS_MULTIPROC_DIR": _existing_dir("PROMETHEUS_MULTIPROC_DIR"),
        "FLEET_STALE_DAYS": _at_least("FLEET_STALE_DAYS", 1),
        "FLEET_BACKLOG_HOURS": _at_least("FLEET_BACKLOG_HOURS", 1),
        "DEVICE_LOG_MAX_BYTES": _at_least("DEVICE_LOG_MAX_BYTES", 1024),
        "DEVICE_LOG_DAYS": _at_least("DEVICE_LOG_DAYS", 1),
        "DEVICE_LOG_KEEP_PER_DEVICE": _at_least("DEVICE_LOG_KEEP_PER_DEVICE", 1),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "json_serializer": jsoncodec.dumps,
                                      "json_deserializer": jsoncodec.loads},
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
