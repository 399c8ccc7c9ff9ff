"""Resumable upload of photos and documents, for tablets on weak networks.

Call ``upload`` for every file a record refers to *before* pushing the ops that refer to it: the push
then lands with ``missing_attachments`` empty, and nobody sees a visit whose photo is not there. An op
pushed first is still applied (the record lists the file as missing until it comes), so a tablet that
could not finish an upload may push and try the file again later; after each pull it should upload any
file it holds that its own records list in ``missing_attachments``.

The upload asks ``HEAD`` how many bytes the server already holds (``Upload-Offset``), then sends the
rest in pieces with ``Content-Range``. A cut connection costs only the piece in flight: the next try
asks again and goes on from there. Only the standard library, like ``client.transport``.
"""
from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from .transport import ApiError, NetworkError

PIECE_BYTES = 256 * 1024
"""Small enough that a piece usually gets through a weak mobile link, large enough to keep the
number of requests down (a 10 MiB file is 40 pieces)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class UploadFailed(Exception):
    """The file could not be uploaded after every retry; the tablet keeps it and tries later."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Uploader:
    """Uploads files to one server with a device token. ``request`` is the seam a test or the simulator
    replaces to inject a flaky network."""

    def __init__(self, base_url: str, token: str, timeout: float = 60.0, piece_bytes: int = PIECE_BYTES,
                 attempts: int = 8, sleep: Callable[[float], None] = time.sleep):
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout
        self.piece_bytes, self.attempts, self.sleep = piece_bytes, attempts, sleep

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """One HTTP exchange; raises ``NetworkError`` when it may not have completed."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except (OSError, ConnectionError):
                raw = b""
            return Answer(exc.code, dict(exc.headers or {}), raw)
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
            raise NetworkError(str(exc)) from None

    def offset(self, sha256: str) -> tuple[int, bool]:
        """(bytes the server holds, whether the file is complete there)."""
        answer = self.request("HEAD", f"/api/v1/attachments/{sha256}")
        if answer.status not in (200, 404):
            raise _error(answer)
        return int(_header(answer, "Upload-Offset") or 0), answer.status == 200

    def upload(self, data: bytes, sha256: str | None = None) -> str:
        """Upload ``data`` (resuming whatever the server already holds) and return its SHA-256.

        Network errors, 429 and 5xx are retried with back-off, each time from the server's offset.
        Raises ``UploadFailed`` when every attempt failed, ``ApiError`` for an answer no retry can
        change (401 revoked, 413 too large)."""
        sha = sha256 or sha256_of(data)
        total = len(data)
        failures = 0
        mismatches = 0
        while True:
            try:
                held, complete = self.offset(sha)
                while not complete:
                    end = min(held + self.piece_bytes, total)
                    answer = self.request("PUT", f"/api/v1/attachments/{sha}", data[held:end], {
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"bytes {held}-{end - 1}/{total}"})
                    if answer.status == 200:
                        state = json.loads(answer.body)
                        held, complete = state["received"], state["complete"]
                        failures = 0  # progress: the budget of retries is for a stuck upload
                    elif answer.status == 409 and _header(answer, "Upload-Offset") is not None:
                        held = int(_header(answer, "Upload-Offset"))  # someone else sent part of it
                    else:
                        error = _error(answer)
                        if error.code == "hash_mismatch" and mismatches == 0:
                            mismatches += 1  # a corrupted piece on the way: the server discarded it all
                            held = 0
                            continue
                        raise error
                return sha
            except NetworkError as exc:
                failure: Exception = exc
                retry_after = None
            except ApiError as exc:
                if not exc.retryable:
                    raise
                failure, retry_after = exc, exc.retry_after
            failures += 1
            if failures >= self.attempts:
                raise UploadFailed(f"{sha}: {failure}") from failure
            self.sleep(retry_after if retry_after is not None else min(2 ** failures, 60))


def _header(answer: Answer, name: str) -> str | None:
    for key, value in answer.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _error(answer: Answer) -> ApiError:
    retry_after = _header(answer, "Retry-After")
    try:
        retry = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry = None
    try:
        error = json.loads(answer.body)["error"]
        return ApiError(answer.status, error["code"], error.get("message", ""), error.get("details"), retry)
    except (ValueError, KeyError, TypeError):
        return ApiError(answer.status, "unexpected_answer", answer.body[:200].decode(errors="replace"), None, retry)
