"""Rate limits kept in the database, so they hold across gunicorn processes and hosts.

A fixed window per key: ``RateLimitHit(key, window_start)`` counts the attempts in that window. Each attempt
is counted in a short transaction of its own, before the request's work begins, so that a failed login
(whose own transaction is rolled back) still counts, and so that on SQLite the counter never waits on the
request's own write lock. A fixed window lets through at most twice the limit across a window boundary;
that is enough to make guessing passwords or enrollment codes hopeless, and it costs one row per key.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app, request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from sync.errors import RateLimitedError
from sync.models import RateLimitHit

from .extensions import db


@dataclass(frozen=True)
class Limit:
    """``attempts`` per ``seconds``, parsed from a setting such as ``"10/60"``."""

    attempts: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> "Limit":
        attempts, _, seconds = str(text).partition("/")
        limit = cls(int(attempts), int(seconds))
        if limit.attempts < 1 or limit.seconds < 1:
            raise ValueError(f"a rate limit needs at least 1 attempt per 1 second, not {text!r}")
        return limit


def client_address() -> str:
    """The caller's address as the WSGI server saw it (behind a proxy, see SECURITY.md)."""
    return request.remote_addr or "unknown"


def hit(key: str, limit: Limit, now: float | None = None) -> None:
    """Count one attempt for ``key``; raise ``RateLimitedError`` (with Retry-After) past the limit."""
    now = time.time() if now is None else now
    window_start = int(now // limit.seconds) * limit.seconds
    key = key[:200]
    # The counter commits on a connection of its own; end any read transaction the request's session
    # still holds (none in a fresh request), so that on SQLite the two never wait on each other.
    db.session.rollback()
    count = _increment(key, window_start)
    if count > limit.attempts:
        retry_after = max(1, int(window_start + limit.seconds - now + 0.999))
        raise RateLimitedError(retry_after)


def _increment(key: str, window_start: int) -> int:
    """Add one to the window's counter in its own committed transaction; answer the new count."""
    for _ in range(3):
        with db.engine.begin() as conn:
            changed = conn.execute(
                update(RateLimitHit)
                .where(RateLimitHit.key == key, RateLimitHit.window_start == window_start)
                .values(count=RateLimitHit.count + 1)
            ).rowcount
            if changed:
                return conn.scalar(select(RateLimitHit.count).where(
                    RateLimitHit.key == key, RateLimitHit.window_start == window_start))
        try:
            with db.engine.begin() as conn:
                conn.execute(RateLimitHit.__table__.insert().values(key=key, window_start=window_start, count=1))
            return 1
        except IntegrityError:
            continue  # another process inserted the row first: count on it
    raise RuntimeError("rate limit counter could not be updated")


def check_login(username: str) -> None:
    """Logins: per username (guessing one password) and per address (trying many usernames)."""
    config = current_app.config
    hit(f"login:user:{username.strip().lower()}", Limit.parse(config["RATE_LIMIT_LOGIN_USER"]))
    hit(f"login:addr:{client_address()}", Limit.parse(config["RATE_LIMIT_LOGIN_ADDRESS"]))


def check_enroll() -> None:
    """Enrollment: per address (guessing codes)."""
    hit(f"enroll:addr:{client_address()}", Limit.parse(current_app.config["RATE_LIMIT_ENROLL_ADDRESS"]))


def purge_before(session, cutoff_epoch: float) -> int:
    """Drop counters of windows that started before ``cutoff_epoch`` (used by the purge command)."""
    return session.execute(delete(RateLimitHit).where(RateLimitHit.window_start < int(cutoff_epoch))).rowcount
