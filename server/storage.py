"""Where attachment bytes live: one small interface, the local file system or an S3-compatible store.

Files are content-addressed, so the bytes at a given offset of a given SHA-256 are the same whoever
sends them. That is what makes resumable uploads safe across processes without a lock held for the
length of a slow upload: two uploads of one file that overlap write the same bytes to the same places.
A wrong byte (a buggy client) is caught by the hash check when the upload completes; the partial
upload is then discarded and the file is sent again from the start.

An upload in progress is kept apart from complete files and becomes one only after its hash is checked,
by an atomic step (a rename on the file system, a single PUT of the whole object on S3), so a reader
never sees a half-written or unchecked file.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from sync.errors import HashMismatchError, UploadOffsetError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DERIVED_KEY = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9_-]{1,40})+$")


class Storage(ABC):
    """The bytes of attachments, by SHA-256. The database says which are complete and who may read them."""

    name: str

    @abstractmethod
    def size(self, sha256: str) -> int | None:
        """The size of the complete file, or None when it is not held."""

    @abstractmethod
    def received(self, sha256: str) -> int:
        """The bytes held of the upload in progress (0 when none)."""

    @abstractmethod
    def write_at(self, sha256: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` from ``offset`` (which must not be past the bytes held) and return the bytes
        held after. What arrived before ``chunks`` raised (a cut connection) is kept, then it re-raises."""

    @abstractmethod
    def finish(self, sha256: str) -> int:
        """Check the upload's hash and make it a complete file; return its size. On a mismatch the
        upload is discarded and ``HashMismatchError`` raised."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The complete file, for reading (``FileNotFoundError`` when not held)."""

    @abstractmethod
    def discard_partial(self, sha256: str) -> None:
        """Forget an upload in progress."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the complete file and everything derived from it (thumbnails)."""

    @abstractmethod
    def partials(self) -> Iterator[tuple[str, dt.datetime]]:
        """Every upload in progress, with the time of its last write (UTC)."""

    @abstractmethod
    def put_derived(self, key: str, data: bytes) -> None:
        """Keep a file made from an attachment (``<sha256>.<kind>``), such as a thumbnail."""

    @abstractmethod
    def get_derived(self, key: str) -> bytes | None:
        """A derived file, or None."""


def _check_sha(sha256: str) -> str:
    if not SHA256.match(sha256 or ""):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    return sha256


def _check_key(key: str) -> str:
    if not _DERIVED_KEY.match(key or ""):
        raise ValueError(f"not a derived key: {key!r}")
    return key


# --- the local file system -----------------------------------------------------------------------


