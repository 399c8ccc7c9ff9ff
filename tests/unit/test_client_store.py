"""The reference client against a scripted server: outbox, batches, resends, pulls by version, wipes."""
from __future__ import annotations

import datetime as dt

import pytest

from client.store import Store
from client.tablet import Backoff, DeviceRevoked, SyncUnavailable, Tablet
from client.transport import ApiError, NetworkError

HH = "11111111-1111-4111-8111-111111111111"


class FakeServer:
    """Answers pushes with ``applied`` (or what ``verdict`` says) and pulls from a queue of pages."""

    def __init__(self):
        self.calls: list[tuple[str, str, dict | None]] = []
        self.pages: list[dict] = []
        self.faults: list[Exception] = []  # raised before answering
        self.lose_answers = 0  # the server acts, then the answer is lost
        self.push_error: ApiError | None = None
        self.verdict = lambda op: {"status": "applied", "version": (op["base_version"] or 0) + 1}
        self.base_url = "http://fake"

    def request(self, method, path, body=None, token=None):
        self.calls.append((method, path, body))
        if self.faults:
            raise self.faults.pop(0)
        if path.startswith("/api/v1/sync/push"):
            if self.push_error:
                error, self.push_error = self.push_error, None
                raise error
            answer = {"batch_id": body["batch_id"], "server_time": "2026-12-01T01:00:00Z",
                      "results": [{"op_id": op["op_id"], "conflicts": [], "error": None, **self.verdict(op)}
                                  for op in body["ops"]]}
        else:
            page = self.pages.pop(0) if self.pages else {"changes": [], "cursor": "c-end", "has_more": False}
            if isinstance(page, Exception):
                raise page
            answer = {"server_time": "2026-12-01T01:00:00Z", **page}
        if self.lose_answers:
            self.lose_answers -= 1
            raise NetworkError("answer lost")
        return answer

    def pushes(self):
        return [body for method, path, body in self.calls if path.startswith("/api/v1/sync/push")]

    def pulls(self):
        return [path for method, path, body in self.calls if path.startswith("/api/v1/sync/pull")]


def upsert(entity, record_id, version, **data):
    return {"entity": entity, "id": record_id, "action": "upsert", "version": version, "data": {"id": record_id, **data}}


@pytest.fixture
def server():
    return FakeServer()


@pytest.fixture
def tablet(tmp_path, server):
    store = Store(str(tmp_path / "tablet.db"))
    for key, value in {"server": "http://fake", "token": "device-token", "device_id": "d1",
                       "user": {"id": "u1", "username": "m1"}}.items():
        store.set_meta(key, value)
    clock = iter(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i) for i in range(10**6))
    t = Tablet(store, server, clock=lambda: next(clock), backoff=Backoff(attempts=4, sleep=lambda s: None))
    yield t
    store.close()


def with_household(tablet, server, version=3):
    server.pages.append({"changes": [upsert("household", HH, version, address="幸福路1号", tags=["独居"])],
                         "cursor": "c1", "has_more": False})
    tablet.sync()


def test_an_edit_carries_the_replicas_version_and_only_the_changed_fields(tablet, server):
    with_household(tablet, server, version=3)
    tablet.edit("household", HH, address="幸福路1号", notes="行动不便")
    assert tablet.store.view("household", HH)["notes"] == "行动不便"  # shown before it is sent
    tablet.sync()
    op = server.pushes()[0]["ops"][0]
    assert (op["action"], op["base_version"], op["data"]) == ("update", 3, {"notes": "行动不便"})
    assert tablet.store.counts()["outbox"] == 0


def test_a_lost_answer_is_resent_with_the_same_batch_id_and_a_fresh_client_time(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH, summary="身体状况良好")
    server.lose_answers = 1
    tablet.sync()
    first, second = server.pushes()
    assert first["batch_id"] == second["batch_id"] and first["ops"] == second["ops"]
    assert first["client_time"] != second["client_time"]
    assert tablet.store.counts()["outbox"] == 0


def test_an_unanswered_batch_waits_for_the_next_sync_and_is_sent_before_anything_new(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH)
    server.faults = [NetworkError("down")] * 4
    with pytest.raises(SyncUnavailable):
        tablet.sync()
    tablet.record_visit(HH)  # recorded while the first batch is in doubt
    tablet.sync()
    pushes = server.pushes()
    assert len({p["batch_id"] for p in pushes}) == 2
    assert len(pushes[-2]["ops"]) == 1 and len(pushes[-1]["ops"]) == 1
    assert pushes[-2]["batch_id"] == pushes[0]["batch_id"]


