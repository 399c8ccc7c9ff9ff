"""Photos and documents: upload, resume, hash and size checks, scope, ops before their files, the purge."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import random
import uuid

import pytest
from PIL import Image
from sqlalchemy import update

from client.attachments import Answer, Uploader
from client.transport import NetworkError
from server.extensions import db
from server.storage import current_storage
from sync.models import Attachment

from ..conftest import op

BASE = "/api/v1/attachments"


def blob(size: int = 50_000) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


def jpeg() -> tuple[bytes, str]:
    image = Image.new("RGB", (1200, 800), (random.randrange(256), 120, 30))
    out = io.BytesIO()
    image.save(out, "JPEG")
    data = out.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def put(api, sha, body: bytes, start: int | None = None, total: int | None = None, **kw):
    headers = {}
    if start is not None:
        headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{total}"
    return api.put(f"{BASE}/{sha}", data=body, headers=headers, **kw)


def head(api, sha):
    return api.client.head(f"{BASE}/{sha}", headers=api._headers())


def visit_with(household_id: str, *refs: tuple[str, str]) -> dict:
    return {"household_id": household_id, "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine",
            "summary": "扶手松了", "attachments": [{"sha256": sha, "mime": mime, "name": "照片.jpg"} for sha, mime in refs]}


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


@pytest.fixture
def field(world):
    """m1's tablet and a household paired with m1."""
    household = world.household(member="m1")
    return world.tablet("m1"), household


# --- upload ---------------------------------------------------------------------------------------


def test_upload_whole_file_then_head_and_get(world, field):
    tablet, household = field
    data, sha = jpeg()
    assert head(tablet, sha).status_code == 404
    assert head(tablet, sha).headers["Upload-Offset"] == "0"
    response = put(tablet, sha, data)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"sha256": sha, "received": len(data), "total": len(data), "complete": True}
    assert response.headers["Upload-Offset"] == str(len(data))
    answer = head(tablet, sha)
    assert answer.status_code == 200 and answer.headers["Upload-Offset"] == str(len(data))
    # Stored once, whatever else sends it: a second PUT answers at once.
    assert put(world.tablet("m2"), sha, data).get_json()["complete"] is True
    # Held, but no record refers to it yet: nobody may read it.
    assert tablet.get(f"{BASE}/{sha}").status_code == 404
    visit_id = str(uuid.uuid4())
    assert tablet.push([op("visit", visit_id, data=visit_with(household["id"], (sha, "image/jpeg")))]
                       )["results"][0]["status"] == "applied"
    got = tablet.get(f"{BASE}/{sha}")
    assert got.status_code == 200 and got.data == data
    assert got.mimetype == "image/jpeg"
    assert got.headers["ETag"].strip('"') == sha
    assert "sandbox" in got.headers["Content-Security-Policy"]


@pytest.mark.parametrize("attempt", range(3))
def test_resume_after_a_cut_at_a_random_byte(world, field, attempt):
    tablet, household = field
    data, sha = blob(200_000 + attempt * 777)
    cut = random.randrange(1, len(data))
    # The connection dies after ``cut`` bytes of a body announced whole: what arrived is kept.
    response = tablet.client.put(f"{BASE}/{sha}", input_stream=io.BytesIO(data[:cut]), headers=tablet._headers(),
                                 environ_overrides={"CONTENT_LENGTH": str(len(data))})
    assert response.status_code == 400  # werkzeug's ClientDisconnected; nobody listens, the next HEAD tells
    answer = head(tablet, sha)
    assert answer.status_code == 404
    assert answer.headers["Upload-Offset"] == str(cut)
    assert answer.headers["Upload-Length"] == str(len(data))
    # A piece that does not continue where the server stopped is refused with the offset to resume at.
    wrong = put(tablet, sha, data[cut - 1:], start=cut - 1, total=len(data))
    assert wrong.status_code == 409 and error_code(wrong) == "conflict"
    assert wrong.get_json()["error"]["details"]["offset"] == cut
    assert wrong.headers["Upload-Offset"] == str(cut)
    done = put(tablet, sha, data[cut:], start=cut, total=len(data))
    assert done.status_code == 200 and done.get_json()["complete"] is True
    tablet.push([op("visit", str(uuid.uuid4()), data=visit_with(household["id"], (sha, "image/jpeg")))])
    assert tablet.get(f"{BASE}/{sha}").data == data


