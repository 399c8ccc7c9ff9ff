"""The engine on a plain session, without HTTP: cursors, commit-order numbering, push and pull rules."""
import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from server.extensions import db
from sync import cursor as cursors
from sync.apply import Change, apply_change, set_pairing
from sync.changes import pending_changes, record_change
from sync.errors import CursorExpiredError, InvalidCursorError, OpRejected
from sync.models import Area, AttachmentRef, ChangeLog, Device, Household, User, Visit, new_id, utcnow
from sync.policy import Actor
from sync.pull import pull
from sync.push import Batch, Op, push
from sync.rows import flush_rows, queued_rows
from sync.settings import SyncSettings

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.timezone.utc)
SETTINGS = SyncSettings()


@pytest.fixture
def engine_world(app):
    session = db.session
    community_id = new_id()
    session.add(Area(id=community_id, name="社区", kind="community", community_id=community_id,
                     path=f"/{community_id}/"))
    member = User(username="m", display_name="m", role="member", area_id=community_id)
    coordinator = User(username="c", display_name="c", role="coordinator", area_id=community_id)
    session.add_all([member, coordinator])
    session.flush()
    devices = [Device(user_id=member.id, name=f"t{i}", token_hash=uuid.uuid4().hex) for i in range(2)]
    session.add_all(devices)
    session.commit()
    path = f"/{community_id}/"
    return {
        "session": session, "area": community_id,
        "member": member, "actors": [Actor(member.id, "member", community_id, path, d.id) for d in devices],
        "devices": devices, "coordinator": Actor(coordinator.id, "coordinator", community_id, path),
    }


def _household(w, **fields):
    hid = new_id()
    apply_change(w["session"], w["coordinator"], Change("household", hid, "create",
                 {"area_id": w["area"], "address": "一号", **fields}, None, NOW), SETTINGS)
    household = w["session"].get(Household, hid)
    set_pairing(w["session"], w["coordinator"], household, w["member"].id)
    w["session"].commit()
    return household


def test_cursor_round_trip_and_tamper_evidence():
    cur = cursors.Cursor("dev", 2, 41, int(NOW.timestamp()), cursors.Pending("up", "h1", 3, "abc"))
    token = cursors.encode(cur, KEY)
    back = cursors.decode(token, KEY, device_id="dev", epoch=2, max_age=dt.timedelta(days=1), now=NOW)
    assert back == cur
    with pytest.raises(InvalidCursorError):
        cursors.decode(token, b"other" * 8, device_id="dev", epoch=2, max_age=dt.timedelta(days=1), now=NOW)
    with pytest.raises(InvalidCursorError):
        cursors.decode(token, KEY, device_id="other", epoch=2, max_age=dt.timedelta(days=1), now=NOW)
    with pytest.raises(CursorExpiredError):
        cursors.decode(token, KEY, device_id="dev", epoch=3, max_age=dt.timedelta(days=1), now=NOW)
    with pytest.raises(CursorExpiredError):
        cursors.decode(token, KEY, device_id="dev", epoch=2, max_age=dt.timedelta(days=1),
                       now=NOW + dt.timedelta(days=2))
    body, mac = token.split(".")
    for broken in (body + "x." + mac, body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), "", ".", "a.b.c"):
        with pytest.raises(InvalidCursorError):
            cursors.decode(broken, KEY, device_id="dev", epoch=2, max_age=dt.timedelta(days=1), now=NOW)


def test_changes_are_numbered_at_commit_in_one_increasing_run(engine_world):
    session = engine_world["session"]
    for n in range(3):
        record_change(session, entity="household", record_id=new_id(), community_id="c", household_id=None,
                      action="update", version=n + 1, recorded_at=NOW)
    assert len(pending_changes(session)) == 3
    assert session.scalar(select(ChangeLog.seq).order_by(ChangeLog.seq.desc()).limit(1)) is None
    session.commit()
    seqs = session.scalars(select(ChangeLog.seq).order_by(ChangeLog.seq)).all()
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    record_change(session, entity="household", record_id=new_id(), community_id="c", household_id=None,
                  action="update", version=1, recorded_at=NOW)
    session.rollback()
    assert pending_changes(session) == []
    session.commit()
    assert len(session.scalars(select(ChangeLog.seq)).all()) == 3, "a rolled back change is never written"


