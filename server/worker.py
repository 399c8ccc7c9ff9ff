"""The background worker: delivers the outbox and runs the sweeps on a schedule.

``flask --app wsgi worker`` loops; ``flask --app wsgi worker --once`` drains what is due and runs the
sweeps once (for cron); ``flask --app wsgi sweep`` runs only the sweeps.

Delivery is claim → send → mark, each claim and mark its own short transaction, so no database lock is
held while a slow gateway answers (on SQLite that lock would stop every push). A claim takes due
messages with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on several hosts take different
messages without waiting for each other (SQLite has one writer: its ``BEGIN IMMEDIATE`` serialises
claims). A claim is a lease with a token: a message whose worker died is claimed again once the lease
ends, and a message is marked sent only by the holder of its current claim, so it is marked sent once.
A failed delivery is retried with exponential back-off until ``OUTBOX_MAX_ATTEMPTS``, then ``failed``.
"""
from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from dataclasses import dataclass

import click
from flask import current_app
from sqlalchemy import and_, or_, select, update

from sync.models import OutboxMessage, new_id, utcnow

from . import logging as request_log
from .extensions import db
from .gateways import Gateway, GatewayError, KindRouter, OutgoingMessage, WebhookGateway, gateway_from_config
from .services import webhooks
from .services.attachments import purge_orphans
from .services.common import sync_settings
from .services.sweeps import sweep_due_visits
from .storage import current_storage

log = logging.getLogger("lianhu.worker")


@dataclass(frozen=True)
class OutboxPolicy:
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    lease_seconds: float = 300.0
    batch_size: int = 20

    @classmethod
    def from_config(cls, config) -> "OutboxPolicy":
        return cls(config["OUTBOX_MAX_ATTEMPTS"], config["OUTBOX_BACKOFF_SECONDS"],
                   config["OUTBOX_BACKOFF_MAX_SECONDS"], config["OUTBOX_LEASE_SECONDS"],
                   config["OUTBOX_BATCH_SIZE"])

    def backoff(self, attempts: int) -> dt.timedelta:
        """30 s, 60 s, 120 s … after the 1st, 2nd, 3rd failure, never more than the maximum."""
        return dt.timedelta(seconds=min(self.backoff_seconds * 2 ** max(attempts - 1, 0), self.backoff_max_seconds))


@dataclass(frozen=True)
class Claim:
    message: OutgoingMessage
    token: str


def claim(session, policy: OutboxPolicy, now: dt.datetime | None = None) -> list[Claim]:
    """Take up to ``batch_size`` due messages (or ones whose lease ran out) for this worker; commits."""
    now = now or utcnow()
    due = or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
    )
    stmt = select(OutboxMessage).where(due).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
    stmt = stmt.limit(policy.batch_size)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    token = new_id()
    claims = []
    try:
        for row in session.scalars(stmt).all():
            row.status = "sending"
            row.claim_token = token
            row.lease_until = now + dt.timedelta(seconds=policy.lease_seconds)
            row.attempts += 1
            claims.append(Claim(OutgoingMessage(row.id, row.kind, dict(row.payload), row.attempts), token))
        session.commit()
    except Exception:
        session.rollback()
        raise
    return claims


# Kinds whose every try is also written to a log of their own, with the outcome, in the same
# transaction as the outbox row: (session, payload, attempt, outcome) where outcome is
# ``delivered``, ``retrying`` or ``failed``.
ATTEMPT_LOGS = {webhooks.OUTBOX_KIND: webhooks.record_attempt}


def _finish(session, claim_: Claim, values: dict, attempt: tuple[dict, str] | None = None) -> bool:
    """Record the outcome if this worker still holds the claim; True when it did."""
    try:
        done = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == claim_.message.id, OutboxMessage.claim_token == claim_.token,
                   OutboxMessage.status == "sending")
            .values(claim_token=None, lease_until=None, **values)
        ).rowcount
        attempt_log = ATTEMPT_LOGS.get(claim_.message.kind)
        if done and attempt is not None and attempt_log is not None:
            attempt_log(session, claim_.message.payload, *attempt)
        session.commit()
    except Exception:
        session.rollback()
        raise
    if not done:
        log.warning("outbox %s: lease lost before its outcome was recorded", claim_.message.id)
    return bool(done)