def test_pieces_in_order_and_a_larger_file_than_other_bodies(world, field):
    """3 MiB is past the 2 MiB of other bodies and within the attachments' own limit."""
    tablet, _household = field
    data, sha = blob(3 * 1024 * 1024)
    step = 1024 * 1024
    for start in range(0, len(data), step):
        response = put(tablet, sha, data[start:start + step], start=start, total=len(data))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["received"] == min(start + step, len(data))
    assert head(tablet, sha).status_code == 200


def test_hash_mismatch_discards_the_upload(world, field):
    tablet, _household = field
    data, sha = blob()
    response = put(tablet, sha, data[:-1] + bytes([data[-1] ^ 1]))
    assert response.status_code == 422 and error_code(response) == "hash_mismatch"
    assert head(tablet, sha).headers["Upload-Offset"] == "0"
    assert put(tablet, sha, data).get_json()["complete"] is True


def test_size_limit(app, world, field):
    tablet, _household = field
    data, sha = blob(10 * 1024 * 1024 + 1)
    response = put(tablet, sha, data)
    assert response.status_code == 413 and error_code(response) == "body_too_large"
    # Announced in Content-Range: refused before a byte is read.
    response = put(tablet, sha, data[:1000], start=0, total=len(data))
    assert response.status_code == 413 and error_code(response) == "body_too_large"
    small, small_sha = blob(2000)
    app.config["ATTACHMENT_MAX_BYTES"] = 1000
    try:
        response = put(tablet, small_sha, small)
        assert response.status_code == 413 and error_code(response) == "body_too_large"
    finally:
        app.config["ATTACHMENT_MAX_BYTES"] = 10 * 1024 * 1024


@pytest.mark.parametrize("headers, field_name", [
    ({"Content-Range": "bytes 0-9"}, "Content-Range"),
    ({"Content-Range": "bytes 5-2/10"}, "Content-Range"),
    ({"Content-Range": "items 0-9/10"}, "Content-Range"),
    ({"Content-Range": "bytes 0-9/10"}, "Content-Length"),  # the body holds 4 bytes, not 10
])
def test_unreadable_content_range_is_validation_failed(world, field, headers, field_name):
    tablet, _household = field
    _data, sha = blob(10)
    response = tablet.put(f"{BASE}/{sha}", data=b"abcd", headers=headers)
    assert response.status_code == 422 and error_code(response) == "validation_failed"
    assert field_name in response.get_json()["error"]["details"]


def test_bad_hash_and_callers(world, field):
    tablet, _household = field
    data, sha = blob(100)
    assert error_code(put(tablet, "not-a-hash", data)) == "validation_failed"
    assert tablet.get(f"{BASE}/not-a-hash").status_code == 404
    assert error_code(put(world.coordinator, sha, data)) == "forbidden"  # uploads come from tablets
    anonymous = world.client.put(f"{BASE}/{sha}", data=data)
    assert anonymous.status_code == 401 and error_code(anonymous) == "unauthenticated"


# --- scope ----------------------------------------------------------------------------------------


def test_only_scopes_holding_a_referring_record_may_read(world, field):
    tablet, household = field
    data, sha = jpeg()
    put(tablet, sha, data)
    visit_id = str(uuid.uuid4())
    tablet.push([op("visit", visit_id, data=visit_with(household["id"], (sha, "image/jpeg")))])
    m2 = world.tablet("m2")
    assert m2.get(f"{BASE}/{sha}").status_code == 404  # another member
    assert world.other_coordinator.get(f"{BASE}/{sha}").status_code == 404  # another community
    assert world.other_coordinator.get(f"{BASE}/{sha}/thumbnail").status_code == 404
    assert world.coordinator.get(f"{BASE}/{sha}").status_code == 200
    assert world.admin.get(f"{BASE}/{sha}").status_code == 200
    # Re-pairing moves the photos with the household.
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m2"]["id"]})
    missing = tablet.get(f"{BASE}/{sha}")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    assert m2.get(f"{BASE}/{sha}").data == data
    # A deleted record no longer lends access to its files.
    world.coordinator.put(f"/api/v1/households/{household['id']}/pairing", {"member_id": world.users["m1"]["id"]})
    assert tablet.push([op("visit", visit_id, "delete", base_version=1)])["results"][0]["status"] == "applied"
    assert tablet.get(f"{BASE}/{sha}").status_code == 404
    assert world.coordinator.get(f"{BASE}/{sha}").status_code == 404


