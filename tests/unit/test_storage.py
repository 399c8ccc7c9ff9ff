"""One contract for every attachment storage: the local file system, and S3 against a local moto server
(on 127.0.0.1, skipped where moto is not installed)."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid

import pytest

from server.storage import FileSystemStorage, S3Storage
from sync.errors import HashMismatchError, UploadOffsetError


@pytest.fixture(scope="module")
def s3_endpoint():
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def storage(request, tmp_path, monkeypatch):
    if request.param == "filesystem":
        return FileSystemStorage(tmp_path / "attachments")
    endpoint = request.getfixturevalue("s3_endpoint")
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    bucket = f"lianhu-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3Storage(bucket, prefix="tenant-a", client=client)


def content(size=300_000):
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


def pieces(data, size=65536):
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_whole_file(storage):
    data, sha = content()
    assert storage.size(sha) is None and storage.received(sha) == 0
    assert storage.write_at(sha, 0, pieces(data)) == len(data)
    assert storage.size(sha) is None  # not complete until its hash is checked
    assert storage.finish(sha) == len(data)
    assert storage.size(sha) == len(data) and storage.received(sha) == 0
    with storage.open(sha) as f:
        assert f.read() == data
    assert list(storage.partials()) == []


def test_a_cut_keeps_what_arrived_and_resumes(storage):
    data, sha = content()
    cut = 123_457

    def broken():
        yield data[:100_000]
        yield data[100_000:cut]
        raise ConnectionError("the network went away")

    with pytest.raises(ConnectionError):
        storage.write_at(sha, 0, broken())
    assert storage.received(sha) == cut
    with pytest.raises(UploadOffsetError) as offset:
        storage.write_at(sha, cut + 10, [data[cut + 10:]])
    assert offset.value.details["offset"] == cut
    assert storage.write_at(sha, cut, pieces(data[cut:])) == len(data)
    assert storage.finish(sha) == len(data)
    with storage.open(sha) as f:
        assert f.read() == data


def test_overlapping_uploads_of_the_same_file_agree(storage):
    """Two tablets sending the same photo: the bytes at each offset are the same, so overlap is harmless."""
    data, sha = content()
    storage.write_at(sha, 0, [data[:200_000]])
    storage.write_at(sha, 150_000, [data[150_000:]])  # began when the other had 150,000 bytes in
    assert storage.received(sha) == len(data)
    assert storage.finish(sha) == len(data)
    assert storage.finish(sha) == len(data)  # a second finisher finds it done
    with storage.open(sha) as f:
        assert f.read() == data


def test_hash_mismatch_discards(storage):
    data, sha = content(1000)
    storage.write_at(sha, 0, [data[:-1] + b"\x00"])
    with pytest.raises(HashMismatchError):
        storage.finish(sha)
    assert storage.received(sha) == 0 and storage.size(sha) is None


def test_partials_delete_and_derived(storage):
    data, sha = content(5000)
    other, other_sha = content(5000)
    storage.write_at(other_sha, 0, [other[:10]])
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    [(listed, written_at)] = list(storage.partials())
    assert listed == other_sha and written_at > before
    storage.discard_partial(other_sha)
    assert storage.received(other_sha) == 0 and list(storage.partials()) == []
    storage.write_at(sha, 0, [data])
    storage.finish(sha)
    key = f"{sha}.thumb320.jpg"
    assert storage.get_derived(key) is None
    storage.put_derived(key, b"jpeg bytes")
    assert storage.get_derived(key) == b"jpeg bytes"
    storage.delete(sha)
    assert storage.size(sha) is None and storage.get_derived(key) is None
    with pytest.raises(FileNotFoundError):
        storage.open(sha)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "a" * 63, ""])
def test_names_are_hashes_only(storage, bad):
    with pytest.raises(ValueError):
        storage.write_at(bad, 0, [b"x"])
    with pytest.raises(ValueError):
        storage.put_derived(bad + ".thumb", b"x")
