"""POST/GET/PATCH /households and PUT /households/{id}/pairing, for every role and in scope."""
from __future__ import annotations

import uuid

import pytest

from tests.api.roles import DENIED, assert_denied, assert_error, assert_page, callers
from tests.conftest import op

HOUSEHOLDS = "/api/v1/households"
RECORD_FIELDS = {"id", "version", "created_at", "updated_at", "author_id", "member_id", "area_id", "address",
                 "head_name", "phone", "tags", "offline_served", "sms_consent", "visit_interval_days", "notes"}


def _body(world, **fields):
    return {"area_id": world.building["id"], "address": "幸福路8号3单元201室", "head_name": "李桂兰", **fields}


# --- create -----------------------------------------------------------------------------------------


def test_a_coordinator_adds_a_household_with_defaults(world):
    response = world.coordinator.post(HOUSEHOLDS, _body(world))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == RECORD_FIELDS
    assert body["version"] == 1 and body["member_id"] is None
    assert body["offline_served"] is True and body["sms_consent"] is False and body["tags"] == []
    assert body["created_at"].endswith("Z") and body["author_id"] == world.users["coord"]["id"]


def test_the_caller_may_choose_the_id_once(world):
    chosen = str(uuid.uuid4()).upper()
    response = world.coordinator.post(HOUSEHOLDS, _body(world, id=chosen))
    assert response.status_code == 201 and response.get_json()["id"] == chosen.lower()
    assert_error(world.coordinator.post(HOUSEHOLDS, _body(world, id=chosen)), 409, "conflict")


def test_every_field_round_trips(world):
    fields = {"phone": "+86 138-0000-0000", "tags": ["独居老人", "低保户"], "offline_served": False,
              "sms_consent": True, "visit_interval_days": 7, "notes": "老人耳背，请大声说话。\n第二行"}
    created = world.coordinator.post(HOUSEHOLDS, _body(world, **fields)).get_json()
    fetched = world.coordinator.get(f"{HOUSEHOLDS}/{created['id']}").get_json()
    for name, value in fields.items():
        assert created[name] == value and fetched[name] == value, name


CHINESE = ["北京市朝阳区建国路８８号（东院）３单元", "𠀀𪚥龘 — 生僻字", "王\u0301秀英 👵🏻", "  前后有空格  ", "繁體中文：臺灣"]


@pytest.mark.parametrize("text", CHINESE)
def test_chinese_text_is_stored_and_answered_exactly(world, text):
    created = world.coordinator.post(HOUSEHOLDS, _body(world, address=text, head_name=text)).get_json()
    fetched = world.coordinator.get(f"{HOUSEHOLDS}/{created['id']}")
    assert fetched.get_json()["address"] == text and fetched.get_json()["head_name"] == text
    raw = fetched.get_data()
    assert fetched.mimetype == "application/json" and raw.decode("utf-8")  # valid UTF-8 on the wire


def test_a_coordinator_cannot_add_households_in_another_community(world):
    assert_error(world.other_coordinator.post(HOUSEHOLDS, _body(world)), 404, "not_found")
    assert_error(world.coordinator.post(HOUSEHOLDS, _body(world, area_id=str(uuid.uuid4()))), 404, "not_found")


def test_an_admin_adds_households_anywhere(world):
    response = world.admin.post(HOUSEHOLDS, _body(world, area_id=world.other_building["id"]))
    assert response.status_code == 201


@pytest.mark.parametrize("role", sorted(DENIED))
def test_households_are_for_coordinators_only(world, role):
    household = world.household(member="m1")
    caller = callers(world)[role]
    path = f"{HOUSEHOLDS}/{household['id']}"
    assert_denied(caller.post(HOUSEHOLDS, _body(world)), role)
    assert_denied(caller.get(HOUSEHOLDS), role)
    assert_denied(caller.get(path), role)
    assert_denied(caller.patch(path, {"base_version": 2, "notes": "x"}), role)
    assert_denied(caller.put(f"{path}/pairing", {"member_id": None}), role)