def deliver(session, gateway: Gateway, policy: OutboxPolicy, claim_: Claim, now: dt.datetime | None = None) -> bool:
    """Send one claimed message; mark it sent, or schedule its retry, or give up. True when sent."""
    message = claim_.message
    with request_log.job("outbox_delivery", message_id=message.id, message_kind=message.kind, attempt=message.attempt,
                         gateway=gateway.name) as outcome:
        started = time.monotonic()
        try:
            answer = gateway.send(message)
        except GatewayError as exc:
            final = exc.permanent or message.attempt >= policy.max_attempts
            outcome["status"] = "failed" if final else "retry"
            log.warning("outbox %s attempt %d failed%s: %s", message.id, message.attempt,
                        " for good" if final else "", exc)
            _finish(session, claim_, {"status": "failed" if final else "pending", "last_error": str(exc)[:2000],
                                      "next_attempt_at": (now or utcnow()) + policy.backoff(message.attempt)},
                    (_attempt(started, exc.status_code, str(exc)[:500]), "failed" if final else "retrying"))
            return False
        status_code = answer if isinstance(answer, int) else None
        done = _finish(session, claim_, {"status": "sent", "sent_at": utcnow(), "last_error": None},
                       (_attempt(started, status_code, None), "delivered"))
        outcome["status"] = "sent" if done else "lease_lost"
        return done


def _attempt(started: float, status_code: int | None, error: str | None) -> dict:
    return {"at": utcnow().isoformat().replace("+00:00", "Z"), "status_code": status_code, "error": error,
            "duration_ms": round((time.monotonic() - started) * 1000)}


def webhook_gateway(session, timeout: float) -> WebhookGateway:
    """The webhook gateway over ``session``: each send reads its delivery's target, then ends that read,
    so no transaction stays open while the receiver answers."""

    def resolve(delivery_id):
        try:
            return webhooks.target(session, delivery_id)
        finally:
            session.rollback()

    return WebhookGateway(resolve, timeout)


def drain(session, gateway: Gateway, policy: OutboxPolicy, now: dt.datetime | None = None,
          stop: threading.Event | None = None) -> int:
    """Claim and deliver until nothing is due; the number of messages this worker marked sent."""
    sent = 0
    while not (stop and stop.is_set()):
        claims = claim(session, policy, now)
        if not claims:
            break
        for claim_ in claims:
            sent += deliver(session, gateway, policy, claim_, now)
    return sent


def run_sweeps(session, now: dt.datetime | None = None) -> dict:
    """Every sweep, each in its own transaction, so one failing does not stop the others."""
    report = {}
    for name, sweep in SWEEPS:
        with request_log.job("sweep", sweep=name) as outcome:
            try:
                report[name] = sweep(session, now)
                session.commit()
            except Exception:
                session.rollback()
                log.exception("sweep %s failed", name)
                report[name] = {"error": True}
                outcome["status"] = "error"
    return report


SWEEPS = (
    ("due_visits", lambda session, now: sweep_due_visits(session, sync_settings(), now)),
    ("attachments", lambda session, now: purge_orphans(session, current_storage(),
                                                       current_app.config["ATTACHMENT_ORPHAN_HOURS"], now)),
)


def run(stop: threading.Event, once: bool = False) -> None:
    """The worker loop, in an app context: drain the outbox, run the sweeps when their time comes."""
    config = current_app.config
    session = db.session
    gateway = KindRouter(gateway_from_config(config),
                         {webhooks.OUTBOX_KIND: webhook_gateway(session, config["WEBHOOK_TIMEOUT_SECONDS"])})
    policy = OutboxPolicy.from_config(config)
    last_sweep = None
    log.info("worker started (gateway %s)", gateway.name)
    while not stop.is_set():
        if last_sweep is None or time.monotonic() - last_sweep >= config["SWEEP_INTERVAL_SECONDS"]:
            log.info("sweeps: %s", run_sweeps(session))
            last_sweep = time.monotonic()
        try:
            sent = drain(session, gateway, policy, stop=stop)
        except Exception:  # the database went away: wait and try again, never die
            session.rollback()
            log.exception("outbox delivery failed; retrying in %s s", config["WORKER_POLL_SECONDS"])
            sent = 0
        if once:
            break
        if not sent:
            stop.wait(config["WORKER_POLL_SECONDS"])
    log.info("worker stopped")


def init_app(app) -> None:
    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="drain what is due, run the sweeps once, and exit")
    def worker_command(once):
        """Deliver the outbox (SMS, webhooks) with retries, and run the sweeps on a schedule."""
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        try:
            gateway_from_config(current_app.config)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        run(stop, once=once)

    @app.cli.command("sweep")
    def sweep_command():
        """Run the sweeps once: due-visit tasks for members, and a list of households with no member."""
        report = run_sweeps(db.session)
        due = report.get("due_visits", {})
        if due.get("error"):
            raise click.ClickException("the due-visit sweep failed; see the log")
        click.echo(f"due visits: {due['overdue']} households overdue, {due['tasks_opened']} tasks opened, "
                   f"{len(due['unpaired_overdue'])} overdue households with no member")
        for household_id in due["unpaired_overdue"]:
            click.echo(f"  no member: {household_id}")
