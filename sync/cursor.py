"""Pull cursors: opaque to clients, tamper-evident, bound to one device and its resync epoch."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from .errors import CursorExpiredError, InvalidCursorError

FORMAT = 1


@dataclass
class Pending:
    """A run of records still to send before the change log resumes.

    ``mode`` is ``full`` (the whole scope, for a first pull), ``up`` (a household that moved in: its
    full current state) or ``ev`` (a household that moved out: an evict for it and all it holds).
    ``step`` indexes the entity order; ``after`` is the last id sent of that entity.
    """

    mode: str
    household_id: str | None = None
    step: int = 0
    after: str = ""


@dataclass
class Cursor:
    device_id: str
    epoch: int
    seq: int
    issued_at: int
    pending: Pending | None = None

    def to_wire(self) -> dict:
        d = {"v": FORMAT, "d": self.device_id, "e": self.epoch, "s": self.seq, "t": self.issued_at}
        if self.pending:
            d["p"] = asdict(self.pending)
        return d


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, b"lianhu-cursor:" + body.encode(), hashlib.sha256).digest()[:18])


def encode(cursor: Cursor, key: bytes) -> str:
    body = _b64(json.dumps(cursor.to_wire(), separators=(",", ":")).encode())
    return f"{body}.{_mac(key, body)}"


def decode(token: str, key: bytes, *, device_id: str, epoch: int, max_age: dt.timedelta,
           now: dt.datetime) -> Cursor:
    """Read a cursor; raise ``InvalidCursorError`` if forged or garbled, ``CursorExpiredError`` if old."""
    try:
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, _mac(key, body)):
            raise ValueError("bad mac")
        d = json.loads(_unb64(body))
        if d.get("v") != FORMAT:
            raise ValueError("format")
        p = d.get("p")
        cursor = Cursor(str(d["d"]), int(d["e"]), int(d["s"]), int(d["t"]),
                        Pending(str(p["mode"]), p.get("household_id"), int(p["step"]), str(p["after"]))
                        if p else None)
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, AttributeError):
        raise InvalidCursorError() from None
    if cursor.device_id != device_id:
        raise InvalidCursorError("This cursor belongs to another device.")
    if cursor.epoch != epoch:
        raise CursorExpiredError("A full resync was requested for this tablet.")
    if now.timestamp() - cursor.issued_at > max_age.total_seconds():
        raise CursorExpiredError()
    return cursor
