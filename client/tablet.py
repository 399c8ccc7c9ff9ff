"""A field tablet: record offline, then ``sync()``: push the outbox, pull until done.

Written from the protocol alone (PROTOCOL.md, v1); it speaks HTTP and nothing else. Decisions the
protocol leaves to the client are listed in ``client/README.md``.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .attachments import Uploader, UploadFailed, sha256_of
from .store import OutboxOp, Store
from .transport import ApiError, NetworkError, Transport

SCHEMA_VERSION = 1
APP_VERSION = "lianhu-reference-client/1"
MAX_OPS_PER_BATCH = 500
MAX_BATCH_BYTES = 1_800_000
"""Under the server's 2 MiB, leaving room for the envelope and JSON escaping differences."""
PULL_LIMIT = 500
ACKNOWLEDGED = ("applied", "merged", "duplicate")
CHINA = dt.timezone(dt.timedelta(hours=8))
WITH_ATTACHMENTS = ("visit", "assistance_log")
Photo = bytes | tuple[bytes, str | None, str | None]
"""A photo or document to attach: its bytes, or ``(bytes, mime, name)``."""


class DeviceRevoked(Exception):
    """The server revoked this tablet; the local store has been wiped."""


class UpdateRequired(Exception):
    """The server cannot read this app's schema version: update the app (the outbox is kept)."""


class SyncUnavailable(Exception):
    """The network or the server stayed away through every retry; nothing is lost, sync later."""


class ProtocolError(Exception):
    """The server answered something the protocol does not allow."""


def local_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone()


