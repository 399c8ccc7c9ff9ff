"""The fixed cost of a sync call: one transaction per request, one query to know the tablet (issue 7)."""
from __future__ import annotations

import contextlib
import uuid

from flask import g
from sqlalchemy import event, update

from server.auth import authenticate_token
from server.extensions import db
from sync.models import User
from tests.conftest import op


@contextlib.contextmanager
def recorded(kind):
    """Collect the engine's transactions (``"begin"``) or statements (``"statement"``) meanwhile."""
    seen = []
    name, listener = (("begin", lambda conn: seen.append("BEGIN")) if kind == "begin" else
                      ("before_cursor_execute", lambda conn, cursor, statement, *rest: seen.append(statement)))
    event.listen(db.engine, name, listener)
    try:
        yield seen
    finally:
        event.remove(db.engine, name, listener)


def test_a_push_and_a_pull_each_run_in_one_transaction(world):
    """The request's log line names the user and the device after the commit; reading them from the
    expired rows would open a second transaction (on SQLite, the write lock again) for each call."""
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit = {"household_id": household["id"], "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"}
    tablet.push([op("visit", str(uuid.uuid4()), data=visit)])  # the first call of a tablet is no different
    db.session.close()  # the test's app context outlives requests: start each one without a transaction
    with recorded("begin") as pushed:
        tablet.push([op("visit", str(uuid.uuid4()), data=visit) for _ in range(3)])
    db.session.close()
    with recorded("begin") as pulled:
        tablet.pull_all()
    assert pushed == ["BEGIN"]
    assert pulled == ["BEGIN"]


def test_a_tablet_is_known_in_one_query_and_a_user_in_two(app, world):
    tablet = world.tablet("m1")
    for token, queries, device_id in ((tablet.token, 1, tablet.device_id), (world.coordinator.token, 2, None)):
        with app.test_request_context("/api/v1/sync/pull"):
            with recorded("statement") as statements:
                actor = authenticate_token(token)
            assert len(statements) == queries, statements
            assert actor.device_id == device_id == (g.device.id if g.device is not None else None)
            db.session.rollback()


def test_the_tablet_of_a_member_disabled_between_two_calls_is_refused_on_the_second(world):
    """Nothing about a token is remembered between requests: the user comes with the tablet's row."""
    tablet = world.tablet("m1")
    assert tablet.get("/api/v1/sync/pull").status_code == 200
    db.session.execute(update(User).where(User.id == tablet.user["id"]).values(active=False))
    db.session.commit()
    refused = tablet.get("/api/v1/sync/pull")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthenticated"