@pytest.mark.parametrize("change, field", [
    ({"area_id": None}, "area_id"),
    ({"area_id": "building-1"}, "area_id"),
    ({"address": None}, "address"),
    ({"address": ""}, "address"),
    ({"address": "路" * 201}, "address"),
    ({"address": "幸福路\x00号"}, "address"),
    ({"address": ["幸福路"]}, "address"),
    ({"head_name": "名" * 201}, "head_name"),
    ({"head_name": 3}, "head_name"),
    ({"phone": "call me"}, "phone"),
    ({"tags": "独居老人"}, "tags"),
    ({"tags": ["t"] * 51}, "tags"),
    ({"tags": ["标" * 201]}, "tags"),
    ({"tags": [1]}, "tags"),
    ({"offline_served": "yes"}, "offline_served"),
    ({"offline_served": 1}, "offline_served"),
    ({"sms_consent": None}, "sms_consent"),
    ({"visit_interval_days": "7"}, "visit_interval_days"),
    ({"visit_interval_days": 7.5}, "visit_interval_days"),
    ({"visit_interval_days": 0}, "visit_interval_days"),
    ({"visit_interval_days": True}, "visit_interval_days"),
    ({"notes": "记" * 20001}, "notes"),
    ({"notes": "a\x00"}, "notes"),
    ({"id": "not-a-uuid"}, "id"),
    ({"version": 3}, "version"),
    ({"member_id": str(uuid.uuid4())}, "member_id"),
    ({"favourite_colour": "red"}, "favourite_colour"),
])
def test_household_input_is_validated(world, change, field):
    details = assert_error(world.coordinator.post(HOUSEHOLDS, {**_body(world), **change}), 422, "validation_failed")
    assert field in details, details


def test_required_household_fields(world):
    details = assert_error(world.coordinator.post(HOUSEHOLDS, {}), 422, "validation_failed")
    assert {"area_id", "address"} <= set(details)


def test_the_longest_allowed_values_are_accepted(world):
    response = world.coordinator.post(HOUSEHOLDS, _body(world, address="路" * 200, notes="记" * 20000,
                                                        tags=[f"标签{i}" for i in range(50)]))
    assert response.status_code == 201
    assert len(response.get_json()["notes"]) == 20000 and len(response.get_json()["tags"]) == 50


# --- read and search --------------------------------------------------------------------------------


def test_get_a_household_with_its_pairing_and_version(world):
    household = world.household(member="m1")
    body = world.coordinator.get(f"{HOUSEHOLDS}/{household['id']}").get_json()
    assert body["member_id"] == world.users["m1"]["id"] and body["version"] == 1
    assert world.admin.get(f"{HOUSEHOLDS}/{household['id']}").status_code == 200


def test_households_out_of_scope_read_as_404(world):
    household = world.household()
    path = f"{HOUSEHOLDS}/{household['id']}"
    assert_error(world.other_coordinator.get(path), 404, "not_found")
    assert_error(world.other_coordinator.patch(path, {"base_version": 1, "notes": "越界"}), 404, "not_found")
    assert_error(world.other_coordinator.put(f"{path}/pairing", {"member_id": None}), 404, "not_found")
    for missing in (f"{HOUSEHOLDS}/{uuid.uuid4()}", f"{HOUSEHOLDS}/not-a-uuid"):
        assert_error(world.coordinator.get(missing), 404, "not_found")
    assert world.coordinator.get(path).get_json()["notes"] is None  # nothing changed


