"""Prometheus metrics at ``/metrics``: sync traffic counted when it commits, gauges read from the database.

Under gunicorn every worker is its own process, so counters and histograms live in prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``) and a scrape of any worker adds up all of them;
``deploy/gunicorn.conf.py`` clears the directory at start and marks dead workers. Without that setting
(tests, ``make run``) each app keeps its own registry.

Sync counts are taken where the push and pull services return, but only recorded once their
transaction commits: a push that rolls back (and is retried by ``@write``) is counted once, as what the
tablet was finally answered. Labels take values from fixed sets (entities, statuses, error codes,
endpoint names), never from what a client sent, so a client cannot blow up the number of series.

``/metrics`` answers 404, in the one error shape, unless the caller holds ``METRICS_TOKEN`` (when set)
and comes from ``METRICS_ALLOW_CIDRS`` (when set); with neither set it is off.
"""
from __future__ import annotations

import datetime as dt
import hmac
import ipaddress

from flask import Flask, Response, current_app, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from schemas.sync import ENTITIES
from sync.errors import NotFoundError
from sync.models import OutboxMessage, Request, Task, utcnow

from . import logging as request_log
from .errors import STATUS_BY_CODE
from .extensions import db

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_AFTER_COMMIT = "lianhu_metrics_after_commit"


class Metrics:
    """The app's metric objects; in multiprocess mode their values live in files, not in a registry."""

    def __init__(self, multiprocess_dir: str | None):
        self.multiprocess_dir = multiprocess_dir
        registry = None if multiprocess_dir else CollectorRegistry()
        self.registry = registry
        self.requests = Counter("lianhu_http_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram("lianhu_http_request_duration_seconds", "Time to answer a request, by endpoint",
                                 ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=registry)
        self.pushes = Counter("lianhu_sync_pushes", "Push batches committed; `replayed` answered stored results",
                              ["outcome"], registry=registry)
        self.ops = Counter("lianhu_sync_ops", "Ops of committed (not replayed) pushes, by entity and result "
                           "status; merges are status=merged", ["entity", "status"], registry=registry)
        self.conflicts = Counter("lianhu_sync_conflicts", "Fields changed on both sides in merged ops",
                                 ["entity"], registry=registry)
        self.rejected = Counter("lianhu_sync_rejected_ops", "Rejected ops (kept in quarantine), by error code",
                                ["code"], registry=registry)
        self.pull_pages = Counter("lianhu_sync_pull_pages", "Pull pages answered", registry=registry)
        self.pulled = Counter("lianhu_sync_pulled_changes", "Changes sent in pull pages, by action",
                              ["action"], registry=registry)
        self.workers = Gauge("lianhu_workers", "Live web worker processes", multiprocess_mode="livesum",
                             registry=registry)
        self.workers.set(1)

    def exposition(self, session: Session) -> bytes:
        """Every process's counters, then the gauges read from the database by this scrape."""
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source, path=self.multiprocess_dir)
        else:
            source = self.registry
        from_database = CollectorRegistry()
        from_database.register(DatabaseGauges(session, current_app.config))
        return generate_latest(source) + generate_latest(from_database)


