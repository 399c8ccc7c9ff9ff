"""Photos and documents: content-addressed, resumable uploads; scoped downloads; thumbnails; the purge.

An upload is split into short transactions on purpose: no database transaction is open while the bytes
arrive over a slow mobile network (on SQLite every transaction takes the one write lock, and a 10 MiB
photo on a weak line would stop every push for minutes). So ``upload`` commits what it read before the
body, writes the body to storage with no transaction, then records the outcome and, when the file is
complete, announces it to the records that wait for it, each in its own commit. Storage is safe across
processes without a lock (see ``server.storage``).
"""
from __future__ import annotations

import datetime as dt
import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from sync import attachments as engine
from sync.errors import (
    BodyTooLargeError,
    ConflictError,
    HashMismatchError,
    NotFoundError,
    UploadOffsetError,
    ValidationFailedError,
)
from sync.models import Attachment, AttachmentRef, utcnow
from sync.policy import Scope

from ..storage import SHA256, Storage
from . import audit

CHUNK_BYTES = 64 * 1024
THUMBNAIL_EDGE = 320
THUMBNAIL_PIXELS_MAX = 60_000_000  # a decompression bomb is refused, not decoded
SERVED_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "application/pdf"}
"""Types served as themselves; any other is served as ``application/octet-stream``, so an uploaded
HTML or SVG file can never run in the console's origin."""

_CONTENT_RANGE = re.compile(r"^bytes (\d{1,12})-(\d{1,12})/(\d{1,12})$")


@dataclass
class UploadState:
    sha256: str
    received: int
    total: int | None
    complete: bool

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Upload-Offset": str(self.received)}
        if self.total is not None:
            headers["Upload-Length"] = str(self.total)
        return headers


def _sha(value: str, *, strict: bool) -> str:
    sha = (value or "").lower()
    if not SHA256.match(sha):
        if strict:
            raise ValidationFailedError(details={"sha256": ["64 hexadecimal digits (the file's SHA-256)."]})
        raise NotFoundError("No such attachment.")
    return sha


def state(session: Session, storage: Storage, sha256: str) -> UploadState:
    """How far the server got with a file: complete, partly received, or never seen (received 0)."""
    sha = _sha(sha256, strict=False)
    row = session.get(Attachment, sha)
    if row is not None and row.complete:
        return UploadState(sha, row.total_bytes, row.total_bytes, True)
    return UploadState(sha, storage.received(sha), row.total_bytes if row else None, False)


class NotHeldError(NotFoundError):
    """404 for a file not held in full, with how much of it arrived (``Upload-Offset``)."""

    def __init__(self, found: UploadState):
        super().__init__("The server does not hold this file.", {"received": found.received})
        self.headers = found.headers


def held(session: Session, storage: Storage, scope: Scope, sha256: str) -> UploadState:
    """``HEAD``: the state of a file held in full, else ``NotHeldError`` (404 with ``Upload-Offset``).

    Any signed-in caller may ask: a tablet asks before it uploads a file no record refers to yet, and
    the answer only tells someone who already has the file's hash that the server has it too."""
    found = state(session, storage, sha256)
    if not found.complete:
        raise NotHeldError(found)
    return found


def parse_content_range(header: str | None, content_length: int | None, max_bytes: int) -> tuple[int, int, int]:
    """``(start, length, total)`` of a PUT body: ``Content-Range: bytes START-END/TOTAL``, or the whole
    file when absent. Raises ``validation_failed`` for an unreadable header, ``body_too_large`` past the limit."""
    if header is None:
        if content_length is None:
            raise ValidationFailedError(details={"Content-Length": ["required (or send Content-Range)."]})
        start, length, total = 0, content_length, content_length
    else:
        match = _CONTENT_RANGE.match(header.strip())
        if not match:
            raise ValidationFailedError(details={"Content-Range": ["expected `bytes START-END/TOTAL`."]})
        start, end, total = (int(part) for part in match.groups())
        if not start <= end < total:
            raise ValidationFailedError(details={"Content-Range": ["needs START <= END < TOTAL."]})
        length = end - start + 1
        if content_length is not None and content_length != length:
            raise ValidationFailedError(details={"Content-Length": [f"{content_length} bytes sent for a range "
                                                                    f"of {length}."]})
    if total > max_bytes:
        raise BodyTooLargeError(f"An attachment is at most {max_bytes} bytes.", {"max_bytes": max_bytes})
    if total == 0:
        raise ValidationFailedError(details={"Content-Length": ["an attachment is never empty."]})
    return start, length, total


