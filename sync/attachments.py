"""Records' references to attachments, kept in step with their ``attachments`` lists.

Every visit or assistance log that is created, has its ``attachments`` changed, or is deleted gets its
``attachment_refs`` rows rewritten in the same flush, whatever path made the change (a push, a quarantine
retry, a conflict resolved online). The rows answer two questions cheaply: who may fetch a file (a scope
that holds a referring record, see ``Scope.attachments``) and which records wait for a file that has
just arrived.

Why ``missing_attachments`` is computed when a record is answered, not stored: an op and its file may
commit in either order from different processes. A stored list written by the push could miss an
upload that committed meanwhile, and stay stale. Computed at read time, a record is never shown missing
a file the server holds; and an upload commits the file first, then (in a later transaction) logs a new
version of each record that referred to it, so a tablet that saw the file missing always gets the record
again.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, event, insert, inspect, select
from sqlalchemy.orm import Session

from .models import AssistanceLog, Attachment, AttachmentRef, HasAttachments, Visit, attachment_hashes, utcnow
from .policy import Actor

ENTITY_OF = {Visit: "visit", AssistanceLog: "assistance_log"}
MODEL_OF = {name: model for model, name in ENTITY_OF.items()}


def _refs_changed(record) -> bool:
    state = inspect(record)
    if state.pending or not state.has_identity:
        return True
    return state.attrs.attachments.history.has_changes() or state.attrs.deleted_at.history.has_changes()


def attachment_ref_rows(entity: str, record: dict) -> list[dict]:
    """The reference rows of a live record (given as its column values), one per distinct file."""
    if record.get("deleted_at") is not None:
        return []
    mimes: dict[str, str | None] = {}
    for ref in record.get("attachments") or ():
        if isinstance(ref, dict) and ref.get("sha256"):
            mimes.setdefault(ref["sha256"], ref.get("mime"))
    return [{"sha256": sha, "entity": entity, "record_id": record["id"], "household_id": record["household_id"],
             "community_id": record["community_id"], "mime": mime} for sha, mime in mimes.items()]


def sync_refs(session: Session, records: list[HasAttachments]) -> None:
    """Rewrite the reference rows of ``records`` from their current ``attachments`` (none once deleted).

    A flush of a 500-op push carries hundreds of new visits: their rows are written in one statement, and
    only records that existed before have old rows to delete (one statement per entity).
    """
    stale: dict[str, list[str]] = {}
    rows: list[dict] = []
    for record in records:
        entity = ENTITY_OF[type(record)]
        if inspect(record).has_identity:
            stale.setdefault(entity, []).append(record.id)
        rows += attachment_ref_rows(entity, {"id": record.id, "household_id": record.household_id,
                                             "community_id": record.community_id, "deleted_at": record.deleted_at,
                                             "attachments": record.attachments})
    for entity, ids in stale.items():
        session.execute(delete(AttachmentRef).where(AttachmentRef.entity == entity, AttachmentRef.record_id.in_(ids))
                        .execution_options(synchronize_session=False))
    if rows:
        session.execute(insert(AttachmentRef), rows)


@event.listens_for(Session, "before_flush")
def _keep_refs_in_step(session: Session, _flush_context, _instances) -> None:
    changed = [record for record in (*session.new, *session.dirty)
               if type(record) in ENTITY_OF and _refs_changed(record)]
    if changed:
        sync_refs(session, changed)


def mark_missing_attachments(session: Session, records: list) -> None:
    """Set ``missing_attachments`` on plain records (a pull page's, see ``sync.pull``) from one query:
    what ``HasAttachments.missing_attachments`` answers for one ORM object at a time."""
    wanted = {id(record): attachment_hashes(record.attachments) for record in records}
    hashes = {sha for shas in wanted.values() for sha in shas}
    held = set(session.scalars(select(Attachment.sha256).where(
        Attachment.sha256.in_(hashes), Attachment.complete.is_(True)))) if hashes else set()
    for record in records:
        record.missing_attachments = [sha for sha in wanted[id(record)] if sha not in held]


def announce_arrival(session: Session, actor: Actor, sha256: str, now: dt.datetime | None = None) -> int:
    """Give each live record that refers to the file just completed a new, logged version.

    The record's ``missing_attachments`` changed without any field changing, so without this tablets
    would keep their copy listing the file as missing. Returns how many records were announced.
    """
    from .apply import log_record  # apply builds reference rows with this module's rules

    now = now or utcnow()
    refs = session.execute(select(AttachmentRef.entity, AttachmentRef.record_id)
                           .where(AttachmentRef.sha256 == sha256)
                           .order_by(AttachmentRef.entity, AttachmentRef.record_id)).all()
    announced = 0
    for entity, record_id in refs:
        model = MODEL_OF[entity]
        stmt = select(model).where(model.id == record_id)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # a concurrent push of the record bumps after or before, never with
        record = session.scalar(stmt)
        if record is None or record.deleted_at is not None:
            continue
        still_missing = record.missing_attachments
        before = [sha for sha in record.attachment_hashes if sha in still_missing or sha == sha256]
        record.version += 1
        record.updated_at = now
        log_record(session, actor, entity, record, "update", {"missing_attachments": [before, still_missing]}, now)
        announced += 1
    return announced