def _search(api, query=""):
    response = api.get(f"{HOUSEHOLDS}?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_search_by_area_subtree(world):
    grid2 = world.coordinator.post("/api/v1/areas", {"name": "第二网格", "kind": "grid",
                                                     "parent_id": world.community["id"]}).get_json()
    building2 = world.coordinator.post("/api/v1/areas", {"name": "5号楼", "kind": "building",
                                                         "parent_id": grid2["id"]}).get_json()
    in_first = world.household("幸福路1号")
    in_second = world.household("和平里2号", area=building2)
    world.household("别处9号", area=world.other_building, by=world.admin)

    def ids(query):
        return {h["id"] for h in _search(world.coordinator, query)["items"]}

    assert ids("") == {in_first["id"], in_second["id"]}
    assert ids(f"area_id={world.community['id']}") == {in_first["id"], in_second["id"]}
    assert ids(f"area_id={world.grid['id']}") == {in_first["id"]}
    assert ids(f"area_id={world.building['id']}") == {in_first["id"]}
    assert ids(f"area_id={grid2['id']}") == {in_second["id"]}
    assert_error(world.coordinator.get(f"{HOUSEHOLDS}?area_id={world.other_building['id']}"), 404, "not_found")
    assert_error(world.coordinator.get(f"{HOUSEHOLDS}?area_id=nope"), 422, "validation_failed")
    assert _search(world.admin)["total"] == 3
    assert [h["address"] for h in _search(world.other_coordinator)["items"]] == ["别处9号"]


def test_search_by_address_or_head_name_in_chinese(world):
    world.household("幸福路1号", head_name="王秀英")
    world.household("光明街3号", head_name="张建国")
    world.household("团结巷5号", head_name="李幸福")

    def addresses(q):
        from urllib.parse import quote

        return sorted(h["address"] for h in _search(world.coordinator, f"q={quote(q)}")["items"])

    assert addresses("幸福") == ["团结巷5号", "幸福路1号"]  # address of one, head name of the other
    assert addresses("建国") == ["光明街3号"]
    assert addresses("3号") == ["光明街3号"]
    assert addresses("没有") == []
    assert addresses("%") == addresses("_") == addresses("\\") == []  # LIKE wildcards are plain text here
    world.household("百分百_路\\1号", head_name="赵")
    assert addresses("百分百_") == addresses("_路\\") == ["百分百_路\\1号"]


def test_search_answers_pairings(world):
    world.household("幸福路1号", member="m1")
    world.household("幸福路2号")
    items = {h["address"]: h for h in _search(world.coordinator)["items"]}
    assert items["幸福路1号"]["member_id"] == world.users["m1"]["id"] and items["幸福路2号"]["member_id"] is None
    assert set(items["幸福路1号"]) == RECORD_FIELDS


def test_search_pages(world):
    for n in range(5):
        world.household(f"幸福路{n}号")
    first = _search(world.coordinator, "per_page=2")
    assert_page(first, 1, 2)
    assert first["total"] == 5
    pages = [_search(world.coordinator, f"per_page=2&page={p}")["items"] for p in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({h["id"] for page in pages for h in page}) == 5
    assert _search(world.coordinator, "per_page=2&page=9")["items"] == []


@pytest.mark.parametrize("query, field", [
    ("per_page=0", "per_page"),
    ("per_page=1001", "per_page"),
    ("page=0", "page"),
    ("page=x", "page"),
    ("q=" + "字" * 201, "q"),
    ("q=%00", "q"),
    ("member_id=m1", "member_id"),
    ("sort=address", "sort"),
])
def test_search_arguments_are_validated(world, query, field):
    details = assert_error(world.coordinator.get(f"{HOUSEHOLDS}?{query}"), 422, "validation_failed")
    assert field in details


# --- online edits -----------------------------------------------------------------------------------


def test_patch_edits_and_bumps_the_version(world):
    household = world.household()
    response = world.coordinator.patch(f"{HOUSEHOLDS}/{household['id']}",
                                       {"base_version": 1, "notes": "新装了扶手", "tags": ["独居老人"]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == 2 and body["notes"] == "新装了扶手" and body["tags"] == ["独居老人"]
    assert body["conflicts"] == []
    assert world.coordinator.get(f"{HOUSEHOLDS}/{household['id']}").get_json()["version"] == 2


def test_a_stale_patch_is_merged_like_a_tablets_edit(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    result = tablet.push([op("household", household["id"], "update", {"phone": "13800000000", "notes": "平板写的"},
                             base_version=1, recorded_at="2026-12-01T09:00:00+08:00")])
    assert result["results"][0]["status"] == "applied"
    response = world.coordinator.patch(f"{HOUSEHOLDS}/{household['id']}",
                                       {"base_version": 1, "head_name": "王建华", "notes": "网上改的"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["head_name"] == "王建华" and body["phone"] == "13800000000"  # both sides' fields kept
    assert [c["field"] for c in body["conflicts"]] == ["notes"]
    assert body["version"] == 3


def test_patch_reaches_the_paired_tablet(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.pull_all()
    world.coordinator.patch(f"{HOUSEHOLDS}/{household['id']}", {"base_version": 1, "address": "幸福路1号（新）"})
    changes = tablet.pull_all()
    assert [(c["entity"], c["data"]["address"]) for c in changes] == [("household", "幸福路1号（新）")]


@pytest.mark.parametrize("body, field", [
    ({"notes": "x"}, "base_version"),
    ({"base_version": 0, "notes": "x"}, "base_version"),
    ({"base_version": "1", "notes": "x"}, "base_version"),
    ({"base_version": 1, "address": ""}, "address"),
    ({"base_version": 1, "address": None}, "address"),
    ({"base_version": 1, "notes": "记" * 20001}, "notes"),
    ({"base_version": 1, "offline_served": "false"}, "offline_served"),
    ({"base_version": 1, "member_id": None}, "member_id"),
    ({"base_version": 1, "owner": "me"}, "owner"),
])
def test_patch_input_is_validated(world, body, field):
    household = world.household()
    details = assert_error(world.coordinator.patch(f"{HOUSEHOLDS}/{household['id']}", body), 422,
                           "validation_failed")
    assert field in details


def test_patch_cannot_move_a_household_to_another_area_or_run_ahead(world):
    household = world.household()
    path = f"{HOUSEHOLDS}/{household['id']}"
    grid_only = world.coordinator.patch(path, {"base_version": 1, "area_id": world.grid["id"]})
    assert "area_id" in assert_error(grid_only, 422, "validation_failed")
    ahead = world.coordinator.patch(path, {"base_version": 5, "notes": "x"})
    assert "base_version" in assert_error(ahead, 422, "validation_failed")


# --- pairing ----------------------------------------------------------------------------------------


def _pair(world, household, member, by=None):
    member_id = world.users[member]["id"] if member else None
    return (by or world.coordinator).put(f"{HOUSEHOLDS}/{household['id']}/pairing", {"member_id": member_id})


def test_pairing_moves_a_household_between_members_scopes(world):
    first, second = world.tablet("m1"), world.tablet("m2")
    household = world.household()
    resident_id = str(uuid.uuid4())
    response = _pair(world, household, "m1")
    assert response.status_code == 200 and response.get_json()["member_id"] == world.users["m1"]["id"]
    first.push([op("resident", resident_id, data={"household_id": household["id"], "name": "王秀英"})])
    first.pull_all()
    assert ("household", household["id"]) in first.replica and ("resident", resident_id) in first.replica
    second.pull_all()
    assert ("household", household["id"]) not in second.replica

    response = _pair(world, household, "m2")
    assert response.status_code == 200 and response.get_json()["member_id"] == world.users["m2"]["id"]
    evicted = first.pull_all()
    assert {(c["entity"], c["id"], c["action"]) for c in evicted} >= {
        ("household", household["id"], "evict"), ("resident", resident_id, "evict")}
    assert first.replica == {}
    second.pull_all()
    assert second.replica[("household", household["id"])]["member_id"] == world.users["m2"]["id"]
    assert second.replica[("resident", resident_id)]["name"] == "王秀英"
    # m1's tablet can no longer change it
    result = first.push([op("household", household["id"], "update", {"notes": "越权"}, base_version=1)])
    assert result["results"][0]["status"] == "rejected"

    response = _pair(world, household, None)
    assert response.status_code == 200 and response.get_json()["member_id"] is None
    second.pull_all()
    assert second.replica == {}
    assert world.coordinator.get(f"{HOUSEHOLDS}/{household['id']}").get_json()["member_id"] is None


def test_pairing_is_idempotent(world):
    household = world.household(member="m1")
    again = _pair(world, household, "m1")
    assert again.status_code == 200 and again.get_json()["member_id"] == world.users["m1"]["id"]


def test_search_by_member_and_unpaired(world):
    paired = world.household("幸福路1号", member="m1")
    alone = world.household("幸福路2号")
    by_member = _search(world.coordinator, f"member_id={world.users['m1']['id']}")["items"]
    assert [h["id"] for h in by_member] == [paired["id"]]
    assert [h["id"] for h in _search(world.coordinator, "unpaired=true")["items"]] == [alone["id"]]


def test_only_active_members_in_scope_can_be_paired(world):
    household = world.household()
    assert "member_id" in assert_error(_pair(world, household, "coord"), 422, "validation_failed")
    outsider = world.add_member("outsider", area=world.other_building, by=world.other_coordinator)
    assert outsider
    assert_error(_pair(world, household, "outsider"), 404, "not_found")
    response = world.coordinator.put(f"{HOUSEHOLDS}/{household['id']}/pairing", {"member_id": str(uuid.uuid4())})
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("body, field", [
    ({}, "member_id"),
    ({"member_id": "m1"}, "member_id"),
    ({"member_id": 5}, "member_id"),
    ({"member_id": None, "reason": "搬家"}, "reason"),
])
def test_pairing_input_is_validated(world, body, field):
    household = world.household()
    response = world.coordinator.put(f"{HOUSEHOLDS}/{household['id']}/pairing", body)
    assert field in assert_error(response, 422, "validation_failed")


def test_a_household_a_tablet_creates_is_paired_with_its_member(world):
    tablet = world.tablet("m1")
    household_id = str(uuid.uuid4())
    result = tablet.push([op("household", household_id, data={"area_id": world.building["id"], "address": "新搬来"})])
    assert result["results"][0]["status"] == "applied"
    body = world.coordinator.get(f"{HOUSEHOLDS}/{household_id}").get_json()
    assert body["member_id"] == world.users["m1"]["id"]
