"""Review of visits: the decision reaches the visit's author in its pull, in scope or not."""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import op


def record_visit(tablet, household, summary="老人身体状况良好", visited_at="2026-11-30T09:00:00+08:00"):
    visit_id = str(uuid.uuid4())
    result = tablet.push([op("visit", visit_id, data={"household_id": household["id"], "visited_at": visited_at,
                                                      "kind": "routine", "summary": summary})])
    assert result["results"][0]["status"] == "applied", result
    return visit_id


def test_review_reaches_the_author_and_moves_the_review_state(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit_id = record_visit(tablet, household)
    tablet.pull_all()

    page = world.coordinator.get("/api/v1/visits?review=pending").get_json()
    assert [v["id"] for v in page["items"]] == [visit_id] and page["items"][0]["author_id"] == world.users["m1"]["id"]
    answer = world.coordinator.post(f"/api/v1/visits/{visit_id}/review", {"decision": "flagged", "comment": "请补充照片"})
    assert answer.status_code == 200, answer.get_json()
    review = answer.get_json()
    assert review["decision"] == "flagged" and review["summary"] == "老人身体状况良好"
    assert review["recipient_id"] == world.users["m1"]["id"] and review["reviewer_id"] == world.users["coord"]["id"]

    tablet.pull_all()
    assert tablet.replica[("review", review["id"])]["comment"] == "请补充照片"
    assert tablet.replica[("visit", visit_id)]["review_state"] == "flagged"
    assert world.coordinator.get("/api/v1/visits?review=flagged").get_json()["total"] == 1
    assert world.coordinator.get("/api/v1/visits?review=pending").get_json()["total"] == 0

    # reviewing again changes the one review: a new version, not a second record
    again = world.coordinator.post(f"/api/v1/visits/{visit_id}/review", {"decision": "approved"}).get_json()
    assert again["id"] == review["id"] and again["version"] == review["version"] + 1
    tablet.pull_all()
    assert tablet.replica[("review", review["id"])]["decision"] == "approved"
    assert tablet.replica[("visit", visit_id)]["review_state"] == "approved"


def test_review_reaches_the_author_after_the_household_moved_away(world):
    household = world.household(member="m1")
    author = world.tablet("m1")
    visit_id = record_visit(author, household)
    author.pull_all()
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    author.pull_all()
    assert ("visit", visit_id) not in author.replica

    review = world.coordinator.post(f"/api/v1/visits/{visit_id}/review", {"decision": "approved"}).get_json()
    author.pull_all()
    assert author.replica[("review", review["id"])]["summary"] == "老人身体状况良好"
    assert ("visit", visit_id) not in author.replica  # the review comes, the household's records do not
    newcomer = world.tablet("m2")
    newcomer.pull_all()
    assert ("review", review["id"]) not in newcomer.replica  # addressed to its author only
    assert newcomer.replica[("visit", visit_id)]["review_state"] == "approved"


def test_visit_filters(world):
    household = world.household(member="m1")
    other = world.household(address="幸福路2号", member="m2")
    first = record_visit(world.tablet("m1"), household, visited_at="2026-11-01T09:00:00+08:00")
    second = record_visit(world.tablet("m2"), other, visited_at="2026-11-20T09:00:00+08:00")
    get = lambda q: [v["id"] for v in world.coordinator.get(f"/api/v1/visits?{q}").get_json()["items"]]  # noqa: E731
    assert get("") == [second, first]
    assert get(f"member_id={world.users['m1']['id']}") == [first]
    assert get("from=2026-11-10T00:00:00Z") == [second]
    assert get("to=2026-11-10T00:00:00%2B08:00") == [first]
    assert get(f"area_id={world.building['id']}") == [second, first]
    assert world.other_coordinator.get("/api/v1/visits").get_json()["total"] == 0
    assert world.other_coordinator.post(f"/api/v1/visits/{first}/review", {"decision": "approved"}).status_code == 404


@pytest.mark.parametrize("query", ["review=done", "from=yesterday", "from=2026-11-01T00:00:00", "per_page=0",
                                   "member_id=x", "colour=red"])
def test_bad_visit_queries_are_422(world, query):
    answer = world.coordinator.get(f"/api/v1/visits?{query}")
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("body", [{"decision": "maybe"}, {}, {"decision": "approved", "comment": "x" * 20001},
                                  {"decision": "approved", "extra": 1}])
def test_bad_review_is_422(world, body):
    household = world.household(member="m1")
    visit_id = record_visit(world.tablet("m1"), household)
    assert world.coordinator.post(f"/api/v1/visits/{visit_id}/review", body).status_code == 422


def test_review_is_for_coordinators(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    visit_id = record_visit(tablet, household)
    assert tablet.post(f"/api/v1/visits/{visit_id}/review", {"decision": "approved"}).status_code == 403
    assert world.coordinator.post(f"/api/v1/visits/{uuid.uuid4()}/review", {"decision": "approved"}).status_code == 404