class DatabaseGauges:
    """Backlogs read at scrape time with a few indexed counts; nothing per household or per record."""

    def __init__(self, session: Session, config):
        self.session, self.config = session, config

    def collect(self):
        from .services import fleet

        session, now = self.session, utcnow()
        by_status = dict(session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
        depth = GaugeMetricFamily("lianhu_outbox_messages", "Outbox messages, by status", labels=["status"])
        for status in ("pending", "sending", "sent", "failed"):
            depth.add_metric([status], by_status.get(status, 0))
        yield depth
        oldest = session.scalar(select(func.min(OutboxMessage.created_at))
                                .where(OutboxMessage.status.in_(("pending", "sending"))))
        yield GaugeMetricFamily("lianhu_outbox_oldest_age_seconds", "Age of the oldest undelivered outbox message",
                                value=_age(oldest, now))
        yield GaugeMetricFamily("lianhu_due_visits", "Open due-visit tasks (households overdue for a visit)",
                                value=session.scalar(select(func.count()).select_from(Task).where(
                                    Task.kind == "due_visit", Task.status == "open", Task.deleted_at.is_(None))))
        yield GaugeMetricFamily("lianhu_feedback_overdue", "Resolved requests whose feedback is past its deadline",
                                value=session.scalar(select(func.count()).select_from(Request).where(
                                    Request.status == "resolved", Request.feedback_due_at < now,
                                    Request.deleted_at.is_(None))))
        flagged = GaugeMetricFamily("lianhu_devices_flagged", "Tablets flagged by fleet health", labels=["flag"])
        for flag, count in fleet.flag_counts(session, self.config, now).items():
            flagged.add_metric([flag], count)
        yield flagged


def _age(moment: dt.datetime | None, now: dt.datetime) -> float:
    if moment is None:
        return 0.0
    return max((now - moment).total_seconds(), 0.0)


def _metrics() -> Metrics | None:
    return current_app.extensions.get("lianhu_metrics")


def after_commit(session: Session, record) -> None:
    """Run ``record()`` once ``session``'s transaction commits; forget it if the transaction rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(record)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session):
    for record in session.info.pop(_AFTER_COMMIT, []):
        record()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session):
    session.info.pop(_AFTER_COMMIT, None)


def count_push(session: Session, batch, results: list[dict], replayed: bool) -> None:
    """Count a push answer by entity, status, conflicts and rejection codes, once it commits."""
    metrics = _metrics()
    if metrics is None:
        return
    if replayed:
        after_commit(session, lambda: metrics.pushes.labels("replayed").inc())
        return
    entities = {op.op_id: op.entity if op.entity in ENTITIES else "invalid" for op in batch.ops}

    def record():
        metrics.pushes.labels("applied").inc()
        for result in results:
            entity = entities.get(result["op_id"], "invalid")
            metrics.ops.labels(entity, result["status"]).inc()
            if result["conflicts"]:
                metrics.conflicts.labels(entity).inc(len(result["conflicts"]))
            if result["status"] == "rejected":
                code = (result.get("error") or {}).get("code")
                metrics.rejected.labels(code if code in STATUS_BY_CODE else "other").inc()

    after_commit(session, record)


def count_pull(session: Session, changes: list[dict]) -> None:
    """Count a pull page and its changes by action, once it commits."""
    metrics = _metrics()
    if metrics is None:
        return
    actions = {}
    for change in changes:
        actions[change["action"]] = actions.get(change["action"], 0) + 1

    def record():
        metrics.pull_pages.inc()
        for action, count in actions.items():
            metrics.pulled.labels(action).inc(count)

    after_commit(session, record)


def _allowed(config) -> bool:
    token, networks = config["METRICS_TOKEN"], config["METRICS_ALLOW_CIDRS"]
    if not token and not networks:
        return False
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            return False
    if networks:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        if not any(address in network for network in networks):
            return False
    return True


def init_app(app: Flask) -> None:
    app.extensions["lianhu_metrics"] = Metrics(app.config["PROMETHEUS_MULTIPROC_DIR"])

    @app.after_request
    def _observe_request(response):
        metrics = _metrics()
        endpoint = request.endpoint or "unmatched"  # never the raw path: one series per route
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        seconds = request_log.request_seconds()
        if seconds is not None:
            metrics.latency.labels(endpoint, request.method).observe(seconds)
        return response

    @app.get("/metrics")
    def prometheus_metrics():
        """Prometheus text format; 404 unless the metrics token and network allow it."""
        if not _allowed(current_app.config):
            raise NotFoundError("No such page.")
        return Response(_metrics().exposition(db.session), content_type=CONTENT_TYPE_LATEST)