def _body(stream: BinaryIO, length: int) -> Iterator[bytes]:
    left = length
    while left:
        block = stream.read(min(CHUNK_BYTES, left))
        if not block:  # the connection ended early; werkzeug usually raises ClientDisconnected first
            raise ValidationFailedError("The body ended before its Content-Length.")
        left -= len(block)
        yield block


def upload(session: Session, storage: Storage, scope: Scope, sha256: str, content_range: str | None,
           content_length: int | None, stream: BinaryIO, max_bytes: int) -> UploadState:
    """Receive a file or the next piece of it (a device's call); see the module docstring for the commits.

    A piece must start where the bytes held end (else 409 ``conflict`` with the offset). A file already
    held answers at once without reading the body. The last piece checks the hash (422 ``hash_mismatch``).
    """
    scope.require_device()
    sha = _sha(sha256, strict=True)
    start, length, total = parse_content_range(content_range, content_length, max_bytes)
    current = state(session, storage, sha)
    session.commit()  # end the authentication's transaction before the body is read
    if current.complete:
        return current
    if current.total is not None and current.total != total:
        raise ConflictError("This file's upload in progress has another total size.",
                            {"offset": current.received, "total": current.total})
    if start != current.received:
        raise UploadOffsetError(current.received, details={"total": total})
    _touch(session, sha, total, scope.actor.user_id)
    try:
        received = storage.write_at(sha, start, _body(stream, length))
    finally:  # a cut connection keeps what arrived, and says so in the row the purge reads
        _touch(session, sha, total, scope.actor.user_id)
    if received < total:
        return UploadState(sha, received, total, False)
    try:
        size = storage.finish(sha)
    except HashMismatchError:  # the bytes are discarded; so is the row, in case its total was the mistake
        session.execute(delete(Attachment).where(Attachment.sha256 == sha, Attachment.complete.is_(False)))
        session.commit()
        raise
    if size != total:
        storage.delete(sha)
        raise ConflictError("The file's size differs from the declared total.", {"size": size, "total": total})
    _mark_complete(session, sha, size)
    engine.announce_arrival(session, scope.actor, sha)
    session.commit()
    return UploadState(sha, size, size, True)


def _touch(session: Session, sha: str, total: int, user_id: str) -> None:
    """Create or refresh the upload's row in its own short transaction (the purge reads ``updated_at``)."""
    now = utcnow()
    row = session.get(Attachment, sha)
    if row is None:
        session.add(Attachment(sha256=sha, total_bytes=total, complete=False, uploaded_by=user_id,
                               created_at=now, updated_at=now))
    elif not row.complete:
        row.updated_at = now
    try:
        session.commit()
    except Exception:
        session.rollback()  # a concurrent first piece made the row; theirs serves as well
        if session.get(Attachment, sha) is None:
            raise
        session.commit()


def _mark_complete(session: Session, sha: str, size: int) -> None:
    """Commit the file as held before any record is announced, so that every record a tablet may have
    seen missing it gets its new version (``sync.attachments``)."""
    now = utcnow()
    row = session.get(Attachment, sha)
    if row is None:
        row = Attachment(sha256=sha, total_bytes=size, created_at=now)
        session.add(row)
    row.total_bytes, row.complete, row.updated_at, row.completed_at = size, True, now, row.completed_at or now
    session.commit()


# --- reading ------------------------------------------------------------------------------------


@dataclass
class Download:
    sha256: str
    data: bytes
    mimetype: str


def _readable(session: Session, scope: Scope, sha256: str) -> tuple[str, list[AttachmentRef]]:
    sha = _sha(sha256, strict=False)
    refs = scope.attachment_refs(session, sha)
    row = session.get(Attachment, sha)
    if not refs or row is None or not row.complete:
        raise NotFoundError("No such attachment.")  # never reveal that it exists outside the scope
    audit.record(scope.actor, "read", sorted({ref.household_id for ref in refs}), entity="attachment")
    return sha, refs


