"""Requests from other platforms (a hotline, the unified platform) through integration tokens: created by
admins, kept as hashes, scoped to an area, accepted by POST /requests alone, deduplicated by external id,
and flowing into the same loop so the answer reaches the household in person."""
from __future__ import annotations

import hashlib
import threading
import uuid

from server.extensions import db
from sync.models import Integration, utcnow
from tests.conftest import Api, op


def integration(world, area=None, name="12345热线"):
    response = world.admin.post("/api/v1/integrations", {"name": name, "area_id": (area or world.community)["id"]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body, Api(world.client, body["token"])


def hotline_request(caller, household, external_id="RX-2026-0001", **fields):
    return caller.post("/api/v1/requests", {"household_id": household["id"], "category": "供暖",
                                            "description": "暖气不热", "urgency": "urgent",
                                            "external_id": external_id, **fields})


def test_admins_create_integrations_whose_tokens_are_kept_as_hashes(world):
    body, _ = integration(world)
    stored = db.session.get(Integration, body["id"])
    assert stored.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in str(vars(stored))
    listed = world.admin.get("/api/v1/integrations").get_json()
    assert [i["id"] for i in listed["items"]] == [body["id"]] and "token" not in listed["items"][0]
    for caller in (world.coordinator, world.login("m1")):
        response = caller.post("/api/v1/integrations", {"name": "x", "area_id": world.community["id"]})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"


def test_the_same_external_id_answers_the_same_request(world):
    household = world.household(member="m1")
    _, hotline = integration(world)
    first = hotline_request(hotline, household)
    assert first.status_code == 201, first.get_json()
    request = first.get_json()
    assert (request["source"], request["external_id"], request["status"], request["urgency"]) == \
        ("integration", "RX-2026-0001", "open", "urgent")
    again = hotline_request(hotline, household, description="暖气不热（重复来电）")
    assert again.status_code == 200 and again.get_json()["id"] == request["id"]
    assert again.get_json()["description"] == "暖气不热"  # nothing recorded twice
    other = hotline_request(hotline, household, external_id="RX-2026-0002")
    assert other.status_code == 201 and other.get_json()["id"] != request["id"]
    # another platform's id space is its own
    _, platform = integration(world, name="一网统管")
    assert hotline_request(platform, household).status_code == 201
    listed = world.coordinator.get(f"/api/v1/requests?household_id={household['id']}").get_json()
    assert listed["total"] == 3


def test_an_integration_reaches_its_own_area_and_post_requests_alone(world):
    household = world.household()
    elsewhere = world.household("和平路9号", area=world.other_building, by=world.other_coordinator)
    body, hotline = integration(world)
    missing = hotline_request(hotline, {"id": str(uuid.uuid4())})
    outside = hotline_request(hotline, elsewhere)
    assert outside.status_code == missing.status_code == 404
    assert outside.get_json()["error"]["code"] == missing.get_json()["error"]["code"] == "not_found"
    without_id = hotline.post("/api/v1/requests", {"household_id": household["id"], "category": "供暖",
                                                   "description": "暖气不热"})
    assert without_id.status_code == 422 and "external_id" in without_id.get_json()["error"]["details"]
    # a coordinator does not send external ids
    desk = world.coordinator.post("/api/v1/requests", {"household_id": household["id"], "category": "供暖",
                                                       "description": "暖气不热", "external_id": "X"})
    assert desk.status_code == 422
    for method, path in (("get", "/api/v1/requests"), ("get", f"/api/v1/households/{household['id']}"),
                         ("get", "/api/v1/sync/pull"), ("get", "/api/v1/registrations")):
        response = getattr(hotline, method)(path)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthenticated", path
    assert world.admin.post(f"/api/v1/integrations/{body['id']}/revoke").status_code == 200
    revoked = hotline_request(hotline, household, external_id="RX-9")
    assert revoked.status_code == 401 and revoked.get_json()["error"]["code"] == "unauthenticated"


def test_a_request_from_an_integration_closes_the_loop_at_the_household(world):
    household = world.household(member="m1")
    _, hotline = integration(world)
    request = hotline_request(hotline, household).get_json()
    tablet = world.tablet("m1")
    tablet.pull_all()
    assert tablet.replica[("request", request["id"])]["source"] == "integration"

    resolved = world.coordinator.post(f"/api/v1/requests/{request['id']}/resolve", {"resolution": "已联系供热公司维修"})
    assert resolved.status_code == 200, resolved.get_json()
    tablet.pull_all()
    tasks = [data for (entity, _), data in tablet.replica.items() if entity == "task"]
    assert [(t["kind"], t["request_id"], t["status"]) for t in tasks] == [("deliver_feedback", request["id"], "open")]
    assert "已联系供热公司维修" in tasks[0]["message"]

    now = utcnow().isoformat()
    results = tablet.push([op("request_event", str(uuid.uuid4()), data={
        "request_id": request["id"], "action": "feedback_delivered", "channel": "in_person", "satisfaction": 4,
        "occurred_at": now}, recorded_at=now)], client_time=now)["results"]
    assert results[0]["status"] == "applied", results
    closed = world.coordinator.get(f"/api/v1/requests/{request['id']}").get_json()
    assert (closed["status"], closed["satisfaction"], closed["task"]["status"]) == ("closed", 4, "done")
    # the platform asking again about its request is answered the closed request
    again = hotline_request(hotline, household)
    assert again.status_code == 200 and again.get_json()["status"] == "closed"


def test_the_same_external_id_sent_twice_at_once_is_recorded_once(world, app):
    household = world.household(member="m1")
    body, _ = integration(world)
    barrier, answers, errors = threading.Barrier(4), [], []

    def send():
        try:
            caller = Api(app.test_client(), body["token"])
            barrier.wait()
            answers.append(hotline_request(caller, household, external_id="RX-RACE"))
        except Exception as exc:  # a thread's failure must fail the test
            errors.append(exc)

    db.session.commit()  # hold no transaction here: on SQLite it would keep the one write lock
    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.get_json() for a in answers]
    assert len({a.get_json()["id"] for a in answers}) == 1
    db.session.commit()
    assert world.coordinator.get(f"/api/v1/requests?household_id={household['id']}").get_json()["total"] == 1
