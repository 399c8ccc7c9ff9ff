"""POST/GET /areas, POST/GET /users and POST /users/{id}/enrollment-codes, for every role and in scope."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from server.extensions import db
from sync.models import User
from tests.api.roles import DENIED, assert_denied, assert_error, assert_page, callers

AREAS = "/api/v1/areas"
USERS = "/api/v1/users"


# --- areas ------------------------------------------------------------------------------------------


def test_admin_creates_a_community_and_its_tree(world):
    community = world.admin.post(AREAS, {"name": "东风社区", "kind": "community", "parent_id": None})
    assert community.status_code == 201
    body = community.get_json()
    assert set(body) == {"id", "name", "kind", "parent_id"}
    assert body["name"] == "东风社区" and body["kind"] == "community" and body["parent_id"] is None
    uuid.UUID(body["id"])
    grid = world.admin.post(AREAS, {"name": "一网格", "kind": "grid", "parent_id": body["id"]})
    assert grid.status_code == 201 and grid.get_json()["parent_id"] == body["id"]


def test_a_community_may_omit_parent_id(world):
    response = world.admin.post(AREAS, {"name": "东风社区", "kind": "community"})
    assert response.status_code == 201 and response.get_json()["parent_id"] is None


def test_a_coordinator_adds_grids_and_buildings_inside_its_own_community(world):
    grid = world.coordinator.post(AREAS, {"name": "第三网格", "kind": "grid", "parent_id": world.community["id"]})
    assert grid.status_code == 201
    building = world.coordinator.post(AREAS, {"name": "7号楼", "kind": "building", "parent_id": grid.get_json()["id"]})
    assert building.status_code == 201
    names = {a["name"] for a in world.coordinator.get(AREAS).get_json()["items"]}
    assert {"第三网格", "7号楼"} <= names


def test_only_an_admin_creates_communities(world):
    response = world.coordinator.post(AREAS, {"name": "自立社区", "kind": "community", "parent_id": None})
    assert_error(response, 403, "forbidden")


def test_a_coordinator_cannot_add_areas_under_another_community(world):
    response = world.other_coordinator.post(AREAS, {"name": "越界网格", "kind": "grid",
                                                    "parent_id": world.community["id"]})
    assert_error(response, 404, "not_found")  # never reveals that the community exists


@pytest.mark.parametrize("role", sorted(DENIED))
def test_areas_are_for_coordinators_only(world, role):
    caller = callers(world)[role]
    assert_denied(caller.get(AREAS), role)
    assert_denied(caller.post(AREAS, {"name": "网格", "kind": "grid", "parent_id": world.community["id"]}), role)


def test_a_caller_without_a_token_learns_nothing_from_validation(world):
    """The token is checked before the body is read."""
    assert_error(world.client.post(AREAS, json={"bogus": True}), 401, "unauthenticated")
    assert_error(world.client.get(AREAS + "?per_page=0"), 401, "unauthenticated")


def _tree_rule_cases(world):
    return [
        ({"name": "楼", "kind": "building", "parent_id": world.community["id"]}, "parent_id"),
        ({"name": "网格", "kind": "grid", "parent_id": world.grid["id"]}, "parent_id"),
        ({"name": "网格", "kind": "grid", "parent_id": None}, "parent_id"),
        ({"name": "社区", "kind": "community", "parent_id": world.other_community["id"]}, "parent_id"),
    ]


def test_the_area_tree_is_community_grid_building(world):
    for body, field in _tree_rule_cases(world):
        details = assert_error(world.admin.post(AREAS, body), 422, "validation_failed")
        assert field in details, body


@pytest.mark.parametrize("body, field", [
    ({"kind": "grid", "parent_id": None}, "name"),
    ({"name": "网格", "parent_id": None}, "kind"),
    ({"name": "", "kind": "community"}, "name"),
    ({"name": "x" * 201, "kind": "community"}, "name"),
    ({"name": "a\x00b", "kind": "community"}, "name"),
    ({"name": 7, "kind": "community"}, "name"),
    ({"name": "社区", "kind": "district"}, "kind"),
    ({"name": "社区", "kind": "community", "parent_id": "not-a-uuid"}, "parent_id"),
    ({"name": "社区", "kind": "community", "parent_id": 12}, "parent_id"),
    ({"name": "社区", "kind": "community", "colour": "red"}, "colour"),
    ({"name": "社区", "kind": "community", "id": str(uuid.uuid4())}, "id"),
])
def test_area_input_is_validated(world, body, field):
    details = assert_error(world.admin.post(AREAS, body), 422, "validation_failed")
    assert field in details


def test_a_name_of_exactly_200_characters_is_accepted(world):
    response = world.admin.post(AREAS, {"name": "区" * 200, "kind": "community"})
    assert response.status_code == 201 and response.get_json()["name"] == "区" * 200


def test_an_unknown_parent_is_404(world):
    response = world.admin.post(AREAS, {"name": "网格", "kind": "grid", "parent_id": str(uuid.uuid4())})
    assert_error(response, 404, "not_found")


def test_get_areas_is_a_page_of_the_callers_subtree(world):
    mine = assert_page(world.coordinator.get(AREAS).get_json())
    assert {a["id"] for a in mine} == {world.community["id"], world.grid["id"], world.building["id"]}
    theirs = assert_page(world.other_coordinator.get(AREAS).get_json())
    assert world.other_community["id"] in {a["id"] for a in theirs}
    assert not {a["id"] for a in mine} & {a["id"] for a in theirs}
    everything = world.admin.get(AREAS).get_json()
    assert everything["total"] == 6
    assert all(set(a) == {"id", "name", "kind", "parent_id"} for a in everything["items"])


def test_get_areas_pages(world):
    seen = []
    for page in (1, 2, 3, 4):
        body = world.admin.get(f"{AREAS}?page={page}&per_page=2").get_json()
        items = assert_page(body, page, 2)
        assert body["total"] == 6
        seen += [a["id"] for a in items]
    assert len(seen) == 6 and len(set(seen)) == 6  # pages neither overlap nor skip


@pytest.mark.parametrize("query, field", [
    ("per_page=0", "per_page"),
    ("per_page=1001", "per_page"),
    ("page=0", "page"),
    ("page=-1", "page"),
    ("page=abc", "page"),
    ("per_page=1.5", "per_page"),
    ("colour=red", "colour"),
])
def test_page_arguments_out_of_range_are_422(world, query, field):
    details = assert_error(world.admin.get(f"{AREAS}?{query}"), 422, "validation_failed")
    assert field in details


def test_per_page_1000_is_allowed(world):
    assert_page(world.admin.get(f"{AREAS}?per_page=1000").get_json(), 1, 1000)


# --- users ------------------------------------------------------------------------------------------


def _member(world, username="new.member", area=None, **extra):
    return {"username": username, "display_name": "新党员 李四", "role": "member",
            "area_id": (area or world.grid)["id"], "password": "password-123", **extra}


def test_a_coordinator_adds_a_member_in_its_area(world):
    response = world.coordinator.post(USERS, _member(world))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "username", "display_name", "role", "area_id"}
    assert body["display_name"] == "新党员 李四" and body["area_id"] == world.grid["id"]
    stored = db.session.get(User, body["id"])
    assert stored.password_hash and "password-123" not in stored.password_hash
    assert world.login("new.member").get("/api/v1/areas").status_code == 403  # members have no console calls


def test_a_coordinator_may_not_add_coordinators_or_admins(world):
    for role in ("coordinator", "admin"):
        response = world.coordinator.post(USERS, _member(world, username=f"new.{role}", role=role))
        assert_error(response, 403, "forbidden")


def test_an_admin_adds_coordinators_and_admins(world):
    coordinator = world.admin.post(USERS, _member(world, username="grid.leader", role="coordinator"))
    assert coordinator.status_code == 201 and coordinator.get_json()["role"] == "coordinator"
    admin = world.admin.post(USERS, {"username": "second.admin", "display_name": "管理员", "role": "admin",
                                     "password": "password-123"})
    assert admin.status_code == 201 and admin.get_json()["area_id"] is None


def test_a_coordinator_cannot_add_a_member_in_another_community(world):
    response = world.other_coordinator.post(USERS, _member(world))
    assert_error(response, 404, "not_found")


def test_members_and_coordinators_need_an_area(world):
    details = assert_error(world.admin.post(USERS, _member(world, area_id=None)), 422, "validation_failed")
    assert "area_id" in details


def test_a_taken_username_is_409(world):
    assert world.coordinator.post(USERS, _member(world)).status_code == 201
    assert_error(world.coordinator.post(USERS, _member(world)), 409, "username_taken")
    # even when the first holder is outside the caller's scope: usernames are global
    assert_error(world.other_coordinator.post(USERS, _member(world, area=world.other_building)),
                 409, "username_taken")


@pytest.mark.parametrize("role", sorted(DENIED))
def test_users_are_for_coordinators_only(world, role):
    caller = callers(world)[role]
    assert_denied(caller.post(USERS, _member(world)), role)
    assert_denied(caller.get(USERS), role)


@pytest.mark.parametrize("change, field", [
    ({"username": "has space"}, "username"),
    ({"username": ""}, "username"),
    ({"username": "u" * 201}, "username"),
    ({"username": 42}, "username"),
    ({"display_name": ""}, "display_name"),
    ({"display_name": "名" * 201}, "display_name"),
    ({"display_name": "名\x00字"}, "display_name"),
    ({"role": "superuser"}, "role"),
    ({"area_id": "grid-1"}, "area_id"),
    ({"password": "short"}, "password"),
    ({"password": 12345678}, "password"),
    ({"is_admin": True}, "is_admin"),
    ({"id": str(uuid.uuid4())}, "id"),
])
def test_user_input_is_validated(world, change, field):
    details = assert_error(world.coordinator.post(USERS, {**_member(world), **change}), 422, "validation_failed")
    assert field in details


def test_required_user_fields(world):
    details = assert_error(world.coordinator.post(USERS, {}), 422, "validation_failed")
    assert {"username", "display_name", "role"} <= set(details)


def test_get_users_is_scoped_and_filtered(world):
    mine = assert_page(world.coordinator.get(USERS).get_json())
    assert {"coord", "m1", "m2"} <= {u["username"] for u in mine}
    assert "coord2" not in {u["username"] for u in mine}
    theirs = {u["username"] for u in world.other_coordinator.get(USERS).get_json()["items"]}
    assert theirs == {"coord2"}
    members = world.coordinator.get(f"{USERS}?role=member").get_json()
    assert {u["username"] for u in members["items"]} == {"m1", "m2"} and members["total"] == 2
    in_grid = world.coordinator.get(f"{USERS}?area_id={world.grid['id']}").get_json()["items"]
    assert {u["username"] for u in in_grid} == {"m1", "m2"}
    assert_error(world.other_coordinator.get(f"{USERS}?area_id={world.grid['id']}"), 404, "not_found")
    assert_error(world.coordinator.get(f"{USERS}?role=king"), 422, "validation_failed")
    assert_error(world.coordinator.get(f"{USERS}?area_id=nope"), 422, "validation_failed")


# --- enrollment codes -------------------------------------------------------------------------------


def _codes(world, username):
    return f"{USERS}/{world.users[username]['id']}/enrollment-codes"


def test_a_coordinator_issues_an_enrollment_code_for_a_member(world, app):
    response = world.coordinator.post(_codes(world, "m1"))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"code", "expires_at"}
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert body["expires_at"].endswith("Z")
    ttl = dt.timedelta(minutes=app.config["ENROLLMENT_CODE_TTL_MINUTES"])
    assert abs(expires - (dt.datetime.now(dt.timezone.utc) + ttl)) < dt.timedelta(minutes=1)
    assert len(body["code"].replace("-", "")) >= 10


def test_each_code_is_new(world):
    codes = {world.coordinator.post(_codes(world, "m1")).get_json()["code"] for _ in range(5)}
    assert len(codes) == 5


def test_an_admin_issues_codes_for_anyone(world):
    assert world.admin.post(_codes(world, "coord2")).status_code == 201


def test_enrollment_codes_for_users_out_of_scope_are_404(world):
    assert_error(world.other_coordinator.post(_codes(world, "m1")), 404, "not_found")
    assert_error(world.coordinator.post(_codes(world, "coord2")), 404, "not_found")
    assert_error(world.coordinator.post(f"{USERS}/{uuid.uuid4()}/enrollment-codes"), 404, "not_found")
    assert_error(world.coordinator.post(f"{USERS}/not-a-uuid/enrollment-codes"), 404, "not_found")


@pytest.mark.parametrize("role", sorted(DENIED))
def test_enrollment_codes_are_for_coordinators_only(world, role):
    assert_denied(callers(world)[role].post(_codes(world, "m1")), role)


def test_enrollment_codes_are_stored_only_as_hashes(world):
    code = world.coordinator.post(_codes(world, "m1")).get_json()["code"]
    db.session.rollback()
    from sync.models import EnrollmentCode

    rows = db.session.execute(select(EnrollmentCode.__table__)).all()
    stored = "\n".join(str(v) for row in rows for v in row)
    assert code not in stored and code.replace("-", "") not in stored
