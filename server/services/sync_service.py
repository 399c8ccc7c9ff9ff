"""Push and pull for tablets: turn the wire envelope into the engine's ``Batch`` and back."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from sqlalchemy.orm import Session

from schemas.compiled import compile_dumper, compile_loader
from schemas.entities import DATA_SCHEMAS, RECORD_SCHEMAS
from schemas.sync import OpSchema, PullAnswer, PushAnswer
from sync import pull as pull_engine
from sync import push as push_engine
from sync.attachments import ENTITY_OF, mark_missing_attachments
from sync.errors import BatchTooLargeError, OpRejected, ValidationFailedError
from sync.models import Device
from sync.policy import Scope

from .. import logging as request_log
from .. import metrics
from .common import sync_settings
from .households import attach_pairings

# Compiled from the schemas (``schemas.compiled``): marshmallow's answers, several times faster per op.
_op_schema = compile_loader(OpSchema)
_data_schemas = {name: compile_loader(schema) for name, schema in DATA_SCHEMAS.items()}
_op_id_field = ma.fields.UUID()
_record_dumpers = {name: compile_dumper(schema) for name, schema in RECORD_SCHEMAS.items()}
_pull_answer = compile_dumper(PullAnswer)
_push_answer = compile_dumper(PushAnswer)


def cursor_key() -> bytes:
    import hashlib

    return hashlib.sha256(b"lianhu-cursor-key:" + current_app.config["SECRET_KEY"].encode()).digest()


def _sanitize(value):
    """Keep an op as sent, but with NUL characters escaped: the database cannot store them."""
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    if isinstance(value, dict):
        return {_sanitize(k): _sanitize(v) for k, v in value.items()}
    return value


def prepare_batch(envelope: dict, may_hold_nul: bool = True) -> push_engine.Batch:
    """Validate each op on its own: a bad op becomes a rejection, the others still apply.

    An op without a readable ``op_id`` cannot be answered or deduplicated, so it fails the whole batch.
    ``may_hold_nul=False`` says no string in the envelope holds a NUL, so no op needs escaping.
    """
    raw_ops = envelope["ops"]
    settings = sync_settings()
    if len(raw_ops) > settings.max_ops_per_batch:
        raise BatchTooLargeError(f"At most {settings.max_ops_per_batch} ops a batch.",
                                 {"max_ops": settings.max_ops_per_batch, "ops": len(raw_ops)})
    bad_ids = {}
    ops = []
    for index, raw in enumerate(raw_ops):
        op_id = raw.get("op_id") if isinstance(raw, dict) else None
        try:
            op_id = str(_op_id_field.deserialize(op_id))
        except ma.ValidationError:
            bad_ids[str(index)] = {"op_id": ["a UUID is required for every op"]}
            continue
        ops.append(_prepare_op(op_id, raw, may_hold_nul))
    if bad_ids:
        raise ValidationFailedError("Every op needs a valid op_id.", {"ops": bad_ids})
    return push_engine.Batch(envelope["batch_id"], envelope["client_time"], ops, envelope.get("client") or {})


def _prepare_op(op_id: str, raw: dict, may_hold_nul: bool = True) -> push_engine.Op:
    sanitized = _sanitize(raw) if may_hold_nul else raw
    try:
        op = _op_schema.load(raw)
    except ma.ValidationError as exc:
        return push_engine.Op(op_id, raw.get("entity") if isinstance(raw.get("entity"), str) else None,
                              None, None, None, None, {}, sanitized,
                              OpRejected("validation_failed", "The op is not valid.", exc.messages))
    entity, action = op["entity"], op["action"]
    data = op.get("data") or {}
    error = None
    if action in ("update", "delete") and op.get("base_version") is None:
        error = OpRejected("validation_failed", "base_version is required for update and delete.",
                           {"base_version": ["required for update and delete"]})
    elif action == "create" and op.get("base_version") is not None:
        error = OpRejected("validation_failed", "base_version must be null for create.",
                           {"base_version": ["must be null for create"]})
    elif entity in _data_schemas and action != "delete":
        try:
            data = _data_schemas[entity].load(data, partial=action == "update")
        except ma.ValidationError as exc:
            error = OpRejected("validation_failed", "The op's data is not valid.", {"data": exc.messages})
    elif action == "delete":
        data = {}
    return push_engine.Op(op_id, entity, op["id"], action, op.get("base_version"), op["recorded_at"], data,
                          sanitized, error)


def push(session: Session, scope: Scope, device: Device, envelope: dict, body: bytes | None = None) -> dict:
    """Apply a tablet's envelope; ``body``, the request's bytes when at hand, spares escaping NULs in a
    batch that has none (JSON can only carry a NUL as the escape ``\\u0000``)."""
    batch = prepare_batch(envelope, may_hold_nul=body is None or b"\\u0000" in body)
    answer = push_engine.push(session, scope.actor, device, batch, sync_settings())
    metrics.count_push(session, batch, answer["results"], batch.replayed)
    request_log.annotate(ops_in=len(batch.ops), ops_out=len(answer["results"]))
    return answer


def wire_push_answer(answer: dict) -> dict:
    return _push_answer.dump(answer)


def pull(session: Session, scope: Scope, device: Device, cursor: str | None, limit: int) -> dict:
    """One page for the tablet, already in wire form (``PullAnswer``)."""
    page = pull_engine.pull(session, scope.actor, device, cursor, limit, cursor_key(), sync_settings())
    complete_records(session, page.changes)
    changes = [serialize_change(c) for c in page.changes]
    metrics.count_pull(session, changes)
    request_log.annotate(ops_out=len(changes))
    return _pull_answer.dump({"changes": changes, "cursor": page.cursor, "has_more": page.has_more,
                              "server_time": page.server_time})


def complete_records(session: Session, changes: list[pull_engine.PulledChange]) -> None:
    """Give a page's records what their wire form has beyond their columns, a query each for the page:
    households their member, visits and assistance logs the files the server does not hold yet."""
    with_record = [c for c in changes if c.record is not None]
    attach_pairings(session, [c.record for c in with_record if c.entity == "household"])
    mark_missing_attachments(session, [c.record for c in with_record if c.entity in ENTITY_OF.values()])


def serialize_record(entity: str, record) -> dict:
    """A pulled ``record`` as its ``*Record`` schema answers it, once ``complete_records`` has seen it."""
    return _record_dumpers[entity].dump(record)


def serialize_change(change: pull_engine.PulledChange) -> dict:
    data = serialize_record(change.entity, change.record) if change.record is not None else None
    return {"entity": change.entity, "id": change.id, "action": change.action, "version": change.version,
            "data": data}
