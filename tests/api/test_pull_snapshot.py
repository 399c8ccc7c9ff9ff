"""Guarantee 6 across statement snapshots: a change committed while a pull reads the log is never skipped.

On PostgreSQL (READ COMMITTED) each statement of a pull sees its own snapshot. The pull reads the log
with three queries (households in scope, rows addressed to the member, rows leaving the member); a change
of a household committed after the first query but before the second was missed by the first, while the
second returned a later pairing row and moved the cursor past the change for good (the fleet simulation
saw a tablet stuck at an old household version). The test commits exactly there, from another thread.

On SQLite a pull holds the write lock (BEGIN IMMEDIATE), so the writer waits until the pull ends; the
test then checks the same outcome with the writes serialised after the pull.
"""
from __future__ import annotations

import threading

from sqlalchemy import event

from server.extensions import db

from ..conftest import Api


def test_a_change_committed_between_the_pulls_log_queries_is_not_skipped(app, world):
    edited = world.household("幸福路1号", member="m1")
    moved_in = world.household("幸福路2号")  # paired with m1 while the pull runs
    tablet = world.tablet("m1")
    tablet.pull_all()
    token = world.coordinator.token
    writes_done = threading.Event()
    failures: list[str] = []

    def desk_writes():
        desk = Api(app.test_client(), token)
        try:
            response = desk.patch(f"/api/v1/households/{edited['id']}", {"base_version": edited["version"],
                                                                          "notes": "楼道灯坏了"})
            if response.status_code != 200:
                failures.append(f"PATCH {response.status_code} {response.get_json()}")
            response = desk.put(f"/api/v1/households/{moved_in['id']}/pairing",
                                {"member_id": world.users["m1"]["id"]})
            if response.status_code != 200:
                failures.append(f"PUT pairing {response.status_code} {response.get_json()}")
        finally:
            writes_done.set()

    armed = {"on": True, "writer": None}

    def after_log_query(conn, cursor, statement, parameters, context, executemany):
        # the pull's first read of the log (rows of the households in scope): commit the desk's writes now
        if armed["on"] and threading.current_thread() is threading.main_thread() \
                and "FROM change_log" in statement and "change_log.household_id IN" in statement:
            armed["on"] = False
            armed["writer"] = threading.Thread(target=desk_writes)
            armed["writer"].start()
            if conn.dialect.name == "postgresql":
                assert writes_done.wait(timeout=20), "the desk's writes did not commit during the pull"

    event.listen(db.engine, "after_cursor_execute", after_log_query)
    try:
        first = tablet.pull_all()
    finally:
        event.remove(db.engine, "after_cursor_execute", after_log_query)
        db.session.close()  # the test's own app context outlives the request: let the SQLite writer in
    assert not armed["on"], "the pull never read the log by household: the test no longer interleaves"
    armed["writer"].join(timeout=30)
    assert not failures, failures
    later = tablet.pull_all()
    received = {(c["entity"], c["id"]): c["version"] for c in first + later if c["action"] == "upsert"}
    assert received.get(("household", moved_in["id"])) is not None
    assert received.get(("household", edited["id"])) == edited["version"] + 1, \
        "the edit committed during the pull was skipped"
    assert tablet.replica[("household", edited["id"])]["notes"] == "楼道灯坏了"
