"""The one decision point of a write request: commit when the view returns, roll back when it raises."""
from __future__ import annotations

import functools
import time

from sqlalchemy.exc import DBAPIError, IntegrityError

from .extensions import db

RETRYABLE_PG_CODES = {"40001", "40P01"}  # serialization failure, deadlock


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and code in RETRYABLE_PG_CODES


def write(view=None, *, retries: int = 0):
    """Commit after ``view``; with ``retries``, run it again on a race the database detected
    (a concurrent duplicate, a deadlock), each time in a fresh transaction."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for attempt in range(retries + 1):
                try:
                    result = fn(*args, **kwargs)
                    db.session.commit()
                    return result
                except Exception as exc:
                    db.session.rollback()
                    if attempt < retries and _retryable(exc):
                        time.sleep(0.01 * (attempt + 1))
                        continue
                    raise
            raise AssertionError("unreachable")

        return wrapper

    return decorate(view) if view is not None else decorate
