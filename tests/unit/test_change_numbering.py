"""Change numbering happens once, at the outermost commit, without losing what a batch's savepoints queued."""
from __future__ import annotations

import uuid

from sqlalchemy import event, select

from server.extensions import db
from sync.models import ChangeLog
from tests.conftest import op


def _visit(household_id, summary="走访", **extra):
    return {"household_id": household_id, "visited_at": "2026-11-30T10:00:00+08:00", "kind": "routine",
            "summary": summary, **extra}


def test_a_batch_takes_change_numbers_once(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    counter_updates = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE CHANGE_COUNTER"):
            counter_updates.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        answer = tablet.push([op("visit", str(uuid.uuid4()), data=_visit(household["id"])) for _ in range(5)])
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert [r["status"] for r in answer["results"]] == ["applied"] * 5
    assert len(counter_updates) == 1


def test_a_rejected_op_keeps_the_changes_of_the_ops_around_it(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    first, last = str(uuid.uuid4()), str(uuid.uuid4())
    answer = tablet.push([
        op("visit", first, data=_visit(household["id"])),
        op("visit", str(uuid.uuid4()), data=_visit(str(uuid.uuid4()))),  # no such household: rejected
        op("visit", last, data=_visit(household["id"])),
    ])
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected", "applied"]
    logged = set(db.session.scalars(select(ChangeLog.record_id).where(ChangeLog.entity == "visit")))
    assert logged == {first, last}
    seqs = list(db.session.scalars(select(ChangeLog.seq).order_by(ChangeLog.seq)))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    pulled = {c["id"] for c in world.tablet("m1").pull_all() if c["entity"] == "visit"}
    assert pulled == {first, last}


def test_a_stale_update_merges_against_changes_earlier_in_the_same_batch(world):
    """The history of a record changed earlier in the batch is still queued, not yet in change_log."""
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit_id = str(uuid.uuid4())
    answer = tablet.push([
        op("visit", visit_id, data=_visit(household["id"])),
        op("visit", visit_id, "update", {"summary": "第二次"}, base_version=1),
        op("visit", visit_id, "update", {"duration_minutes": 30}, base_version=1),
    ])
    statuses = [(r["status"], r["version"], r["conflicts"]) for r in answer["results"]]
    assert statuses == [("applied", 1, []), ("applied", 2, []), ("merged", 3, [])]
    versions = list(db.session.scalars(
        select(ChangeLog.version).where(ChangeLog.record_id == visit_id).order_by(ChangeLog.seq)))
    assert versions == [1, 2, 3]