def test_thumbnail_for_the_console(world, field):
    tablet, household = field
    photo, photo_sha = jpeg()
    document, document_sha = blob(3000)
    put(tablet, photo_sha, photo)
    put(tablet, document_sha, document)
    tablet.push([op("visit", str(uuid.uuid4()), data=visit_with(
        household["id"], (photo_sha, "image/jpeg"), (document_sha, "text/html")))])
    thumb = world.coordinator.get(f"{BASE}/{photo_sha}/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.data))
    assert max(image.size) == 320 and image.size == (320, 213)
    assert world.coordinator.get(f"{BASE}/{photo_sha}/thumbnail").data == thumb.data  # kept, made once
    not_image = world.coordinator.get(f"{BASE}/{document_sha}/thumbnail")
    assert not_image.status_code == 404 and error_code(not_image) == "not_found"
    # A declared type that could run in the console's origin is served as plain bytes, to download.
    served = world.coordinator.get(f"{BASE}/{document_sha}")
    assert served.mimetype == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith("attachment")


# --- ops before their files -----------------------------------------------------------------------


def _pulled(tablet, entity, record_id):
    return [c for c in tablet.pull_all() if c["entity"] == entity and c["id"] == record_id]


def test_an_op_before_its_photos_lists_them_missing_until_they_come(world, field):
    tablet, household = field
    (first, first_sha), (second, second_sha) = jpeg(), blob(5000)
    tablet.pull_all()
    visit_id, log_id = str(uuid.uuid4()), str(uuid.uuid4())
    results = tablet.push([
        op("visit", visit_id, data=visit_with(household["id"], (first_sha, "image/jpeg"),
                                              (second_sha, "application/pdf"))),
        op("assistance_log", log_id, data={"household_id": household["id"], "category": "助餐",
                                           "occurred_at": "2026-12-01T09:00:00+08:00",
                                           "attachments": [{"sha256": second_sha, "mime": None, "name": None}]}),
    ])["results"]
    assert [r["status"] for r in results] == ["applied", "applied"]
    [change] = _pulled(tablet, "visit", visit_id)
    assert change["data"]["missing_attachments"] == [first_sha, second_sha] and change["version"] == 1
    assert world.coordinator.get(f"/api/v1/visits?member_id={world.users['m1']['id']}").get_json()[
        "items"][0]["missing_attachments"] == [first_sha, second_sha]

    put(tablet, first_sha, first)
    [change] = _pulled(tablet, "visit", visit_id)
    assert change["version"] == 2 and change["data"]["missing_attachments"] == [second_sha]
    assert tablet.replica[("visit", visit_id)]["missing_attachments"] == [second_sha]

    put(tablet, second_sha, second)
    changes = tablet.pull_all()
    by_id = {c["id"]: c for c in changes}
    assert by_id[visit_id]["version"] == 3 and by_id[visit_id]["data"]["missing_attachments"] == []
    assert by_id[log_id]["version"] == 2 and by_id[log_id]["data"]["missing_attachments"] == []
    # The author's later edit against the version it saw last merges cleanly.
    result = tablet.push([op("visit", visit_id, "update", {"summary": "扶手已报修"}, base_version=3)])["results"][0]
    assert result["status"] == "applied" and result["version"] == 4


def test_a_file_that_comes_first_is_never_listed_missing(world, field):
    tablet, household = field
    data, sha = jpeg()
    put(tablet, sha, data)
    visit_id = str(uuid.uuid4())
    tablet.push([op("visit", visit_id, data=visit_with(household["id"], (sha, "image/jpeg")))])
    [change] = _pulled(tablet, "visit", visit_id)
    assert change["data"]["missing_attachments"] == [] and change["version"] == 1


# --- the purge ------------------------------------------------------------------------------------


def _age(sha: str, hours: int) -> None:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    db.session.execute(update(Attachment).where(Attachment.sha256 == sha)
                       .values(completed_at=past, updated_at=past, created_at=past))
    db.session.commit()


def test_purge_removes_orphans_and_abandoned_uploads_only(app, world, field, runner):
    tablet, household = field
    (kept, kept_sha), (orphan, orphan_sha), (recent, recent_sha), (partial, partial_sha) = (
        blob(), blob(), blob(), blob())
    for data, sha in ((kept, kept_sha), (orphan, orphan_sha), (recent, recent_sha)):
        put(tablet, sha, data)
    put(tablet, partial_sha, partial[:100], start=0, total=len(partial))
    tablet.push([op("visit", str(uuid.uuid4()), data=visit_with(household["id"], (kept_sha, None)))])
    hours = app.config["ATTACHMENT_ORPHAN_HOURS"]
    for sha in (kept_sha, orphan_sha, partial_sha):
        _age(sha, hours + 1)
    _age(recent_sha, hours - 1)
    result = runner.invoke(args=["purge-attachments"])
    assert result.exit_code == 0, result.output
    assert "purged 1 unreferenced files and 1 unfinished uploads" in result.output
    storage = current_storage()
    assert storage.size(orphan_sha) is None and head(tablet, orphan_sha).status_code == 404
    assert storage.received(partial_sha) == 0 and head(tablet, partial_sha).headers["Upload-Offset"] == "0"
    assert storage.size(kept_sha) == len(kept) and head(tablet, kept_sha).status_code == 200
    assert storage.size(recent_sha) == len(recent)
    # The worker's sweep runs the same purge.
    from server.worker import run_sweeps

    _age(recent_sha, hours + 1)
    assert run_sweeps(db.session)["attachments"] == {"files": 1, "partials": 0}
    assert storage.size(recent_sha) is None


# --- the reference client -------------------------------------------------------------------------


class FlakyUploader(Uploader):
    """The reference client's uploader over the Flask test client, on a network that cuts pieces at a
    random byte and loses answers."""

    def __init__(self, tablet, rng):
        super().__init__("", tablet.token, piece_bytes=40_000, attempts=50, sleep=lambda _seconds: None)
        self.tablet, self.rng = tablet, rng
        self.cuts = self.lost = 0

    def request(self, method, path, body=None, headers=None):
        headers = {**self.tablet._headers(), **(headers or {})}
        client = self.tablet.client
        if method == "PUT" and body and self.rng.random() < 0.4:
            arrived = self.rng.randrange(0, len(body))
            client.put(path, input_stream=io.BytesIO(body[:arrived]), headers=headers,
                       environ_overrides={"CONTENT_LENGTH": str(len(body))})
            self.cuts += 1
            raise NetworkError("connection reset")
        response = client.open(path, method=method, data=body, headers=headers)
        if method == "PUT" and self.rng.random() < 0.2:
            self.lost += 1
            raise NetworkError("the answer was lost")
        return Answer(response.status_code, dict(response.headers), response.data)


def test_reference_client_uploads_through_a_flaky_network(world, field, figures):
    tablet, household = field
    rng = random.Random(20261201)
    data, sha = blob(700_000)
    uploader = FlakyUploader(tablet, rng)
    assert uploader.upload(data) == sha
    assert uploader.cuts > 0 and uploader.lost > 0
    figures(f"attachment client: {uploader.cuts} cut pieces and {uploader.lost} lost answers survived")
    assert head(tablet, sha).status_code == 200
    assert uploader.upload(data) == sha  # already held: one HEAD, nothing sent
    tablet.push([op("visit", str(uuid.uuid4()), data=visit_with(household["id"], (sha, "image/jpeg")))])
    assert tablet.get(f"{BASE}/{sha}").data == data


# --- the S3-compatible storage, end to end --------------------------------------------------------


@pytest.fixture
def s3_storage(app):
    """The app's storage swapped for S3 on a local moto server (127.0.0.1), where moto is installed."""
    server_module = pytest.importorskip("moto.server")
    import boto3

    from server.storage import S3Storage

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="lianhu-test")
    before = app.extensions.get("lianhu.storage")
    app.extensions["lianhu.storage"] = S3Storage("lianhu-test", prefix="lianhu", client=client)
    yield app.extensions["lianhu.storage"]
    app.extensions["lianhu.storage"] = before
    server.stop()


def test_resume_read_and_thumbnail_on_s3(world, field, s3_storage):
    tablet, household = field
    data, sha = jpeg()
    cut = random.randrange(1, len(data))
    tablet.client.put(f"{BASE}/{sha}", input_stream=io.BytesIO(data[:cut]), headers=tablet._headers(),
                      environ_overrides={"CONTENT_LENGTH": str(len(data))})
    assert head(tablet, sha).headers["Upload-Offset"] == str(cut)
    assert put(tablet, sha, data[cut:], start=cut, total=len(data)).get_json()["complete"] is True
    assert s3_storage.size(sha) == len(data)
    tablet.push([op("visit", str(uuid.uuid4()), data=visit_with(household["id"], (sha, "image/jpeg")))])
    assert tablet.get(f"{BASE}/{sha}").data == data
    assert world.coordinator.get(f"{BASE}/{sha}/thumbnail").mimetype == "image/jpeg"
