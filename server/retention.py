"""Data retention: what the server keeps, for how long, and the purge that enforces it.

| data | kept | setting |
|---|---|---|
| op ids and batch answers (exactly-once replays) | OP_LOG_DAYS (at least the protocol's 90) | OP_LOG_DAYS |
| quarantined ops that were retried or discarded | QUARANTINE_DAYS after they were handled | QUARANTINE_DAYS |
| quarantined ops still open | until a coordinator handles them: nothing a device sends is lost | |
| the change log (history for merges and pulls) | HISTORY_DAYS, plus a day of margin | HISTORY_DAYS |
| the audit log of personal-data reads | AUDIT_DAYS | AUDIT_DAYS |
| rate-limit counters | one day | |
| sync logs tablets uploaded for support | DEVICE_LOG_DAYS | DEVICE_LOG_DAYS |

Why purging the change log is safe: a cursor older than HISTORY_DAYS is answered ``cursor_expired``; a
younger cursor only needs changes committed after the pull that issued it; and a merge whose base is
older than the history left treats every differing field as changed on both sides (``sync.apply``).
Records themselves, tombstones included, are never purged here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sync.models import AuditEvent, ChangeLog, DeviceLog, OpLog, QuarantinedOp, RateLimitHit, SyncBatch, utcnow

HISTORY_MARGIN = dt.timedelta(days=1)  # cursors are checked by their issue time; keep a day past it


@dataclass(frozen=True)
class RetentionPolicy:
    op_log_days: int
    quarantine_days: int
    history_days: int
    audit_days: int
    device_log_days: int

    @classmethod
    def from_config(cls, config) -> "RetentionPolicy":
        return cls(config["OP_LOG_DAYS"], config["QUARANTINE_DAYS"], config["HISTORY_DAYS"], config["AUDIT_DAYS"],
                   config["DEVICE_LOG_DAYS"])

    def conditions(self, now: dt.datetime) -> dict:
        """What each purge removes: a where-clause per table, by name."""
        day = dt.timedelta(days=1)
        return {
            "op_log": (OpLog, OpLog.created_at < now - self.op_log_days * day),
            "sync_batches": (SyncBatch, SyncBatch.created_at < now - self.op_log_days * day),
            "quarantine": (QuarantinedOp, QuarantinedOp.status != "open",
                           QuarantinedOp.handled_at < now - self.quarantine_days * day),
            "change_log": (ChangeLog, ChangeLog.created_at < now - self.history_days * day - HISTORY_MARGIN),
            "audit_log": (AuditEvent, AuditEvent.at < now - self.audit_days * day),
            "rate_limits": (RateLimitHit, RateLimitHit.window_start < int((now - day).timestamp())),
            "device_logs": (DeviceLog, DeviceLog.created_at < now - self.device_log_days * day),
        }


def purge(session: Session, policy: RetentionPolicy, now: dt.datetime | None = None, *,
          dry_run: bool = False) -> dict[str, int]:
    """Delete (or with ``dry_run`` count) what the policy no longer keeps; the caller commits."""
    now = now or utcnow()
    counts = {}
    for name, (model, *where) in policy.conditions(now).items():
        if dry_run:
            counts[name] = session.scalar(select(func.count()).select_from(model).where(*where))
        else:
            counts[name] = session.execute(delete(model).where(*where)).rowcount
    return counts