def test_batches_hold_at_most_the_limit(tablet, server):
    with_household(tablet, server)
    tablet.max_ops_per_batch = 3
    for _ in range(7):
        tablet.record_visit(HH)
    tablet.sync()
    assert [len(p["ops"]) for p in server.pushes()] == [3, 3, 1]


def test_a_batch_too_large_is_split_and_nothing_is_lost(tablet, server):
    with_household(tablet, server)
    for _ in range(4):
        tablet.record_visit(HH)
    server.push_error = ApiError(413, "batch_too_large", "too large")
    tablet.sync()
    sizes = [len(p["ops"]) for p in server.pushes()]
    assert sizes[0] == 4 and sum(sizes[1:]) == 4
    assert tablet.store.counts() == {"records": 5, "outbox": 0, "rejected": 0}


def test_an_edit_of_an_own_unsent_create_waits_for_the_creates_version(tablet, server):
    with_household(tablet, server)
    visit = tablet.record_visit(HH, summary="初稿")
    tablet.edit("visit", visit, summary="修改稿")
    tablet.sync()
    create, update = server.pushes()
    assert [op["action"] for op in create["ops"]] == ["create"]
    assert update["ops"][0]["base_version"] == 1  # the version the create's answer gave


def test_a_rejected_op_leaves_the_outbox_and_is_kept_as_rejected(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH)
    server.verdict = lambda op: {"status": "rejected", "version": None,
                                 "error": {"code": "forbidden", "message": "no", "details": {}}}
    report = tablet.sync()
    assert report.rejected == 1
    assert tablet.store.counts()["outbox"] == 0
    assert tablet.store.rejected()[0]["error"]["code"] == "forbidden"
    assert tablet.store.view_all("visit") == []


def test_pull_applies_by_version_deletes_and_evicts(tablet, server):
    with_household(tablet, server, version=3)
    server.pages += [
        {"changes": [upsert("household", HH, 2, address="旧地址"),
                     upsert("resident", "r1", 1, household_id=HH, name="李桂兰")], "cursor": "c2", "has_more": True},
        {"changes": [upsert("household", HH, 3, address="旧地址"),
                     {"entity": "resident", "id": "r1", "action": "delete", "version": 2, "data": None},
                     upsert("resident", "r1", 1, household_id=HH, name="李桂兰")], "cursor": "c3", "has_more": False},
    ]
    tablet.sync()
    assert tablet.store.replica() == {("household", HH): {"version": 3, "data": {
        "id": HH, "address": "幸福路1号", "tags": ["独居"]}}}
    assert server.pulls()[-1].endswith("cursor=c2")
    server.pages.append({"changes": [{"entity": "household", "id": HH, "action": "evict", "version": None,
                                      "data": None}], "cursor": "c4", "has_more": False})
    tablet.sync()
    assert tablet.store.replica() == {}


@pytest.mark.parametrize("code, status", [("cursor_expired", 410), ("invalid_cursor", 400)])
def test_an_unusable_cursor_starts_a_full_pull_that_drops_what_left_the_scope(tablet, server, code, status):
    with_household(tablet, server)
    server.pages.append({"changes": [upsert("resident", "r1", 1, household_id=HH, name="李桂兰")],
                         "cursor": "c2", "has_more": False})
    tablet.sync()
    server.pages += [ApiError(status, code), {"changes": [upsert("household", HH, 3, address="幸福路1号", tags=["独居"])],
                                              "cursor": "f1", "has_more": False}]
    report = tablet.sync()
    assert report.restarts == 1
    assert "cursor=" not in server.pulls()[-1]
    assert set(tablet.store.replica()) == {("household", HH)}  # r1 was not in the full pull: gone


def test_a_revoked_tablet_wipes_itself(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH)
    server.faults = [ApiError(401, "device_revoked", "revoked", {"wipe": True})]
    with pytest.raises(DeviceRevoked):
        tablet.sync()
    assert tablet.store.counts() == {"records": 0, "outbox": 0, "rejected": 0}
    assert tablet.token is None


def test_overload_is_retried_but_a_refusal_is_not(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH)
    server.faults = [ApiError(503, "unavailable", retry_after=0.0), ApiError(429, "rate_limited")]
    assert tablet.sync().retries == 2
    tablet.record_visit(HH)
    server.faults = [ApiError(422, "validation_failed")]
    with pytest.raises(ApiError):
        tablet.sync()
    assert tablet.store.counts()["outbox"] == 1  # kept for the next try
