"""The data model: SQLAlchemy 2 typed models, shared by the engine, the services and the migrations.

Everything here is plain SQLAlchemy; the Flask extension is built on this ``Base`` so that ``sync/``
never imports Flask.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, object_session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """A timestamp that is always stored and returned as aware UTC (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


Json = JSON().with_variant(JSONB(), "postgresql")
UUID = String(36)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: Json, list[Any]: Json}


# --- areas and accounts -----------------------------------------------------------------------


class Area(Base):
    """A node of the area tree: community → grid → building. ``path`` makes subtree queries cheap."""

    __tablename__ = "areas"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("areas.id"), index=True)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    path: Mapped[str] = mapped_column(String(400), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    area_id: Mapped[str | None] = mapped_column(ForeignKey("areas.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A user token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


class EnrollmentCode(Base):
    __tablename__ = "enrollment_codes"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    device_id: Mapped[str | None] = mapped_column(UUID)


class Device(Base):
    """An enrolled tablet. Its token acts as its user; revoking it makes the tablet wipe itself."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime | None]
    last_sync_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float)
    resync_epoch: Mapped[int] = mapped_column(Integer, default=0)
    app_version: Mapped[str | None] = mapped_column(String(200))
    schema_version: Mapped[int | None] = mapped_column(Integer)
    # The tablet's own report, in its last push, of the ops still waiting besides that batch.
    outbox_length: Mapped[int | None] = mapped_column(Integer)
    oldest_unsynced_at: Mapped[dt.datetime | None]


class DeviceLog(Base):
    """A sync log a tablet uploaded for support; kept ``DEVICE_LOG_DAYS``, read by its coordinators."""

    __tablename__ = "device_logs"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    app_version: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


# --- synced records ---------------------------------------------------------------------------


class SyncedRecord:
    """Columns every synced record carries. ``community_id`` keeps the community one column away."""

    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]
    author_id: Mapped[str | None] = mapped_column(UUID)
    origin_device_id: Mapped[str | None] = mapped_column(UUID)


class Household(SyncedRecord, Base):
    __tablename__ = "households"
    area_id: Mapped[str] = mapped_column(ForeignKey("areas.id"), index=True)
    address: Mapped[str] = mapped_column(String(200))
    head_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    offline_served: Mapped[bool] = mapped_column(Boolean, default=True)
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    visit_interval_days: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    last_visited_at: Mapped[dt.datetime | None]
    ledger_id: Mapped[str | None] = mapped_column(String(200), index=True)
    """The household's number in the community's own ledger (台账), when it was imported from one."""

    @property
    def household_id(self) -> str:
        return self.id


class Pairing(Base):
    """The current one-to-one link of a household to a member; its history is in the change log."""

    __tablename__ = "pairings"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    paired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paired_by: Mapped[str | None] = mapped_column(UUID)


class Resident(SyncedRecord, Base):
    __tablename__ = "residents"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(1))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    phone: Mapped[str | None] = mapped_column(String(200))
    relation: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="active")


def attachment_hashes(attachments: list[Any] | None) -> list[str]:
    """The distinct files an ``attachments`` list refers to, in its order."""
    return list(dict.fromkeys(ref["sha256"] for ref in attachments or ()
                              if isinstance(ref, dict) and ref.get("sha256")))


class HasAttachments:
    """Records with an ``attachments`` list (``[{sha256, mime, name}]``): visits and assistance logs."""

    @property
    def attachment_hashes(self) -> list[str]:
        return attachment_hashes(self.attachments)

    @property
    def missing_attachments(self) -> list[str]:
        """The referred files the server does not hold yet, in the record's order.

        Read when the record is answered rather than stored with it: a push and an upload that commit
        in either order then never leave a stale list behind (``sync.attachments`` says more).
        """
        wanted = self.attachment_hashes
        session = object_session(self)
        if not wanted or session is None:
            return wanted
        with session.no_autoflush:
            held = set(session.scalars(select(Attachment.sha256).where(
                Attachment.sha256.in_(wanted), Attachment.complete.is_(True))))
        return [sha for sha in wanted if sha not in held]


class Visit(HasAttachments, SyncedRecord, Base):
    __tablename__ = "visits"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    visited_at: Mapped[dt.datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    observations: Mapped[dict[str, Any] | None] = mapped_column(Json)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    location: Mapped[dict[str, Any] | None] = mapped_column(Json)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    review_state: Mapped[str] = mapped_column(String(20), default="pending")


class AssistanceLog(HasAttachments, SyncedRecord, Base):
    __tablename__ = "assistance_logs"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    resident_id: Mapped[str | None] = mapped_column(UUID)
    category: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    minutes: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[dt.datetime]
    attachments: Mapped[list[Any]] = mapped_column(default=list)


class Request(SyncedRecord, Base):
    """A resident's request. ``status`` is derived from its events (see ``sync.requests``)."""

    __tablename__ = "requests"
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    resident_id: Mapped[str | None] = mapped_column(UUID)
    visit_id: Mapped[str | None] = mapped_column(UUID)
    category: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(20), default="normal")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    source: Mapped[str] = mapped_column(String(20), default="tablet")
    handler: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[dt.datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime | None]
    feedback_due_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A request that came from another platform (a hotline, the unified platform) through an integration:
    # its id there, so the same request sent twice is recorded once.
    integration_id: Mapped[str | None] = mapped_column(UUID)
    external_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("uq_requests_integration_external", "integration_id", "external_id", unique=True),)


class RequestEvent(SyncedRecord, Base):
    __tablename__ = "request_events"
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    action: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(20))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[dt.datetime]
    effective_at: Mapped[dt.datetime] = mapped_column(index=True)
    handler: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[dt.datetime | None]


