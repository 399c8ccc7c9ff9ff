"""What one write transaction has already learnt, so a batch of 500 ops does not ask the database 500 times.

It lives in the session and is dropped when the transaction ends (commit or rollback), so it can never carry
a fact from one transaction into another. Only facts that no other part of the same transaction can falsify
are kept: ids known to be free (and those this transaction has since taken), households already checked to
be in a person's scope, households whose due-visit tasks this transaction already closed, and the records a
push is about to change, read under lock with their history (nobody else can change them until commit).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

KEY = "lianhu.txcache"


@dataclass
class TxCache:
    free_ids: dict[str, set[str]] = field(default_factory=dict)
    taken_ids: dict[str, set[str]] = field(default_factory=dict)
    in_scope: dict[tuple[str, str], Any] = field(default_factory=dict)
    due_tasks_closed: set[str] = field(default_factory=set)
    loaded: dict[tuple[str, str], Any] = field(default_factory=dict)
    """Records a batch will change, read (and locked) at once, in scope: (entity, id) → ORM object."""
    history: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    """Their change-log rows, for the stale ones among them: (entity, id) → rows in version order."""

    def id_is_free(self, entity: str, record_id: str) -> bool | None:
        """True or False when known in this transaction; None when the database must be asked."""
        if record_id in self.taken_ids.get(entity, ()):
            return False
        if record_id in self.free_ids.get(entity, ()):
            return True
        return None

    def take(self, entity: str, record_id: str) -> None:
        self.free_ids.get(entity, set()).discard(record_id)
        self.taken_ids.setdefault(entity, set()).add(record_id)


def tx_cache(session: Session) -> TxCache:
    cache = session.info.get(KEY)
    if cache is None:
        cache = session.info[KEY] = TxCache()
    return cache


@event.listens_for(Session, "after_commit")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(KEY, None)
