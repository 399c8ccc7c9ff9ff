"""/metrics under real gunicorn with deploy/gunicorn.conf.py: two workers' counts add up exactly, and a
worker that dies keeps its counts while its live gauge goes (the ``child_exit`` hook).

The server gets a database of its own (a SQLite file, or ``<DATABASE_URL>_metrics`` on PostgreSQL), so it
can reset the schema without touching the one the other end-to-end tests share.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import RESET_SCHEMA, ROOT, _free_port, _wait_ready

TOKEN = "e2e-metrics-token-0123456789"
PUSHERS, BATCHES, OPS = 4, 6, 3


def _admin_connection(url):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _own_database(folder) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{folder / 'metrics.db'}"
    base, _, name = url.rpartition("/")
    own = f"{name}_metrics"
    with _admin_connection(url) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (own,)).fetchone():
            conn.execute(f'CREATE DATABASE "{own}"')
    return f"{base}/{own}"


def _drop_own_database(own_url: str) -> None:
    """CI drops the database it made for the run; the one made here goes when the module is done with it."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return
    with _admin_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{own_url.rpartition("/")[2]}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    metrics_dir = folder / "prometheus"
    env = {**os.environ, "DATABASE_URL": _own_database(folder), "INSTANCE_PATH": str(folder), "FLASK_APP": "wsgi",
           "SECRET_KEY": "e2e-secret-key-0123456789abcdef", "LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "-c", RESET_SCHEMA], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "-m", "flask", "create-user", "admin", "--role", "admin", "--password",
                    "metrics-admin-password"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    env.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2", "METRICS_TOKEN": TOKEN,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")  # on_starting clears it
    log = open(folder / "gunicorn.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield {"url": url, "dir": metrics_dir, "process": process}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        _drop_own_database(env["DATABASE_URL"])


def _scrape(url) -> dict:
    response = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return _samples(response.text)


def _samples(text) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _per_worker(metrics_dir, tmp_path) -> dict[int, dict]:
    """Each worker's own counters, read from its file alone."""
    result = {}
    for path in metrics_dir.glob("counter_*.db"):
        alone = tmp_path / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        result[int(path.stem.split("_")[1])] = _samples(generate_latest(registry).decode())
    return result


def _setup(url):
    admin = requests.Session()
    token = admin.post(url + "/api/v1/auth/token",
                       json={"username": "admin", "password": "metrics-admin-password"}).json()["token"]
    admin.headers["Authorization"] = f"Bearer {token}"
    community = admin.post(url + "/api/v1/areas", json={"name": "社区", "kind": "community", "parent_id": None}).json()
    name = f"member-{uuid.uuid4().hex[:8]}"
    member = admin.post(url + "/api/v1/users", json={"username": name, "display_name": name, "role": "member",
                                                     "area_id": community["id"], "password": "password-123"}).json()
    household = admin.post(url + "/api/v1/households", json={"area_id": community["id"], "address": "1号"}).json()
    admin.put(url + f"/api/v1/households/{household['id']}/pairing", json={"member_id": member["id"]})

    def tablet():
        code = admin.post(url + f"/api/v1/users/{member['id']}/enrollment-codes").json()["code"]
        body = requests.post(url + "/api/v1/devices/enroll", json={"code": code, "name": "t"}).json()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {body['token']}"
        return session

    return household["id"], tablet


def _push(url, tablet, household_id):
    ops = [{"op_id": str(uuid.uuid4()), "entity": "visit", "id": str(uuid.uuid4()), "action": "create",
            "base_version": None, "recorded_at": "2026-12-01T09:00:00+08:00",
            "data": {"household_id": household_id, "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"}}
           for _ in range(OPS)]
    body = {"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": ops}
    response = tablet.post(url + "/api/v1/sync/push", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied"] * OPS


def _push_from_all(url, household_id, tablets):
    failures = []

    def run(tablet):
        try:
            for _ in range(BATCHES):
                _push(url, tablet, household_id)
        except Exception as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in tablets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def _pull_all(url, tablet) -> tuple[int, int]:
    pages = changes = 0
    cursor = None
    while True:
        page = tablet.get(url + "/api/v1/sync/pull?limit=7" + (f"&cursor={cursor}" if cursor else ""),
                          timeout=60).json()
        pages, changes, cursor = pages + 1, changes + len(page["changes"]), page["cursor"]
        if not page["has_more"]:
            return pages, changes


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_two_workers_add_up_and_a_dead_worker_keeps_its_counts(server, tmp_path):
    url = server["url"]
    assert requests.get(url + "/metrics", timeout=10).status_code == 404  # no token
    household_id, tablet = _setup(url)
    tablets = [tablet() for _ in range(PUSHERS)]
    _push_from_all(url, household_id, tablets)
    pages, changes = _pull_all(url, tablets[0])
    assert changes == 1 + PUSHERS * BATCHES * OPS  # the household and every visit

    samples = _scrape(url)
    batches = PUSHERS * BATCHES
    assert _value(samples, "lianhu_sync_pushes_total", outcome="applied") == batches
    assert _value(samples, "lianhu_sync_ops_total", entity="visit", status="applied") == batches * OPS
    assert _value(samples, "lianhu_sync_pull_pages_total") == pages
    assert _value(samples, "lianhu_sync_pulled_changes_total", action="upsert") == changes
    assert _value(samples, "lianhu_http_requests_total", endpoint="sync.Push", method="POST", status="200") == batches
    assert _value(samples, "lianhu_workers") == 2
    # both workers served pushes, and their files add up to the totals above
    workers = _per_worker(server["dir"], tmp_path / "before")
    assert 999999 not in workers  # the stale file was cleared at start
    per_worker = [_value(s, "lianhu_sync_pushes_total", outcome="applied") for s in workers.values()]
    assert sum(per_worker) == batches and sum(1 for n in per_worker if n > 0) == 2, per_worker

    # kill a worker that served pushes: gunicorn starts another, child_exit drops the dead one's live gauge
    victim = next(pid for pid, s in workers.items() if _value(s, "lianhu_sync_pushes_total", outcome="applied"))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = {int(p.stem.rsplit("_", 1)[1]) for p in server["dir"].glob("gauge_livesum_*.db")}
        if victim not in live and len(live) == 2:
            break
        time.sleep(0.2)
    _push_from_all(url, household_id, tablets[:1])
    samples = _scrape(url)
    assert _value(samples, "lianhu_workers") == 2
    assert _value(samples, "lianhu_sync_pushes_total", outcome="applied") == batches + BATCHES
    assert _value(samples, "lianhu_sync_ops_total", entity="visit", status="applied") == (batches + BATCHES) * OPS
    assert server["process"].poll() is None