class Task(SyncedRecord, Base):
    """Work addressed to a member: deliver feedback, a due visit, a follow-up."""

    __tablename__ = "tasks"
    kind: Mapped[str] = mapped_column(String(30))
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    request_id: Mapped[str | None] = mapped_column(UUID, index=True)
    member_id: Mapped[str | None] = mapped_column(UUID, index=True)
    message: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="open")
    done_at: Mapped[dt.datetime | None]


class Review(SyncedRecord, Base):
    __tablename__ = "reviews"
    visit_id: Mapped[str] = mapped_column(ForeignKey("visits.id"), index=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[str] = mapped_column(UUID)
    recipient_id: Mapped[str] = mapped_column(UUID, index=True)
    summary: Mapped[str | None] = mapped_column(Text)


# --- the change log, idempotence, quarantine, conflicts, outbox ---------------------------------


class ChangeCounter(Base):
    """One row: the last ``ChangeLog.seq`` handed out. Taken at commit time (see ``sync.changes``)."""

    __tablename__ = "change_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeLog(Base):
    """Every change of every synced record, with old and new field values.

    ``seq`` is numbered in commit order, so a pull cursor of "highest seq seen" never skips a change.
    ``audience_user_id``/``former_user_id`` address changes that follow a person rather than a household
    (tasks, reviews, pairings).
    """

    __tablename__ = "change_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    community_id: Mapped[str] = mapped_column(UUID)
    household_id: Mapped[str | None] = mapped_column(UUID)
    audience_user_id: Mapped[str | None] = mapped_column(UUID)
    former_user_id: Mapped[str | None] = mapped_column(UUID)
    entity: Mapped[str] = mapped_column(String(30))
    record_id: Mapped[str] = mapped_column(UUID)
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    device_id: Mapped[str | None] = mapped_column(UUID)
    user_id: Mapped[str | None] = mapped_column(UUID)
    recorded_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_change_log_household_seq", "household_id", "seq"),
        Index("ix_change_log_audience_seq", "audience_user_id", "seq"),
        Index("ix_change_log_former_seq", "former_user_id", "seq"),
        Index("ix_change_log_record_version", "entity", "record_id", "version"),
        Index("ix_change_log_created_at", "created_at"),
    )


