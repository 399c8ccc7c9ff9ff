"""POST /sync/push: every status, every envelope error, idempotence, order, atomicity, merge, authorship."""
import uuid

import pytest
from sqlalchemy import func, select

from server.extensions import db
from sync.models import ChangeLog, Conflict, QuarantinedOp, Visit
from tests.conftest import op


def uid():
    return str(uuid.uuid4())


def visit_data(household_id, **extra):
    return {"household_id": household_id, "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine", **extra}


@pytest.fixture
def setup(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    return world, household, tablet


def count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_create_is_applied_with_version_one(setup):
    _, household, tablet = setup
    vid = uid()
    answer = tablet.push([op("visit", vid, data=visit_data(household["id"], summary="老人身体好"))])
    assert answer["results"] == [{"op_id": answer["results"][0]["op_id"], "status": "applied", "version": 1,
                                  "conflicts": [], "error": None}]
    assert answer["server_time"].endswith("Z")
    assert db.session.get(Visit, vid).summary == "老人身体好"


def test_replayed_batch_answers_original_results_and_applies_nothing(setup):
    _, household, tablet = setup
    ops = [op("visit", uid(), data=visit_data(household["id"])), op("visit", uid(), data={"bad": 1})]
    batch_id = uid()
    first = tablet.push(ops, batch_id=batch_id)
    changes = count(ChangeLog)
    again = tablet.push(ops, batch_id=batch_id, client_time="2026-12-01T11:00:00+08:00")
    assert again["results"] == first["results"]
    assert count(ChangeLog) == changes
    assert count(QuarantinedOp) == 1


def test_batch_id_reused_with_other_ops_is_409(setup):
    _, household, tablet = setup
    batch_id = uid()
    tablet.push([op("visit", uid(), data=visit_data(household["id"]))], batch_id=batch_id)
    answer = tablet.push([op("visit", uid(), data=visit_data(household["id"]))], batch_id=batch_id, expect=409)
    assert answer["error"]["code"] == "conflict"


def test_replayed_op_in_a_new_batch_is_duplicate_with_its_version(setup):
    _, household, tablet = setup
    create = op("visit", uid(), data=visit_data(household["id"]))
    tablet.push([create])
    answer = tablet.push([create])
    assert answer["results"][0]["status"] == "duplicate"
    assert answer["results"][0]["version"] == 1
    assert count(Visit) == 1


def test_op_id_reused_with_other_content_is_rejected_and_quarantined(setup):
    _, household, tablet = setup
    create = op("visit", uid(), data=visit_data(household["id"]))
    tablet.push([create])
    reused = dict(create, data=visit_data(household["id"], summary="不同"))
    result = tablet.push([reused])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "op_id_reused"
    assert count(QuarantinedOp, QuarantinedOp.op_id == create["op_id"]) == 1


def test_replayed_rejected_op_answers_its_original_error(setup):
    _, household, tablet = setup
    bad = op("visit", uid(), data={"household_id": household["id"]})
    first = tablet.push([bad])["results"][0]
    again = tablet.push([bad])["results"][0]
    assert first["status"] == again["status"] == "rejected"
    assert again["error"] == first["error"]
    assert first["error"]["code"] == "validation_failed"
    assert set(first["error"]["details"]["data"]) == {"visited_at", "kind"}


def test_one_bad_op_does_not_sink_the_others_and_is_kept_as_sent(setup):
    _, household, tablet = setup
    good1, good2 = uid(), uid()
    bad = op("visit", uid(), data=visit_data(household["id"], kind="party", summary="x\x00y"))
    answer = tablet.push([op("visit", good1, data=visit_data(household["id"])), bad,
                          op("visit", good2, data=visit_data(household["id"]))])
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected", "applied"]
    kept = db.session.scalar(select(QuarantinedOp).where(QuarantinedOp.op_id == bad["op_id"]))
    assert kept.device_id == tablet.device_id and kept.user_id == tablet.user["id"]
    assert kept.error["code"] == "validation_failed"
    assert kept.op["data"]["kind"] == "party" and kept.op["data"]["summary"] == "x\\u0000y"


@pytest.mark.parametrize("mutate, field", [
    (lambda o: o.update(entity="parcel"), "entity"),
    (lambda o: o.update(action="upsert"), "action"),
    (lambda o: o.update(id="not-a-uuid"), "id"),
    (lambda o: o.update(recorded_at="2026-12-01T09:00:00"), "recorded_at"),
    (lambda o: o.update(extra=1), "extra"),
    (lambda o: o.update(base_version="1"), "base_version"),
])
def test_malformed_ops_are_rejected_one_by_one(setup, mutate, field):
    _, household, tablet = setup
    bad = op("visit", uid(), data=visit_data(household["id"]))
    mutate(bad)
    answer = tablet.push([bad, op("visit", uid(), data=visit_data(household["id"]))])
    assert answer["results"][0]["status"] == "rejected"
    assert field in answer["results"][0]["error"]["details"]
    assert answer["results"][1]["status"] == "applied"


@pytest.mark.parametrize("data, field", [
    ({"summary": "长" * 20_001}, "summary"),
    ({"observations": {"k": "x" * 17_000}}, "observations"),
    ({"attachments": [{"sha256": "0" * 64}] * 51}, "attachments"),
    ({"duration_minutes": True}, "duration_minutes"),
    ({"location": {"lat": 91, "lng": 0}}, "location"),
])
def test_op_data_past_the_limits_is_validation_failed(setup, data, field):
    _, household, tablet = setup
    result = tablet.push([op("visit", uid(), data=visit_data(household["id"], **data))])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "validation_failed"
    assert field in result["error"]["details"]["data"]


@pytest.mark.parametrize("body, status, code", [
    ({"client_time": "2026-12-01T10:00:00+08:00", "ops": []}, 422, "validation_failed"),
    ({"batch_id": "x", "client_time": "2026-12-01T10:00:00+08:00", "ops": []}, 422, "validation_failed"),
    ({"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": "no"}, 422, "validation_failed"),
    ({"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": [{"entity": "visit"}]},
     422, "validation_failed"),
    ({"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": [], "x": 1},
     422, "validation_failed"),
])
def test_bad_envelopes_fail_the_whole_batch(setup, body, status, code):
    _, _, tablet = setup
    response = tablet.post("/api/v1/sync/push", body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_malformed_json_is_400(setup):
    _, _, tablet = setup
    response = tablet.post("/api/v1/sync/push", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_more_than_500_ops_is_413_and_nothing_applies(setup):
    _, household, tablet = setup
    ops = [op("visit", uid(), data=visit_data(household["id"])) for _ in range(501)]
    answer = tablet.push(ops, expect=413)
    assert answer["error"]["code"] == "batch_too_large"
    assert count(Visit) == 0


def test_body_over_2_mib_is_413(setup):
    _, household, tablet = setup
    ops = [op("visit", uid(), data=visit_data(household["id"], summary="x" * 19_000)) for _ in range(120)]
    answer = tablet.push(ops, expect=413)
    assert answer["error"]["code"] == "batch_too_large"


def test_unsupported_schema_version_is_409(setup):
    _, household, tablet = setup
    body = {"batch_id": uid(), "client_time": "2026-12-01T10:00:00+08:00",
            "client": {"app_version": "9.0", "schema_version": 99},
            "ops": [op("visit", uid(), data=visit_data(household["id"]))]}
    response = tablet.post("/api/v1/sync/push", body)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "schema_unsupported"
    assert count(Visit) == 0


def test_ops_apply_in_order_household_resident_visit(setup):
    world, _, tablet = setup
    hid, rid, vid = uid(), uid(), uid()
    answer = tablet.push([
        op("household", hid, data={"area_id": world.building["id"], "address": "新搬来的一户"}),
        op("resident", rid, data={"household_id": hid, "name": "赵建国"}),
        op("visit", vid, data=visit_data(hid)),
    ])
    assert [r["status"] for r in answer["results"]] == ["applied"] * 3
    # a household made on a tablet is paired with its member, so it stays in scope
    household = world.coordinator.get(f"/api/v1/households/{hid}").get_json()
    assert household["member_id"] == tablet.user["id"]


def test_a_crash_mid_batch_commits_nothing_and_the_retry_applies(setup, monkeypatch):
    _, household, tablet = setup
    import sync.push as push_module

    real = push_module.apply_change
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(push_module, "apply_change", crash_on_third)
    ops = [op("visit", uid(), data=visit_data(household["id"])) for _ in range(4)]
    batch_id = uid()
    response = tablet.post("/api/v1/sync/push", {"batch_id": batch_id, "client_time": "2026-12-01T10:00:00+08:00",
                                                  "ops": ops})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "request_id" in response.get_json()["error"]["details"]
    assert count(Visit) == 0 and count(ChangeLog, ChangeLog.entity == "visit") == 0
    monkeypatch.setattr(push_module, "apply_change", real)
    answer = tablet.push(ops, batch_id=batch_id)
    assert [r["status"] for r in answer["results"]] == ["applied"] * 4
    assert count(Visit) == 4


def test_id_taken_even_outside_the_callers_scope(world):
    world.household(member="m1")
    theirs = world.household(address="和平路9号", area=world.other_building, by=world.other_coordinator)
    tablet = world.tablet("m1")
    result = tablet.push([op("household", theirs["id"], data={"area_id": world.building["id"],
                                                              "address": "冒用"})])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "id_taken"


def test_out_of_scope_household_reads_as_not_found(world):
    other = world.household(member="m2")
    tablet = world.tablet("m1")
    result = tablet.push([op("visit", uid(), data=visit_data(other["id"]))])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "not_found"
    update = tablet.push([op("household", other["id"], "update", {"notes": "x"}, base_version=1)])["results"][0]
    assert update["error"]["code"] == "not_found"


def test_tasks_and_reviews_are_never_pushed(setup):
    _, household, tablet = setup
    answer = tablet.push([op("task", uid(), data={}), op("review", uid(), data={})])
    assert [r["error"]["code"] for r in answer["results"]] == ["forbidden", "forbidden"]


def test_update_without_base_version_is_rejected(setup):
    _, household, tablet = setup
    result = tablet.push([op("household", household["id"], "update", {"notes": "x"})])["results"][0]
    assert result["error"]["code"] == "validation_failed" and "base_version" in result["error"]["details"]


def test_user_token_cannot_push(world):
    response = world.coordinator.post("/api/v1/sync/push", {"batch_id": uid(), "client_time": "2026-12-01T10:00:00Z",
                                                            "ops": []})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


# --- merge -----------------------------------------------------------------------------------------


def test_stale_update_merges_untouched_fields_and_reports_both_sides(world):
    household = world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    base = household["version"]
    first = a.push([op("household", household["id"], "update", {"head_name": "王秀兰", "notes": "A的备注"},
                       base_version=base, recorded_at="2026-12-01T09:00:00+08:00")])["results"][0]
    assert first["status"] == "applied"
    second = b.push([op("household", household["id"], "update", {"phone": "13800000000", "notes": "B的备注"},
                        base_version=base, recorded_at="2026-12-01T09:10:00+08:00")],
                    client_time="2026-12-01T10:00:00+08:00")["results"][0]
    assert second["status"] == "merged"
    assert second["conflicts"] == [{"field": "notes", "kept": "B的备注", "discarded": "A的备注"}]
    current = world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()
    assert (current["head_name"], current["phone"], current["notes"]) == ("王秀兰", "13800000000", "B的备注")
    stored = db.session.scalars(select(Conflict)).all()
    assert [(c.field, c.kept, c.discarded, c.status) for c in stored] == [("notes", "B的备注", "A的备注", "open")]


def test_clock_offset_is_corrected_before_comparing(world):
    household = world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    base = household["version"]
    # A edited 30 minutes before it sent; B edited 1 minute before it sent, so B's edit is the later one.
    # By the raw clocks A's edit looks later (B's clock is hours behind): only the corrected times say B.
    a.push([op("household", household["id"], "update", {"notes": "A"}, base_version=base,
               recorded_at="2026-12-01T09:31:00+08:00")], client_time="2026-12-01T10:01:00+08:00")
    result = b.push([op("household", household["id"], "update", {"notes": "B"}, base_version=base,
                        recorded_at="2026-12-01T07:30:00+08:00")],
                    client_time="2026-12-01T07:31:00+08:00")["results"][0]
    assert result["status"] == "merged"
    assert result["conflicts"] == [{"field": "notes", "kept": "B", "discarded": "A"}]
    # and the other way round: a device whose edit is older after correction loses, though its clock says later
    c = world.tablet("m1")
    late = c.push([op("household", household["id"], "update", {"notes": "C"}, base_version=base,
                      recorded_at="2026-12-01T20:00:00+08:00")],
                  client_time="2026-12-01T21:00:00+08:00")["results"][0]
    assert late["conflicts"] == [{"field": "notes", "kept": "B", "discarded": "C"}]


def test_tags_merge_as_sets(world):
    household = world.household(member="m1", tags=["独居老人"])
    a, b = world.tablet("m1"), world.tablet("m1")
    base = household["version"]
    a.push([op("household", household["id"], "update", {"tags": ["独居老人", "残疾人"]}, base_version=base)])
    result = b.push([op("household", household["id"], "update", {"tags": ["低保户"]}, base_version=base)])
    assert result["results"][0]["status"] == "merged" and result["results"][0]["conflicts"] == []
    current = world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()
    assert sorted(current["tags"]) == sorted(["残疾人", "低保户"])


def test_a_devices_own_earlier_changes_never_conflict(setup):
    _, household, tablet = setup
    base = household["version"]
    tablet.push([op("household", household["id"], "update", {"notes": "一"}, base_version=base)])
    result = tablet.push([op("household", household["id"], "update", {"notes": "二"}, base_version=base)])
    assert result["results"][0]["status"] == "merged"
    assert result["results"][0]["conflicts"] == []


def test_online_edit_and_tablet_edit_merge(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    base = household["version"]
    response = world.coordinator.patch(f"/api/v1/households/{household['id']}",
                                       {"base_version": base, "visit_interval_days": 7})
    assert response.status_code == 200 and response.get_json()["version"] == base + 1
    result = tablet.push([op("household", household["id"], "update", {"notes": "腿脚不便"}, base_version=base)])
    assert result["results"][0]["status"] == "merged" and result["results"][0]["version"] == base + 2
    current = world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()
    assert (current["visit_interval_days"], current["notes"]) == (7, "腿脚不便")


def test_stale_delete_of_a_record_others_changed_is_rejected(world):
    household = world.household(member="m1")
    a, b = world.tablet("m1"), world.tablet("m1")
    rid = uid()
    a.push([op("resident", rid, data={"household_id": household["id"], "name": "李桂兰"})])
    b.pull_all()
    a.push([op("resident", rid, "update", {"phone": "13900000000"}, base_version=1)])
    result = b.push([op("resident", rid, "delete", base_version=1)])["results"][0]
    assert result["status"] == "rejected" and result["error"]["code"] == "stale_delete"
    fresh = a.push([op("resident", rid, "delete", base_version=2)])["results"][0]
    assert fresh["status"] == "applied" and fresh["version"] == 3


def test_only_the_author_may_change_a_visit(world):
    household = world.household(member="m1")
    m1 = world.tablet("m1")
    vid = uid()
    m1.push([op("visit", vid, data=visit_data(household["id"]))])
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    m2 = world.tablet("m2")
    result = m2.push([op("visit", vid, "update", {"summary": "改写"}, base_version=1),
                      op("visit", vid, "delete", base_version=1)])
    assert [r["error"]["code"] for r in result["results"]] == ["forbidden", "forbidden"]


def test_base_version_ahead_of_the_server_is_rejected(setup):
    _, household, tablet = setup
    result = tablet.push([op("household", household["id"], "update", {"notes": "x"}, base_version=99)])
    assert result["results"][0]["error"]["code"] == "validation_failed"


def test_immutable_household_link_cannot_change(world):
    household = world.household(member="m1")
    other = world.household(address="二号", member="m1")
    tablet = world.tablet("m1")
    rid = uid()
    tablet.push([op("resident", rid, data={"household_id": household["id"], "name": "甲"})])
    result = tablet.push([op("resident", rid, "update", {"household_id": other["id"]}, base_version=1)])
    assert result["results"][0]["error"]["code"] == "validation_failed"


def test_the_same_id_created_twice_in_one_batch_is_id_taken_not_a_crash(setup):
    _, household, tablet = setup
    vid = uid()
    answer = tablet.push([op("visit", vid, data=visit_data(household["id"])),
                          op("visit", vid, data=visit_data(household["id"], summary="又一次")),
                          op("visit", uid(), data=visit_data(household["id"]))])
    assert [r["status"] for r in answer["results"]] == ["applied", "rejected", "applied"]
    assert answer["results"][1]["error"]["code"] == "id_taken"
    assert count(Visit) == 2


def test_a_big_batch_of_creates_with_rejections_mixed_in_leaves_only_the_good_ones(world):
    household = world.household(member="m1")
    other = world.household(address="别人家", member="m2")
    tablet = world.tablet("m1")
    ops, good = [], 0
    for n in range(300):
        if n % 7 == 3:
            ops.append(op("visit", uid(), data=visit_data(other["id"])))  # out of scope
        elif n % 11 == 5:
            ops.append(op("visit", uid(), data={"household_id": household["id"]}))  # invalid
        else:
            ops.append(op("visit", uid(), data=visit_data(household["id"])))
            good += 1
    answer = tablet.push(ops)
    assert sum(r["status"] == "applied" for r in answer["results"]) == good
    assert count(Visit) == good
    assert count(ChangeLog, ChangeLog.entity == "visit") == good
    assert count(QuarantinedOp) == 300 - good