def rfc3339(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


@dataclass
class Backoff:
    """Exponential back-off with full jitter, honouring ``Retry-After`` up to ``cap``."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        delay = random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        self.sleep(delay)


@dataclass
class SyncReport:
    pushed: int = 0
    acknowledged: int = 0
    rejected: int = 0
    pulled: int = 0
    restarts: int = 0
    """Full pulls started over because the cursor was expired or unreadable."""
    retries: int = 0
    conflicts: list[dict] = field(default_factory=list)
    uploaded: int = 0
    """Files uploaded (or found already held) in this sync."""
    upload_failures: int = 0
    """Upload passes cut short by the network; the files wait for the next sync."""
    refused_files: int = 0
    """Files the server will never take (too large, unreadable); kept on the tablet, not retried."""


class Tablet:
    """One enrolled device over its ``Store``.

    ``on_record(op)`` is called for every op put in the outbox; ``on_answer(op, result)`` is called for every answer the server gives to an op, including replayed
    answers to a resent batch (the simulator's ledger uses it to prove exactly-once).
    """

    def __init__(self, store: Store, transport: Transport | None = None, clock: Callable[[], dt.datetime] = local_clock,
                 backoff: Backoff | None = None, on_answer: Callable[[dict, dict], None] | None = None,
                 on_record: Callable[[dict], None] | None = None,
                 pull_limit: int = PULL_LIMIT, max_ops_per_batch: int = MAX_OPS_PER_BATCH,
                 uploader: Callable[[str, str], Uploader] | None = None):
        self.store = store
        server = store.get_meta("server")
        self.transport = transport or (Transport(server) if server else None)
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.on_answer = on_answer
        self.on_record = on_record
        self.pull_limit = pull_limit
        self.max_ops_per_batch = min(max_ops_per_batch, MAX_OPS_PER_BATCH)
        self.make_uploader = uploader or (lambda base_url, token: Uploader(base_url, token))
        """``(server URL, device token) -> Uploader``: the seam where a test or the simulator puts a flaky network."""
        self._report = SyncReport()

    # --- enrollment -----------------------------------------------------------------------------

    @classmethod
    def enroll(cls, store: Store, transport: Transport, code: str, name: str, **kwargs) -> "Tablet":
        """Trade a single-use code for a device token; the store is wiped first (a fresh tablet)."""
        answer = transport.request("POST", "/api/v1/devices/enroll", {"code": code, "name": name, "platform": "python"})
        store.wipe()
        with store.transaction():
            store.set_meta("server", transport.base_url)
            store.set_meta("token", answer["token"])
            store.set_meta("device_id", answer["device_id"])
            store.set_meta("user", answer["user"])
        return cls(store, transport, **kwargs)

    @property
    def token(self) -> str | None:
        return self.store.get_meta("token")

    @property
    def device_id(self) -> str | None:
        return self.store.get_meta("device_id")

    @property
    def user(self) -> dict | None:
        return self.store.get_meta("user")

    # --- recording offline ----------------------------------------------------------------------

    def now(self) -> str:
        return rfc3339(self.clock().astimezone(CHINA))

    def create(self, entity: str, data: dict, record_id: str | None = None) -> str:
        record_id = record_id or str(uuid.uuid4())
        self._append(entity, record_id, "create", {k: v for k, v in data.items() if v is not None}, None, None)
        return record_id

    def edit(self, entity: str, record_id: str, **fields: Any) -> str | None:
        """Record an update of the fields that differ from what the member sees; None if nothing does."""
        current = self.store.view(entity, record_id)
        if current is None:
            raise LookupError(f"no {entity} {record_id} on this tablet")
        changed = {k: v for k, v in fields.items() if current.get(k) != v}
        if not changed:
            return None
        base_version, base_op_id = self._base(entity, record_id)
        return self._append(entity, record_id, "update", changed, base_version, base_op_id)

    def delete(self, entity: str, record_id: str) -> str:
        if self.store.view(entity, record_id) is None:
            raise LookupError(f"no {entity} {record_id} on this tablet")
        base_version, base_op_id = self._base(entity, record_id)
        return self._append(entity, record_id, "delete", None, base_version, base_op_id)

    def record_visit(self, household_id: str, kind: str = "routine", summary: str | None = None,
                     visited_at: str | None = None, photos: Iterable[Photo] = (), **fields: Any) -> str:
        """Record a visit; ``photos`` are kept on the tablet and uploaded at the next sync, before the visit."""
        self._attach_into(fields, photos)
        return self.create("visit", {"household_id": household_id, "kind": kind, "summary": summary,
                                     "visited_at": visited_at or self.now(), **fields})

    def record_assistance(self, household_id: str, category: str, description: str | None = None,
                          minutes: int | None = None, occurred_at: str | None = None,
                          photos: Iterable[Photo] = (), **fields: Any) -> str:
        self._attach_into(fields, photos)
        return self.create("assistance_log", {"household_id": household_id, "category": category,
                                              "description": description, "minutes": minutes,
                                              "occurred_at": occurred_at or self.now(), **fields})

    def add_photos(self, entity: str, record_id: str, photos: Iterable[Photo]) -> str | None:
        """Attach more photos to a visit or assistance log the member sees (an update of ``attachments``)."""
        if entity not in WITH_ATTACHMENTS:
            raise ValueError(f"a {entity} has no attachments")
        current = self.store.view(entity, record_id)
        if current is None:
            raise LookupError(f"no {entity} {record_id} on this tablet")
        refs = list(current.get("attachments") or [])
        held = {ref["sha256"] for ref in refs}
        refs += [ref for ref in map(self.attach, photos) if ref["sha256"] not in held]
        return self.edit(entity, record_id, attachments=refs)

    def attach(self, photo: Photo) -> dict:
        """Keep a file's bytes in the local store; answer the reference a record carries for it."""
        data, mime, name = (photo, None, None) if isinstance(photo, (bytes, bytearray)) else photo
        data = bytes(data)
        sha = sha256_of(data)
        self.store.put_file(sha, data, mime, name)
        return {"sha256": sha, "mime": mime, "name": name}

    def _attach_into(self, fields: dict, photos: Iterable[Photo]) -> None:
        refs = list(fields.get("attachments") or []) + [self.attach(photo) for photo in photos]
        if refs:
            fields["attachments"] = refs

    def raise_request(self, household_id: str, category: str, description: str, urgency: str = "normal",
                      **fields: Any) -> str:
        return self.create("request", {"household_id": household_id, "category": category,
                                       "description": description, "urgency": urgency, **fields})

    def add_request_event(self, request_id: str, action: str, note: str | None = None, channel: str | None = None,
                          satisfaction: int | None = None) -> str:
        return self.create("request_event", {"request_id": request_id, "action": action, "note": note,
                                             "channel": channel, "satisfaction": satisfaction,
                                             "occurred_at": self.now()})

    def _base(self, entity: str, record_id: str) -> tuple[int | None, str | None]:
        """The version this edit is made against: the replica's, or our own pending create's answer."""
        for op in self.store.outbox(entity=entity, record_id=record_id):
            if op.action == "create":
                return None, op.op_id
        held = self.store.held(entity, record_id)
        if held is None or held.version is None:
            raise LookupError(f"no version known for {entity} {record_id}")
        return held.version, None

    def _append(self, entity, record_id, action, data, base_version, base_op_id) -> str:
        op = {"op_id": str(uuid.uuid4()), "entity": entity, "id": record_id, "action": action,
              "base_version": base_version, "recorded_at": self.now(), "data": data}
        self.store.append_op(op, base_op_id)
        if self.on_record:
            self.on_record(op)
        return op["op_id"]

    # --- sync -----------------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push everything recorded, then pull until the server has nothing more.

        Raises ``SyncUnavailable`` when the network stays away (try again later: a resend is safe),
        ``DeviceRevoked`` (the store is wiped) or ``UpdateRequired``.
        """
        self._report = SyncReport()
        # Files first, so the ops that refer to them land complete; an upload the network cuts short
        # does not hold the ops back (the server applies them and lists the file as missing meanwhile).
        self.upload_files(self.store.files(state="pending"))
        self.push()
        self.pull()
        if self.upload_files(self._files_to_upload()) & self._listed_missing():
            self.pull()  # the server gave those records new versions without the files in their lists
        return self._report

    def _listed_missing(self) -> set[str]:
        """Hashes that records in the replica list in ``missing_attachments``."""
        return {sha for (entity, _id), record in self.store.replica().items() if entity in WITH_ATTACHMENTS
                for sha in (record["data"] or {}).get("missing_attachments") or ()}

    def _files_to_upload(self) -> list[str]:
        """After a pull: files not uploaded yet, and files held here that a record still lists as missing
        (the server may have purged an upload, or another tablet's answer raced ours)."""
        states = self.store.file_states()
        wanted = set(self.store.files(state="pending")) | {sha for sha in self._listed_missing()
                                                          if states.get(sha) == "uploaded"}
        return [sha for sha in self.store.files() if sha in wanted]

    def upload_files(self, hashes: list[str]) -> set[str]:
        """Upload these held files, each resumed where the server's copy stopped; answer those now held.

        The first upload the network defeats ends the pass (the rest would fail the same way); a file
        the server refuses for good (413 too large, 422) is marked ``refused`` and not tried again."""
        done: set[str] = set()
        uploader = None
        for sha in hashes:
            data = self.store.file(sha)
            if data is None:
                continue
            uploader = uploader or self.make_uploader(self.store.get_meta("server"), self.token)
            try:
                uploader.upload(data, sha)
            except UploadFailed:
                self._report.upload_failures += 1
                break
            except ApiError as exc:
                if exc.status == 401 and exc.code == "device_revoked":
                    self.store.wipe()
                    raise DeviceRevoked(exc.message) from None
                if exc.status in (413, 422):
                    self.store.set_file_state(sha, "refused", {"code": exc.code, "message": exc.message})
                    self._report.refused_files += 1
                    continue
                self._report.upload_failures += 1
                break
            self.store.set_file_state(sha, "uploaded")
            self._report.uploaded += 1
            done.add(sha)
        return done

    def status(self) -> dict:
        counts = self.store.counts()
        return {"server": self.store.get_meta("server"), "device_id": self.device_id,
                "user": (self.user or {}).get("username"), "enrolled": self.token is not None,
                "last_sync": self.store.get_meta("last_sync"), **counts}

    def push(self) -> None:
        while True:
            batch_id, ops = self._next_batch()
            if not ops:
                return
            body = {"batch_id": batch_id, "client": {"app_version": APP_VERSION, "schema_version": SCHEMA_VERSION},
                    "ops": [op.wire() for op in ops]}
            try:
                # client_time is read at each send: a resend carries a fresh one.
                answer = self._call("POST", "/api/v1/sync/push", lambda body=body: {**body, "client_time": self.now()})
            except ApiError as exc:
                if exc.code in ("batch_too_large", "body_too_large"):
                    self._split(batch_id, ops, exc)
                    continue
                if exc.code == "schema_unsupported":
                    raise UpdateRequired(exc.message) from None
                raise
            self._take_answer(ops, answer)

    def _next_batch(self) -> tuple[str | None, list[OutboxOp]]:
        """The unanswered batch if there is one (resent as it was), else a new one from the outbox."""
        open_batch = self.store.open_batch_id()
        if open_batch:
            return open_batch, self.store.outbox(batch_id=open_batch)
        ops, size, in_batch = [], 200, set()
        for op in self.store.outbox(batch_id=None):
            if op.base_op_id:
                if op.base_op_id in in_batch:
                    break  # its base is the answer to an op in this very batch: send that first
                answer = self.store.answer(op.base_op_id)
                # A rejected create has no version; 0 says "never saw one", and the server's rejection
                # puts this op in quarantine beside the create instead of the tablet dropping it.
                op.base_version = answer["version"] if answer and answer["version"] else 0
            op_size = len(json.dumps(op.wire(), ensure_ascii=False).encode()) + 1
            if ops and (len(ops) >= self.max_ops_per_batch or size + op_size > MAX_BATCH_BYTES):
                break
            ops.append(op)
            in_batch.add(op.op_id)
            size += op_size
        if not ops:
            return None, []
        batch_id = str(uuid.uuid4())
        self.store.assign_batch(batch_id, ops)
        return batch_id, ops

    def _split(self, batch_id: str, ops: list[OutboxOp], exc: ApiError) -> None:
        """413 means nothing was applied: send the first half alone, under a new batch_id."""
        if len(ops) == 1:
            # One op past every limit cannot be sent at all; keep it on record as rejected here.
            result = {"op_id": ops[0].op_id, "status": "rejected", "version": None, "conflicts": [],
                      "error": {"code": exc.code, "message": exc.message, "details": exc.details}}
            self._take_answer(ops, {"results": [result]})
            return
        self.store.release_batch(batch_id, [op.op_id for op in ops])
        self.max_ops_per_batch = max(1, len(ops) // 2)

    def _take_answer(self, ops: list[OutboxOp], answer: dict) -> None:
        results = answer.get("results") or []
        if [r.get("op_id") for r in results] != [op.op_id for op in ops]:
            raise ProtocolError("the push answer does not match the batch's ops")
        with self.store.transaction():
            for op, result in zip(ops, results, strict=True):
                self.store.record_answer(op, result)
                if result["status"] in ACKNOWLEDGED:
                    self._remember_own(op, result)
                    self._report.acknowledged += 1
                elif result["status"] == "rejected":
                    self._report.rejected += 1  # the server keeps it in quarantine
                else:
                    raise ProtocolError(f"unknown op status {result['status']!r}")
                self._report.conflicts += result.get("conflicts") or []
                self.store.remove_op(op.op_id)
            self._report.pushed += len(ops)
        if self.on_answer:
            for op, result in zip(ops, results, strict=True):
                self.on_answer(op.wire(), result)

    def _remember_own(self, op: OutboxOp, result: dict) -> None:
        """Keep an acknowledged change visible until the next pull brings the server's full record."""
        held = self.store.held(op.entity, op.record_id)
        if op.action == "create":
            if held is None or held.provisional:
                self.store.put_record(op.entity, op.record_id, result.get("version"),
                                      {"id": op.record_id, **(op.data or {})}, provisional=True)
        elif op.action == "update":
            if held is not None and not held.deleted and held.data is not None:
                self.store.put_record(op.entity, op.record_id, held.version, {**held.data, **(op.data or {})},
                                      provisional=True)
        elif op.action == "delete":
            self.store.put_record(op.entity, op.record_id, result.get("version"), None, deleted=True,
                                  provisional=True)

    def pull(self) -> None:
        restarts = 0
        while True:
            cursor = self.store.get_meta("cursor")
            epoch = self.store.get_meta("full_pull")
            if cursor is None and epoch is None:
                # No cursor: the server sends the whole scope; whatever it does not send is gone from it.
                epoch = self.store.get_meta("epoch", 0) + 1
                with self.store.transaction():
                    self.store.set_meta("epoch", epoch)
                    self.store.set_meta("full_pull", epoch)
            query = {"limit": self.pull_limit}
            if cursor:
                query["cursor"] = cursor
            try:
                page = self._call("GET", "/api/v1/sync/pull?" + urllib.parse.urlencode(query))
            except ApiError as exc:
                if exc.code in ("cursor_expired", "invalid_cursor") and restarts < 3:
                    restarts += 1
                    self._report.restarts += 1
                    with self.store.transaction():
                        self.store.set_meta("cursor", None)
                        self.store.set_meta("full_pull", None)
                    continue
                raise
            with self.store.transaction():
                for change in page["changes"]:
                    self._apply(change, epoch)
                self.store.set_meta("cursor", page["cursor"])
                if not page["has_more"]:
                    if epoch is not None:
                        self.store.drop_unseen(epoch)
                        self.store.set_meta("full_pull", None)
                    self.store.set_meta("last_sync", page.get("server_time"))
            self._report.pulled += len(page["changes"])
            if not page["has_more"]:
                return

    def _apply(self, change: dict, epoch: int | None) -> None:
        """Apply one pulled change by version: an older or equal one changes nothing."""
        entity, record_id, action, version = change["entity"], change["id"], change["action"], change["version"]
        if action == "evict":
            self.store.drop_record(entity, record_id)
        elif action in ("upsert", "delete"):
            held = self.store.held(entity, record_id)
            newer = (held is None or held.version is None or version > held.version
                     or (held.provisional and version >= held.version))
            if newer:
                self.store.put_record(entity, record_id, version, change["data"] if action == "upsert" else None,
                                      deleted=action == "delete", seen_epoch=epoch)
            elif epoch is not None:
                self.store.mark_seen(entity, record_id, epoch)
        else:
            raise ProtocolError(f"unknown change action {action!r}")

    def _call(self, method: str, path: str, body: Callable[[], dict] | None = None) -> Any:
        """One call with retries: network errors and 429/5xx are retried with back-off."""
        attempt = 0
        while True:
            retry_after = None
            try:
                return self.transport.request(method, path, body() if body else None, self.token)
            except NetworkError as exc:
                failure: Exception = exc
            except ApiError as exc:
                if exc.status == 401 and exc.code == "device_revoked":
                    self.store.wipe()
                    raise DeviceRevoked(exc.message) from None
                if not exc.retryable:
                    raise
                failure, retry_after = exc, exc.retry_after
            attempt += 1
            self._report.retries += 1
            if attempt >= self.backoff.attempts:
                raise SyncUnavailable(str(failure)) from failure
            self.backoff.wait(attempt, retry_after)