class SyncBatch(Base):
    """A pushed batch's content hash and answer, for exactly-once replays."""

    __tablename__ = "sync_batches"
    device_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    batch_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    results: Mapped[list[Any]] = mapped_column(Json, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class OpLog(Base):
    """Every op a device pushed, by (device, op_id), with its content hash and original result."""

    __tablename__ = "op_log"
    device_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    op_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(UUID)
    content_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class QuarantinedOp(Base):
    """A rejected op, kept as sent with its reason: nothing a device sends is lost."""

    __tablename__ = "quarantine"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    device_id: Mapped[str | None] = mapped_column(UUID, index=True)
    user_id: Mapped[str | None] = mapped_column(UUID, index=True)
    batch_id: Mapped[str | None] = mapped_column(UUID)
    op_id: Mapped[str | None] = mapped_column(String(64))
    op: Mapped[dict[str, Any]] = mapped_column(Json)
    error: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    retry_result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    discard_reason: Mapped[str | None] = mapped_column(Text)
    handled_by: Mapped[str | None] = mapped_column(UUID)
    handled_at: Mapped[dt.datetime | None]
    client_offset_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Conflict(Base):
    """A field changed on both sides, with the value kept and the one discarded, for review."""

    __tablename__ = "conflicts"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    entity: Mapped[str] = mapped_column(String(30))
    record_id: Mapped[str] = mapped_column(UUID, index=True)
    field: Mapped[str] = mapped_column(String(60))
    kept: Mapped[Any] = mapped_column(Json, nullable=True)
    discarded: Mapped[Any] = mapped_column(Json, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    device_id: Mapped[str | None] = mapped_column(UUID)
    user_id: Mapped[str | None] = mapped_column(UUID)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    household_id: Mapped[str | None] = mapped_column(UUID)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(UUID)
    resolved_value: Mapped[Any] = mapped_column(Json, nullable=True)


class OutboxMessage(Base):
    """A transactional outbox row: written with the change that caused it, sent later by the worker."""

    __tablename__ = "outbox"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    # A worker claims a message for a lease: it sends outside any transaction, then marks it sent
    # only while its claim still holds, so a message is marked sent once even if a lease ran out.
    claim_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[dt.datetime | None]


class RateLimitHit(Base):
    """Attempts per key and window, in the database so that limits hold across processes."""

    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Who read or exported which household's personal data, when, and through which call.

    One row per household and call, so "who has seen this family's data" is one indexed query.
    """

    __tablename__ = "audit_log"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(UUID, index=True)
    role: Mapped[str] = mapped_column(String(20))
    device_id: Mapped[str | None] = mapped_column(UUID)
    action: Mapped[str] = mapped_column(String(20))
    entity: Mapped[str] = mapped_column(String(30))
    household_id: Mapped[str] = mapped_column(UUID)
    community_id: Mapped[str | None] = mapped_column(UUID, index=True)
    endpoint: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_household_at", "household_id", "at"),)


class Attachment(Base):
    """A file (photo, scanned document) by its SHA-256, stored once however many records refer to it.

    The bytes live in ``server.storage``; this row says how far an upload got and when it was touched,
    for ``HEAD``, ``missing_attachments`` and the purge of orphans.
    """

    __tablename__ = "attachments"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    complete: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    uploaded_by: Mapped[str | None] = mapped_column(UUID)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[dt.datetime | None]


class AttachmentRef(Base):
    """One record's reference to one file, kept in step with the record's ``attachments`` list
    (``sync.attachments``), so "who may fetch this file" and "which records wait for it" are indexed."""

    __tablename__ = "attachment_refs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(30), primary_key=True)
    record_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    household_id: Mapped[str] = mapped_column(UUID, index=True)
    community_id: Mapped[str] = mapped_column(UUID)
    mime: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_attachment_refs_record", "entity", "record_id"),)


SYNCED_MODELS: dict[str, type[SyncedRecord]] = {
    "household": Household,
    "resident": Resident,
    "visit": Visit,
    "assistance_log": AssistanceLog,
    "request": Request,
    "request_event": RequestEvent,
    "task": Task,
    "review": Review,
}



# A full pull reads each household-scoped table by keyset pages, ``household_id IN (the scope) AND id > :after
# ORDER BY id``: with ``id`` beside ``household_id`` in the index, the database skips the rows already sent
# inside the index instead of sorting the whole scope again for every page (SQLite did, in a temporary
# B-tree). The same index answers every lookup by household.
for _model in (Resident, Visit, AssistanceLog, Request, RequestEvent, Task, Review):
    Index(f"ix_{_model.__tablename__}_household_id_id", _model.household_id, _model.id)


@event.listens_for(ChangeCounter.__table__, "after_create")
def _seed_change_counter(table, connection, **_):
    """The counter row exists from the start, so that no two first writers race to insert it."""
    connection.execute(table.insert().values(id=1, value=0))


class WatermelonPull(Base):
    """A ``timestamp`` answered to a WatermelonDB client, and the engine's cursor it stands for.

    WatermelonDB hands back the number it was given (as ``last_pulled_at``) and nothing else, so the
    server keeps what the number means: the change-log position reached (``timestamp`` is ``seq + 1``)
    and the engine's opaque cursor, which carries the device binding, resync epoch and age checks.
    """

    __tablename__ = "watermelon_pulls"
    device_id: Mapped[str] = mapped_column(UUID, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    cursor: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)



# --- members registered from their workplace, integrations, webhooks -----------------------------


class Registration(Base):
    """A member registered with a community from a workplace (双报到): a home organisation, with dates.

    A member may have several over the years; at most one is open (``ended_on`` null) at a time.
    """

    __tablename__ = "registrations"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    area_id: Mapped[str] = mapped_column(ForeignKey("areas.id"), index=True)
    home_organisation: Mapped[str] = mapped_column(String(200), index=True)
    organisation_kind: Mapped[str] = mapped_column(String(20))
    started_on: Mapped[dt.date] = mapped_column(Date)
    ended_on: Mapped[dt.date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(Text)
    registered_by: Mapped[str | None] = mapped_column(UUID)
    ended_by: Mapped[str | None] = mapped_column(UUID)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Integration(Base):
    """Another platform allowed to raise requests in one area; only its token's SHA-256 is stored."""

    __tablename__ = "integrations"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    area_id: Mapped[str] = mapped_column(ForeignKey("areas.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(UUID)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class WebhookSubscription(Base):
    """Where another platform wants events of one area: URL, signing secret, event types, grant."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    area_id: Mapped[str] = mapped_column(ForeignKey("areas.id"), index=True)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    """Kept as is, not hashed: the server signs every delivery with it."""
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    grant: Mapped[str] = mapped_column(String(20), default="none")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(UUID)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the exact body sent, and every attempt (the delivery log).

    ``outbox_id`` is the outbox message that carries it; a replay queues a new message for the same
    delivery, so the receiver sees the same ``event_id`` again and can drop it if it had it.
    """

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    community_id: Mapped[str] = mapped_column(UUID, index=True)
    event_type: Mapped[str] = mapped_column(String(60))
    body: Mapped[str] = mapped_column(Text)
    outbox_id: Mapped[str | None] = mapped_column(UUID, index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[list[Any]] = mapped_column(default=list)
    """``[{at, status_code, error, duration_ms}]``, one per try, oldest first."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[dt.datetime | None]