def test_push_and_pull_on_a_plain_session(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    actor, device = w["actors"][0], w["devices"][0]
    vid = new_id()
    ops = [Op(new_id(), "visit", vid, "create", None, NOW,
              {"household_id": household.id, "visited_at": NOW, "kind": "routine"}, {"id": vid}),
           Op(new_id(), "visit", new_id(), "create", None, NOW, {}, {},
              OpRejected("validation_failed", "bad", {"data": {}}))]
    answer = push(session, actor, device, Batch(new_id(), NOW, ops), SETTINGS, now=NOW)
    session.commit()
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected"]
    page = pull(session, actor, device, None, 100, KEY, SETTINGS, now=NOW)
    assert {(c.entity, c.id) for c in page.changes} == {("household", household.id), ("visit", vid)}
    assert not page.has_more
    again = pull(session, actor, device, page.cursor, 100, KEY, SETTINGS, now=NOW)
    assert again.changes == [] and not again.has_more


def test_stale_delete_and_own_changes(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    a, b = w["actors"]
    rid = new_id()
    apply_change(session, a, Change("resident", rid, "create", {"household_id": household.id, "name": "甲"}, None, NOW),
                 SETTINGS)
    apply_change(session, a, Change("resident", rid, "update", {"name": "乙"}, 1, NOW), SETTINGS)
    session.commit()
    with pytest.raises(OpRejected) as rejected:
        apply_change(session, b, Change("resident", rid, "delete", {}, 1, NOW), SETTINGS)
    assert rejected.value.code == "stale_delete"
    session.rollback()
    # the same device's own later change is not a reason to refuse its delete
    outcome = apply_change(session, a, Change("resident", rid, "delete", {}, 1, NOW), SETTINGS)
    assert outcome.status == "applied" and outcome.version == 3


def test_history_gone_counts_every_difference_as_both_sides(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w, notes="旧", tags=["a"])
    a = w["actors"][0]
    apply_change(session, w["coordinator"], Change("household", household.id, "update",
                 {"notes": "新", "tags": ["a", "b"]}, 1, NOW + dt.timedelta(hours=1)), SETTINGS)
    session.commit()
    session.execute(ChangeLog.__table__.delete().where(ChangeLog.record_id == household.id,
                                                       ChangeLog.version == 2))
    session.commit()
    # with the history gone, the server's side counts as changed when the record last changed
    outcome = apply_change(session, a, Change("household", household.id, "update", {"notes": "设备", "tags": ["c"]},
                                              1, utcnow() + dt.timedelta(minutes=1)), SETTINGS)
    assert outcome.status == "merged"
    fields = {c.field: c for c in outcome.conflicts}
    assert fields["notes"].kept == "设备"
    assert sorted(fields["tags"].kept) == ["a", "b", "c"]


def test_pull_pages_a_household_moving_in_without_exceeding_the_limit(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    for n in range(11):
        apply_change(session, w["coordinator"], Change("resident", new_id(), "create",
                     {"household_id": household.id, "name": f"人{n}"}, None, NOW), SETTINGS)
    other = User(username="m2", display_name="m2", role="member", area_id=w["area"])
    session.add(other)
    session.flush()
    device = Device(user_id=other.id, name="t", token_hash=uuid.uuid4().hex)
    session.add(device)
    session.commit()
    actor = Actor(other.id, "member", w["area"], f"/{w['area']}/", device.id)
    first = pull(session, actor, device, None, 5, KEY, SETTINGS, now=utcnow())
    assert first.changes == [] and not first.has_more
    set_pairing(session, w["coordinator"], session.get(Household, household.id), other.id)
    session.commit()
    token, got, pages = first.cursor, [], 0
    while True:
        page = pull(session, actor, device, token, 5, KEY, SETTINGS, now=utcnow())
        assert len(page.changes) <= 5
        got += page.changes
        token, pages = page.cursor, pages + 1
        if not page.has_more:
            break
    assert len(got) == 12 and pages == 3
    assert got[0].entity == "household", "the household comes before what belongs to it"


def test_a_record_changed_between_two_log_reads_of_one_page_arrives_in_its_newer_state(engine_world, monkeypatch):
    import sync.pull as pull_module

    w = engine_world
    session = w["session"]
    household = _household(w, notes="一")
    actor, device = w["actors"][0], w["devices"][0]
    first = pull(session, actor, device, None, 100, KEY, SETTINGS, now=utcnow())
    apply_change(session, w["coordinator"], Change("household", household.id, "update", {"notes": "二"}, 1, NOW),
                 SETTINGS)
    session.commit()
    real, calls = pull_module._log_rows, {"n": 0}

    def change_between_reads(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # another writer commits while this page is being built
            current = session.get(Household, household.id)
            apply_change(session, w["coordinator"], Change("household", household.id, "update", {"notes": "三"},
                                                           current.version, NOW), SETTINGS)
            session.commit()
        return real(*args, **kwargs)

    monkeypatch.setattr(pull_module, "_log_rows", change_between_reads)
    page = pull(session, actor, device, first.cursor, 100, KEY, SETTINGS, now=utcnow())
    assert [(c.entity, c.version, c.record.notes) for c in page.changes] == [("household", 3, "三")]


# --- new leaf records go in as queued rows (sync.rows) ---------------------------------------------


def _visit_op(household_id, vid, action="create", base_version=None, **data):
    fields = {"household_id": household_id, "visited_at": NOW, "kind": "routine", **data}
    if action == "update":
        fields = data
    return Op(new_id(), "visit", vid, action, base_version, NOW, fields, {"id": vid})


def test_a_visit_created_as_a_row_is_seen_by_the_later_ops_of_its_batch(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    actor, device = w["actors"][0], w["devices"][0]
    vid, other = new_id(), new_id()
    sha = "a" * 64
    ops = [_visit_op(household.id, vid, summary="first"),
           _visit_op(household.id, vid, "update", 1, summary="second"),
           _visit_op(household.id, vid),  # the same id again: taken by the first op
           _visit_op(household.id, other, attachments=[{"sha256": sha, "mime": "image/jpeg", "name": "a.jpg"}])]
    answer = push(session, actor, device, Batch(new_id(), NOW, ops), SETTINGS, now=NOW)
    session.commit()
    assert [(r["status"], r["version"]) for r in answer["results"]] == [
        ("applied", 1), ("applied", 2), ("rejected", None), ("applied", 1)]
    assert answer["results"][2]["error"]["code"] == "id_taken"
    visit = session.get(Visit, vid)
    assert (visit.summary, visit.version, visit.review_state, visit.attachments) == ("second", 2, "pending", [])
    refs = session.execute(select(AttachmentRef.record_id, AttachmentRef.household_id, AttachmentRef.mime)
                           .where(AttachmentRef.sha256 == sha)).all()
    assert refs == [(other, household.id, "image/jpeg")]
    logged = session.scalars(select(ChangeLog.version).where(ChangeLog.record_id == vid)
                             .order_by(ChangeLog.seq)).all()
    assert logged == [1, 2]
    assert session.get(Household, household.id).last_visited_at == NOW


def test_queued_rows_go_with_a_rollback(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    vid = new_id()
    push(session, w["actors"][0], w["devices"][0], Batch(new_id(), NOW, [_visit_op(household.id, vid)]),
         SETTINGS, now=NOW)
    assert queued_rows(session)
    session.rollback()
    assert not queued_rows(session)
    session.commit()
    assert session.get(Visit, vid) is None


def test_a_savepoint_cannot_begin_over_queued_rows(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    push(session, w["actors"][0], w["devices"][0], Batch(new_id(), NOW, [_visit_op(household.id, new_id())]),
         SETTINGS, now=NOW)
    with pytest.raises(RuntimeError, match="flush_rows"):
        session.begin_nested()
    session.rollback()


def test_rows_queued_under_a_savepoint_go_with_it_and_those_before_stay(engine_world):
    w = engine_world
    session = w["session"]
    household = _household(w)
    actor, device = w["actors"][0], w["devices"][0]
    kept, dropped = new_id(), new_id()
    push(session, actor, device, Batch(new_id(), NOW, [_visit_op(household.id, kept)]), SETTINGS, now=NOW)
    flush_rows(session)
    savepoint = session.begin_nested()
    apply_change(session, actor, Change("visit", dropped, "create",
                 {"household_id": household.id, "visited_at": NOW, "kind": "routine"}, None, NOW), SETTINGS)
    assert queued_rows(session)
    savepoint.rollback()
    assert not queued_rows(session)
    del pending_changes(session)[1:]  # what the savepoint's caller does for the op it gave up
    session.commit()
    assert session.get(Visit, kept) is not None and session.get(Visit, dropped) is None


def test_a_members_listed_households_select_what_the_scope_selects(engine_world):
    from sync.models import Visit as VisitModel
    from sync.policy import Scope

    w = engine_world
    session = w["session"]
    mine, other = _household(w), _household(w)
    set_pairing(session, w["coordinator"], other, None)
    for household in (mine, other):
        apply_change(session, w["coordinator"], Change("visit", new_id(), "create",
                     {"household_id": household.id, "visited_at": NOW, "kind": "routine"}, None, NOW), SETTINGS)
    session.commit()
    for actor in (w["actors"][0], w["coordinator"]):
        scope = Scope(actor)
        for model in (Household, VisitModel):
            listed = set(session.scalars(select(model.id).where(scope.records_listed(session, model))))
            assert listed == set(session.scalars(select(model.id).where(scope.records(model))))
    member_scope = Scope(w["actors"][0])
    assert set(session.scalars(select(VisitModel.household_id).where(
        member_scope.records_listed(session, VisitModel)))) == {mine.id}
