"""New leaf records written as plain rows: one ``INSERT`` per table for a whole batch, no ORM objects.

A 500-op push of visits would otherwise build 500 ORM objects, fire their attribute events and have the
unit of work sort and insert them; none of that is needed for a record nothing else in the transaction
holds on to. Visits, residents and assistance logs are such leaves: no other row of the same transaction
refers to them, and the rules that follow their creation (the household's last visit, its due-visit
tasks) look only at their fields. So ``sync.apply`` queues their rows here and they are inserted

- before any ORM statement runs in the session (a later op of the same batch that reads or updates the
  record finds it, exactly as after an autoflush), and
- before the transaction (or a savepoint) commits.

Rows queued under a savepoint that rolls back are dropped with it. A savepoint may only begin with no rows
queued (``flush_rows`` first), so a rollback never takes rows queued before it; a savepoint begun with
rows queued is a programming error and raises.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.orm import Session, SessionTransaction

KEY = "lianhu.queued_rows"


def queue_row(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table`` with the next statement of the session, or at commit."""
    session.info.setdefault(KEY, []).append((table, row))


def queued_rows(session: Session) -> list[tuple[Table, dict[str, Any]]]:
    return session.info.get(KEY, [])


def flush_rows(session: Session) -> None:
    """Insert every queued row now: one executemany per table and set of columns, in queue order."""
    queued = session.info.pop(KEY, None)
    if not queued:
        return
    groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, row in queued:
        # rows of one statement must name the same columns; the columns a row leaves out take their defaults
        groups.setdefault((table, tuple(row)), []).append(row)
    if session.autoflush:
        session.flush()  # what the rows refer to (a household made earlier in the batch) goes in first
    connection = session.connection()
    for (table, _columns), rows in groups.items():
        connection.execute(table.insert(), rows)


@event.listens_for(Session, "do_orm_execute")
def _before_orm_statement(orm_execute_state) -> None:
    flush_rows(orm_execute_state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush_rows(session)


@event.listens_for(Session, "after_transaction_create")
def _savepoints_start_clean(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(KEY):
        raise RuntimeError("rows are queued: call sync.rows.flush_rows before beginning a savepoint")


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A savepoint began with nothing queued, so what is queued now was queued under it (or under the
    # whole transaction, when that is what rolled back): either way it goes.
    session.info.pop(KEY, None)
