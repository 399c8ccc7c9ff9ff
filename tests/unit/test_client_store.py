"""The reference client against a scripted server: outbox, batches, resends, pulls by version, wipes."""
from __future__ import annotations

import datetime as dt

import pytest

from client.attachments import UploadFailed, sha256_of
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
        self.files: dict[str, bytes] = {}  # what the uploads delivered
        self.upload_faults: list[Exception] = []

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

    def uploads(self):
        return [path for method, path, body in self.calls if method == "UPLOAD"]

    def pushes(self):
        return [body for method, path, body in self.calls if path.startswith("/api/v1/sync/push")]

    def pulls(self):
        return [path for method, path, body in self.calls if path.startswith("/api/v1/sync/pull")]


class FakeUploader:
    """Stands for ``client.attachments.Uploader`` (tested over a cutting network in tests/api): it logs
    each upload in the server's call list, so tests can see it came before the push, and fails on cue."""

    def __init__(self, server: FakeServer, token: str):
        self.server, self.token = server, token

    def upload(self, data: bytes, sha256: str | None = None) -> str:
        sha = sha256 or sha256_of(data)
        assert sha == sha256_of(data) and self.token == "device-token"
        self.server.calls.append(("UPLOAD", sha, None))
        if self.server.upload_faults:
            raise self.server.upload_faults.pop(0)
        self.server.files[sha] = data
        return sha


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
    t = Tablet(store, server, clock=lambda: next(clock), backoff=Backoff(attempts=4, sleep=lambda s: None),
               uploader=lambda base_url, token: FakeUploader(server, token))
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
    assert tablet.store.counts() == {"records": 5, "outbox": 0, "rejected": 0, "uploads_waiting": 0}


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
    assert tablet.store.counts() == {"records": 0, "outbox": 0, "rejected": 0, "uploads_waiting": 0}
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


# --- photos and documents -------------------------------------------------------------------------

PHOTO = "扶手松了".encode() * 1000
SHA = sha256_of(PHOTO)


def visit_change(visit_id, version, missing, author="u1"):
    return upsert("visit", visit_id, version, household_id=HH, kind="routine", author_id=author,
                  attachments=[{"sha256": SHA, "mime": "image/jpeg", "name": "扶手.jpg"}],
                  missing_attachments=missing)


def test_a_photo_is_uploaded_before_the_visit_that_refers_to_it(tablet, server):
    with_household(tablet, server)
    visit = tablet.record_visit(HH, summary="扶手松了", photos=[(PHOTO, "image/jpeg", "扶手.jpg")])
    assert tablet.store.counts()["uploads_waiting"] == 1
    report = tablet.sync()
    kinds = [method for method, path, body in server.calls[-3:]]
    assert kinds == ["UPLOAD", "POST", "GET"]  # the file, then the visit, then the pull
    assert server.files == {SHA: PHOTO}
    op = server.pushes()[-1]["ops"][0]
    assert op["id"] == visit and op["data"]["attachments"] == [{"sha256": SHA, "mime": "image/jpeg",
                                                                "name": "扶手.jpg"}]
    assert report.uploaded == 1 and tablet.store.counts()["uploads_waiting"] == 0
    server.calls.clear()
    tablet.sync()
    assert server.uploads() == []  # uploaded once; nothing lists it as missing


