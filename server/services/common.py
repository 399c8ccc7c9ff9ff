"""Helpers every service uses: pages, engine settings, turning op rejections into call errors."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from sync.errors import LianhuError, OpRejected
from sync.settings import SyncSettings


def sync_settings() -> SyncSettings:
    c = current_app.config
    return SyncSettings(request_due_days=dict(c["REQUEST_DUE_DAYS"]), feedback_due_days=c["FEEDBACK_DUE_DAYS"],
                        history_days=c["HISTORY_DAYS"],
                        visit_interval_days=dict(c["VISIT_INTERVAL_DAYS_BY_TAG"]),
                        default_visit_interval_days=c["VISIT_INTERVAL_DAYS_DEFAULT"])


def paginate(session, stmt, page: int, per_page: int, order_by) -> dict:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(session.scalars(stmt.order_by(*order_by).limit(per_page).offset((page - 1) * per_page)))
    return {"items": items, "page": page, "per_page": per_page, "total": total}


class CallError(LianhuError):
    """An op rejection raised out of an online call, keeping the engine's code."""

    def __init__(self, rejected: OpRejected):
        super().__init__(rejected.message, rejected.details)
        self.code = rejected.code


def as_call_error(exc: OpRejected) -> LianhuError:
    return CallError(exc)
