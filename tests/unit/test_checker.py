"""The checker can fail: hand it a broken world and it names each breach."""
from __future__ import annotations

import copy

import pytest

from client.checker import Evidence, PhotoState, TabletState, check

M1, M2 = "member-1", "member-2"
H1, H2 = "household-1", "household-2"


def _world() -> Evidence:
    """One tablet of M1 that agrees with the server in every way."""
    household = {"version": 2, "data": {"id": H1, "address": "幸福路1号", "member_id": M1}}
    visit = {"version": 1, "data": {"id": "visit-1", "household_id": H1, "summary": "身体状况良好"}}
    view = {("household", H1): household, ("visit", "visit-1"): visit}
    op = {"op_id": "op-1", "entity": "visit", "id": "visit-1", "action": "create", "device_id": "device-1"}
    return Evidence(
        tablets=[TabletState("tablet0", "device-1", M1, copy.deepcopy(view))],
        server_views={M1: view, M2: {("household", H2): {"version": 1, "data": {"id": H2, "member_id": M2}}}},
        pairings={H1: M1, H2: M2},
        recorded={"op-1": op},
        answers={"op-1": [{"op_id": "op-1", "status": "applied", "version": 1, "error": None}]},
        quarantine=[],
        known_records={("household", H1), ("household", H2)},
        resolved_requests={},
    )


def test_an_agreeing_world_passes():
    report = check(_world())
    assert report.ok, report.render()
    assert report.stats["ops applied"] == 1


def test_a_missing_record_is_reported():
    world = _world()
    del world.tablets[0].replica[("visit", "visit-1")]
    report = check(world)
    assert [b.kind for b in report.breaches] == ["missing"]
    assert "visit-1" in report.breaches[0].detail


def test_a_duplicated_op_is_reported():
    world = _world()
    # the op was answered "applied" at two different versions: the server applied it twice
    world.answers["op-1"].append({"op_id": "op-1", "status": "applied", "version": 2, "error": None})
    report = check(world)
    assert "duplicated_op" in report.kinds()


def test_a_replayed_answer_is_not_a_duplicate():
    world = _world()
    world.answers["op-1"].append({"op_id": "op-1", "status": "duplicate", "version": 1, "error": None})
    assert check(world).ok


def test_a_leaked_out_of_scope_record_is_reported():
    world = _world()
    world.tablets[0].replica[("household", H2)] = {"version": 1, "data": {"id": H2, "member_id": M2}}
    report = check(world)
    assert "out_of_scope" in report.kinds()
    assert any(H2 in b.detail for b in report.breaches if b.kind == "out_of_scope")


def test_a_stale_version_is_reported():
    world = _world()
    world.tablets[0].replica[("household", H1)] = {"version": 1, "data": {"id": H1, "address": "旧地址",
                                                                            "member_id": M1}}
    report = check(world)
    assert report.kinds() == {"stale"} and "address" in report.breaches[0].detail


@pytest.mark.parametrize("mutate, kind", [
    (lambda w: w.answers.pop("op-1"), "unanswered"),
    (lambda w: w.tablets[0].outbox.append("op-9"), "unsent"),
    (lambda w: w.answers.__setitem__("op-1", [{"status": "rejected", "version": None,
                                                "error": {"code": "not_found"}}]), "lost"),
    (lambda w: w.answers.__setitem__("op-1", [{"status": "rejected", "version": None,
                                                "error": {"code": "op_id_reused"}}]), "unexpected_rejection"),
    (lambda w: w.quarantine.extend([{"op_id": "op-1"}]), "duplicated_op"),
    (lambda w: w.known_records.discard(("household", H1)) or w.recorded.clear() or w.answers.clear(),
     "duplicate_record"),
    (lambda w: w.resolved_requests.__setitem__("request-1", H1), "feedback_missing"),
    (lambda w: w.pairings.__setitem__("household-3", M1), "missing"),
])
def test_each_breach_kind_is_reported(mutate, kind):
    world = _world()
    mutate(world)
    assert kind in check(world).kinds()


# --- photos ----------------------------------------------------------------------------------------

PHOTO = "a" * 64


def _world_with_photo() -> Evidence:
    """The visit carries a photo the server holds, and its author reads it back."""
    world = _world()
    for records in (world.server_views[M1], world.tablets[0].replica):
        records[("visit", "visit-1")]["data"].update(
            attachments=[{"sha256": PHOTO, "mime": "image/png", "name": "扶手.png"}], missing_attachments=[])
    world.photos = [PhotoState(PHOTO, "tablet0", M1, held=True, fetched_sha256=PHOTO)]
    return world


def test_a_photo_held_and_read_back_passes():
    report = check(_world_with_photo())
    assert report.ok, report.render()
    assert report.stats["photos recorded"] == 1 and report.stats["photos read back"] == 1


def test_photos_are_not_checked_where_the_server_has_none():
    assert check(_world()).stats["photos recorded"] == -1


def _list_missing(world: Evidence) -> None:
    for records in (world.server_views[M1], world.tablets[0].replica):
        records[("visit", "visit-1")]["data"]["missing_attachments"] = [PHOTO]


def _move_visit_away(world: Evidence) -> None:
    """The visit left the author's scope (its household re-paired), yet the author could still read the photo."""
    del world.server_views[M1][("visit", "visit-1")]
    del world.tablets[0].replica[("visit", "visit-1")]
    world.recorded.clear()
    world.answers.clear()


@pytest.mark.parametrize("mutate, kind", [
    (lambda w: setattr(w.photos[0], "held", False), "photo_not_held"),
    (lambda w: setattr(w.photos[0], "fetched_sha256", None), "photo_unreadable"),
    (lambda w: setattr(w.photos[0], "fetched_sha256", "b" * 64), "photo_unreadable"),
    (_list_missing, "photo_missing"),
    (_move_visit_away, "photo_leaked"),
])
def test_each_photo_breach_is_reported(mutate, kind):
    world = _world_with_photo()
    mutate(world)
    report = check(world)
    assert kind in report.kinds(), report.render()
    assert any(PHOTO in b.detail for b in report.breaches if b.kind == kind)


def test_a_record_listing_a_missing_file_is_reported_on_the_tablet_alone_too():
    world = _world_with_photo()
    world.tablets[0].replica[("visit", "visit-1")]["data"]["missing_attachments"] = [PHOTO]
    report = check(world)
    assert report.kinds() == {"photo_missing", "stale"}  # the server's view no longer lists it
    assert [b.detail.split(":")[0] for b in report.breaches if b.kind == "photo_missing"] == ["tablet0"]