def test_a_cut_upload_does_not_hold_the_visit_back_and_is_retried_at_the_next_sync(tablet, server):
    with_household(tablet, server)
    visit = tablet.record_visit(HH, photos=[PHOTO])
    server.upload_faults = [UploadFailed("cut"), UploadFailed("cut again")]
    server.pages.append({"changes": [visit_change(visit, 1, [SHA])], "cursor": "c2", "has_more": False})
    report = tablet.sync()
    assert len(server.pushes()) == 1  # pushed anyway: the server lists the photo as missing meanwhile
    assert server.uploads() == [SHA, SHA]  # before the push, and again after the pull
    assert report.upload_failures == 2 and tablet.store.counts()["uploads_waiting"] == 1
    assert tablet.store.replica()[("visit", visit)]["data"]["missing_attachments"] == [SHA]
    # the network is back: the file goes up first, then the pull brings the record without it missing
    server.pages.append({"changes": [visit_change(visit, 2, [])], "cursor": "c3", "has_more": False})
    tablet.sync()
    assert server.files == {SHA: PHOTO} and tablet.store.counts()["uploads_waiting"] == 0
    assert tablet.store.replica()[("visit", visit)] == {"version": 2, "data": visit_change(visit, 2, [])["data"]}


def test_a_file_a_pulled_record_still_lists_as_missing_is_uploaded_again_then_pulled(tablet, server):
    with_household(tablet, server)
    visit = tablet.record_visit(HH, photos=[PHOTO])
    tablet.sync()
    server.files.clear()  # the server lost it (an upload that raced, an orphan purged)
    server.calls.clear()
    server.pages += [{"changes": [visit_change(visit, 2, [SHA])], "cursor": "c3", "has_more": False},
                     {"changes": [visit_change(visit, 3, [])], "cursor": "c4", "has_more": False}]
    tablet.sync()
    assert [method for method, path, body in server.calls] == ["GET", "UPLOAD", "GET"]
    assert server.files == {SHA: PHOTO}
    assert tablet.store.replica()[("visit", visit)]["data"]["missing_attachments"] == []


def test_photos_added_to_a_visit_later_are_an_update_of_its_attachments(tablet, server):
    with_household(tablet, server)
    visit = tablet.record_visit(HH, photos=[PHOTO])
    second = b"\x89PNG second photo"
    tablet.add_photos("visit", visit, [PHOTO, (second, "image/png", None)])  # the first is not added twice
    tablet.sync()
    create, update = server.pushes()[-2:]
    assert [ref["sha256"] for ref in update["ops"][0]["data"]["attachments"]] == [SHA, sha256_of(second)]
    assert set(server.files) == {SHA, sha256_of(second)}
    with pytest.raises(ValueError):
        tablet.add_photos("household", HH, [PHOTO])


def test_a_file_the_server_refuses_is_kept_but_not_retried(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH, photos=[PHOTO])
    server.upload_faults = [ApiError(413, "body_too_large", "at most 10 MiB")]
    report = tablet.sync()
    assert report.refused_files == 1 and len(server.pushes()) == 1
    assert tablet.store.file_states() == {SHA: "refused"} and tablet.store.file(SHA) == PHOTO
    server.calls.clear()
    tablet.sync()
    assert server.uploads() == []


def test_a_tablet_revoked_while_uploading_wipes_its_photos_too(tablet, server):
    with_household(tablet, server)
    tablet.record_visit(HH, photos=[PHOTO])
    server.upload_faults = [ApiError(401, "device_revoked", "revoked", {"wipe": True})]
    with pytest.raises(DeviceRevoked):
        tablet.sync()
    assert tablet.store.file(SHA) is None and tablet.store.files() == []
    assert server.pushes() == []


def test_the_command_line_records_a_visit_with_a_photo_offline(tablet, server, tmp_path, capsys):
    from client.__main__ import main

    with_household(tablet, server)
    photo = tmp_path / "扶手.jpg"
    photo.write_bytes(PHOTO)
    assert main(["--store", tablet.store.path, "record-visit", "--household", HH, "--summary", "扶手松了",
                 "--photo", str(photo)]) == 0
    assert "1 op(s) waiting" in capsys.readouterr().out
    op = tablet.store.outbox()[0]  # the command wrote the same SQLite file
    assert op.data["attachments"] == [{"sha256": SHA, "mime": "image/jpeg", "name": "扶手.jpg"}]
    assert tablet.store.file(SHA) == PHOTO