def _mimetype(refs: list[AttachmentRef]) -> str:
    declared = next((ref.mime.lower() for ref in refs if ref.mime), None)
    return declared if declared in SERVED_TYPES else "application/octet-stream"


def download(session: Session, storage: Storage, scope: Scope, sha256: str) -> Download:
    """The file, for a caller whose scope holds a record that refers to it (else 404)."""
    sha, refs = _readable(session, scope, sha256)
    try:
        with storage.open(sha) as f:
            data = f.read()  # at most ATTACHMENT_MAX_BYTES; in memory so that ranged answers work
    except FileNotFoundError:
        raise NotFoundError("No such attachment.") from None
    return Download(sha, data, _mimetype(refs))


def thumbnail(session: Session, storage: Storage, scope: Scope, sha256: str) -> bytes:
    """A JPEG at most ``THUMBNAIL_EDGE`` pixels on its longer side, made once and kept in storage."""
    sha, _refs = _readable(session, scope, sha256)
    key = f"{sha}.thumb{THUMBNAIL_EDGE}.jpg"
    cached = storage.get_derived(key)
    if cached is not None:
        return cached
    try:
        with storage.open(sha) as f:
            data = make_thumbnail(f.read())
    except FileNotFoundError:
        raise NotFoundError("No such attachment.") from None
    if data is None:
        raise NotFoundError("This attachment is not an image; it has no thumbnail.", {"thumbnail": "not_an_image"})
    storage.put_derived(key, data)
    return data


def make_thumbnail(content: bytes, edge: int = THUMBNAIL_EDGE) -> bytes | None:
    """A JPEG thumbnail of an image (turned upright by its EXIF orientation), or None for a file that
    is not an image Pillow can read safely."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                if image.width * image.height > THUMBNAIL_PIXELS_MAX:
                    return None
                image.draft("RGB", (edge * 2, edge * 2))  # JPEG: decode at a reduced size, much faster
                image = ImageOps.exif_transpose(image)
                image.thumbnail((edge, edge))
                if image.mode not in ("RGB", "L"):
                    image = image.convert("RGBA")
                    background = Image.new("RGB", image.size, "white")
                    background.paste(image, mask=image.getchannel("A"))
                    image = background
                out = io.BytesIO()
                image.save(out, "JPEG", quality=80, optimize=True)
                return out.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, ValueError, SyntaxError):
        return None


# --- the purge ----------------------------------------------------------------------------------


def purge_orphans(session: Session, storage: Storage, orphan_hours: int, now: dt.datetime | None = None) -> dict:
    """Remove files no live record refers to, completed more than ``orphan_hours`` ago, and uploads left
    unfinished that long. Each file's row goes in its own commit before its bytes, so a file is never
    listed as held without its bytes. Returns the counts."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(hours=orphan_hours)
    unreferenced = ~exists().where(AttachmentRef.sha256 == Attachment.sha256)
    files = 0
    for sha in session.scalars(select(Attachment.sha256).where(
            Attachment.complete.is_(True), Attachment.completed_at < cutoff, unreferenced)).all():
        # The condition again in the delete: a record may have come to refer to it since the select.
        gone = session.execute(delete(Attachment).where(Attachment.sha256 == sha, unreferenced)
                               .execution_options(synchronize_session=False)).rowcount
        session.commit()
        if gone:
            storage.delete(sha)
            files += 1
    partials = 0
    for sha in session.scalars(select(Attachment.sha256).where(
            Attachment.complete.is_(False), Attachment.updated_at < cutoff)).all():
        gone = session.execute(delete(Attachment).where(Attachment.sha256 == sha, Attachment.complete.is_(False),
                                                        Attachment.updated_at < cutoff)
                               .execution_options(synchronize_session=False)).rowcount
        session.commit()
        if gone:
            storage.discard_partial(sha)
            partials += 1
    # Pieces with no row left behind (a process that died between its write and its row): by their age.
    live = set(session.scalars(select(Attachment.sha256).where(Attachment.complete.is_(False))))
    session.commit()
    for sha, written_at in list(storage.partials()):
        if sha not in live and written_at < cutoff:
            storage.discard_partial(sha)
            partials += 1
    return {"files": files, "partials": partials}