class FileSystemStorage(Storage):
    """``root/complete/ab/<sha>``, ``root/partial/<sha>``, ``root/derived/ab/<key>``; one host (or a shared
    POSIX file system), any number of processes."""

    name = "filesystem"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        for folder in ("complete", "partial", "derived", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def _complete(self, sha256: str) -> Path:
        return self.root / "complete" / sha256[:2] / _check_sha(sha256)

    def _partial(self, sha256: str) -> Path:
        return self.root / "partial" / _check_sha(sha256)

    def _derived(self, key: str) -> Path:
        return self.root / "derived" / key[:2] / _check_key(key)

    def size(self, sha256):
        try:
            return self._complete(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def received(self, sha256):
        try:
            return self._partial(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def write_at(self, sha256, offset, chunks):
        fd = os.open(self._partial(sha256), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            held = os.fstat(fd).st_size
            if offset > held:  # discarded meanwhile (a failed hash check, the purge)
                raise UploadOffsetError(held)
            position = offset
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(fd, view, position)
                    position += written
                    view = view[written:]
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def finish(self, sha256):
        partial, target = self._partial(sha256), self._complete(sha256)
        digest = hashlib.sha256()
        try:
            with open(partial, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                os.fsync(f.fileno())
        except FileNotFoundError:  # another process finished it a moment ago
            if (size := self.size(sha256)) is not None:
                return size
            raise
        if digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise HashMismatchError(details={"sha256": sha256, "received": digest.hexdigest()})
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(partial, target)
        except FileNotFoundError:
            pass  # renamed by a concurrent finish of the same bytes
        return target.stat().st_size

    def open(self, sha256):
        return open(self._complete(sha256), "rb")

    def discard_partial(self, sha256):
        self._partial(sha256).unlink(missing_ok=True)

    def delete(self, sha256):
        self._complete(sha256).unlink(missing_ok=True)
        folder = self.root / "derived" / sha256[:2]
        for path in folder.glob(f"{_check_sha(sha256)}.*") if folder.exists() else ():
            path.unlink(missing_ok=True)

    def partials(self):
        for path in (self.root / "partial").iterdir():
            if SHA256.match(path.name):
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield path.name, dt.datetime.fromtimestamp(mtime, dt.timezone.utc)

    def put_derived(self, key, data):
        target = self._derived(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False) as f:
            f.write(data)
        os.replace(f.name, target)

    def get_derived(self, key):
        try:
            return self._derived(key).read_bytes()
        except FileNotFoundError:
            return None


# --- an S3-compatible object store ---------------------------------------------------------------


class S3Storage(Storage):
    """For several app hosts: ``prefix/complete/<sha>``, each received piece of an upload in progress as
    ``prefix/partial/<sha>/<offset>``, and ``prefix/derived/<key>``."""

    name = "s3"

    def __init__(self, bucket: str, prefix: str = "", client=None, **client_options):
        if client is None:
            import boto3

            client = boto3.client("s3", **{k: v for k, v in client_options.items() if v})
        self.s3, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _not_found(self, exc) -> bool:
        return getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")

    def size(self, sha256):
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._key("complete", _check_sha(sha256)))[
                "ContentLength"]
        except ClientError as exc:
            if self._not_found(exc):
                return None
            raise

    def _pieces(self, sha256: str) -> list[tuple[int, int, str]]:
        """(offset, size, key) of the pieces of an upload, by offset."""
        found = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("partial", _check_sha(sha256), "")):
            for item in page.get("Contents", ()):
                offset = item["Key"].rsplit("/", 1)[1]
                if offset.isdigit():
                    found.append((int(offset), item["Size"], item["Key"]))
        return sorted(found)

    @staticmethod
    def _contiguous(pieces) -> int:
        end = 0
        for offset, size, _ in pieces:
            if offset > end:
                break
            end = max(end, offset + size)
        return end

    def received(self, sha256):
        return self._contiguous(self._pieces(sha256))

    def write_at(self, sha256, offset, chunks):
        held = self.received(sha256)
        if offset > held:
            raise UploadOffsetError(held)
        buffer = bytearray()
        try:
            for chunk in chunks:
                buffer += chunk
        finally:  # keep what came before a cut connection, as the file system does
            if buffer:
                self.s3.put_object(Bucket=self.bucket, Key=self._key("partial", sha256, f"{offset:012d}"),
                                   Body=bytes(buffer))
        return max(held, offset + len(buffer))

    def finish(self, sha256):
        pieces = self._pieces(sha256)
        if not pieces:
            if (size := self.size(sha256)) is not None:
                return size
            raise FileNotFoundError(sha256)
        data = bytearray()
        for offset, _size, key in pieces:
            if offset > len(data):
                break
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            data += body[len(data) - offset:]
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            self.discard_partial(sha256)
            raise HashMismatchError(details={"sha256": sha256, "received": digest})
        self.s3.put_object(Bucket=self.bucket, Key=self._key("complete", sha256), Body=bytes(data))
        self._delete_keys([key for _, _, key in pieces])
        return len(data)

    def open(self, sha256):
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key("complete", _check_sha(sha256)))["Body"]
        except ClientError as exc:
            if self._not_found(exc):
                raise FileNotFoundError(sha256) from None
            raise
        return io.BytesIO(body.read())  # at most ATTACHMENT_MAX_BYTES; seekable for ranged answers

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            if batch:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch]})

    def discard_partial(self, sha256):
        self._delete_keys([key for _, _, key in self._pieces(sha256)])

    def delete(self, sha256):
        keys = [self._key("complete", _check_sha(sha256))]
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("derived", sha256 + ".")):
            keys += [item["Key"] for item in page.get("Contents", ())]
        self._delete_keys(keys)

    def partials(self):
        latest: dict[str, dt.datetime] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("partial", "")):
            for item in page.get("Contents", ()):
                sha = item["Key"][len(self._key("partial", "")):].split("/", 1)[0]
                if SHA256.match(sha):
                    moment = item["LastModified"].astimezone(dt.timezone.utc)
                    latest[sha] = max(latest.get(sha, moment), moment)
        yield from latest.items()

    def put_derived(self, key, data):
        self.s3.put_object(Bucket=self.bucket, Key=self._key("derived", _check_key(key)), Body=data)

    def get_derived(self, key):
        from botocore.exceptions import ClientError

        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self._key("derived", _check_key(key)))["Body"].read()
        except ClientError as exc:
            if self._not_found(exc):
                return None
            raise


def storage_from_config(config) -> Storage:
    """The backend named by ``ATTACHMENT_STORAGE``."""
    if config["ATTACHMENT_STORAGE"] == "s3":
        return S3Storage(config["ATTACHMENT_S3_BUCKET"], config["ATTACHMENT_S3_PREFIX"] or "",
                         endpoint_url=config["ATTACHMENT_S3_ENDPOINT_URL"],
                         region_name=config["ATTACHMENT_S3_REGION"])
    return FileSystemStorage(config["ATTACHMENT_PATH"])


def current_storage() -> Storage:
    """The app's storage, made from its settings on first use (a test may put another in its place)."""
    from flask import current_app

    storage = current_app.extensions.get("lianhu.storage")
    if storage is None:
        storage = current_app.extensions["lianhu.storage"] = storage_from_config(current_app.config)
    return storage
