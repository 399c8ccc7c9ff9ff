"""The peers, on 127.0.0.1, each installed in a folder of its own outside the repository.

- Kinto (PyPI) with its memory and PostgreSQL backends: push through ``POST /v1/batch``, pull with
  ``_since`` and ``_sort=last_modified``, following ``Next-Page``.
- PouchDB Server (npm) with LevelDB and in memory: push through ``_bulk_docs``, pull through ``_changes``.

Both get the same visit documents, batch sizes and page sizes as Lianhu. Nothing here is committed: the
folder defaults to ``$TMPDIR/lianhu-bench-peers`` (``BENCH_PEERS_DIR`` moves it).
"""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from .harness import free_port, wait_for
from .stats import Figure, Timer
from .workload import SUMMARIES, new_visits

PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR") or Path(tempfile.gettempdir()) / "lianhu-bench-peers")
KINTO_VERSION = "26.5.0"
POUCHDB_SERVER = "pouchdb-server@4.2.0"
KINTO_PASSWORD = "bench-password-123"
SLOW_PEER_RECORDS_PER_RUN = 500
"""Kinto pushes a few hundred records a second: it gets fewer batches (of the same size) per run."""


class PeerUnavailable(RuntimeError):
    pass


def _run(args: list[str], cwd: Path, log: Path, timeout: int = 900) -> None:
    with open(log, "ab") as out:
        result = subprocess.run(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise PeerUnavailable(f"`{' '.join(args)}` failed: " + " / ".join(tail))


class Process:
    def __init__(self, args: list[str], cwd: Path, log: Path, env: dict | None = None):
        self.out = open(log, "ab")
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self.out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


# --- Kinto -------------------------------------------------------------------------------------------


def install_kinto() -> Path:
    venv = PEERS_DIR / "kinto-venv"
    if not (venv / "bin" / "kinto").exists():
        PEERS_DIR.mkdir(parents=True, exist_ok=True)
        log = PEERS_DIR / "kinto-install.log"
        _run(["python3", "-m", "venv", str(venv)], PEERS_DIR, log)
        _run([str(venv / "bin" / "pip"), "install", "-q", f"kinto[postgresql]=={KINTO_VERSION}"], PEERS_DIR, log)
    return venv / "bin" / "kinto"


def _kinto_ini(kinto: Path, folder: Path, backend: str, pg_url: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / f"{backend}.ini"
    ini.unlink(missing_ok=True)
    _run([str(kinto), "init", "--ini", str(ini), "--backend", backend, "--cache-backend", backend,
          "--host", "127.0.0.1"], folder, folder / "kinto.log")
    text = ini.read_text()
    if pg_url:
        text = re.sub(r"^(kinto\.(storage|cache|permission)_url\s*=).*$", rf"\1 {pg_url}", text, flags=re.M)
    # a batch as large as Lianhu's (the default of 25 answers 400 errno 107), and quiet logs
    text = text.replace("[app:main]", "[app:main]\nkinto.batch_max_requests = 500\nkinto.paginate_by = 1000", 1)
    text = re.sub(r"^level = (INFO|DEBUG)$", "level = WARNING", text, flags=re.M)
    ini.write_text(text)
    if pg_url:
        _run([str(kinto), "migrate", "--ini", str(ini)], folder, folder / "kinto.log")
    return ini


class Kinto:
    def __init__(self, base: str, label: str):
        self.base, self.label = base, label
        self.http = requests.Session()
        self.http.auth = ("admin", KINTO_PASSWORD)
        self.collection = ""
        self.versions: dict[str, int] = {}
        """record id -> ``last_modified`` last seen"""

    def setup(self) -> None:
        requests.put(f"{self.base}/v1/accounts/admin", json={"data": {"password": KINTO_PASSWORD}},
                     timeout=30).raise_for_status()
        self.http.put(f"{self.base}/v1/buckets/bench", json={}, timeout=30).raise_for_status()

    def new_collection(self) -> None:
        self.collection = f"visits{uuid.uuid4().hex[:8]}"
        self.http.put(f"{self.base}/v1/buckets/bench/collections/{self.collection}", json={},
                      timeout=30).raise_for_status()

    def _path(self, record_id: str) -> str:
        return f"/buckets/bench/collections/{self.collection}/records/{record_id}"

    def batch(self, requests_: list[dict]) -> list[dict]:
        response = self.http.post(f"{self.base}/v1/batch", json={"requests": requests_}, timeout=300)
        response.raise_for_status()
        return response.json()["responses"]

    def push_creates(self, visits) -> None:
        answers = self.batch([{"method": "PUT", "path": self._path(vid), "body": {"data": data}}
                              for vid, data in visits])
        for (vid, _), answer in zip(visits, answers):
            if answer["status"] not in (200, 201):
                raise RuntimeError(f"Kinto answered {answer['status']}: {answer['body']}")
            self.versions[vid] = answer["body"]["data"]["last_modified"]

    def push_updates(self, changes: list[tuple[str, dict]]) -> dict[int, int]:
        """PATCH each record with ``If-Match`` on the version last seen; a stale one answers 412."""
        answers = self.batch([{"method": "PATCH", "path": self._path(vid), "body": {"data": data},
                               "headers": {"If-Match": f'"{self.versions[vid]}"'}} for vid, data in changes])
        statuses: dict[int, int] = {}
        for (vid, _), answer in zip(changes, answers):
            statuses[answer["status"]] = statuses.get(answer["status"], 0) + 1
            if answer["status"] == 200:
                self.versions[vid] = answer["body"]["data"]["last_modified"]
        return statuses

    def pull(self, since: int | None, limit: int) -> tuple[int, int | None]:
        url = (f"{self.base}/v1/buckets/bench/collections/{self.collection}/records"
               f"?_sort=last_modified&_limit={limit}" + (f"&_since={since}" if since is not None else ""))
        count, newest = 0, since
        while url:
            response = self.http.get(url, timeout=300)
            response.raise_for_status()
            records = response.json()["data"]
            count += len(records)
            if records:
                newest = max(newest or 0, records[-1]["last_modified"])
            url = response.headers.get("Next-Page")
        return count, newest


# --- PouchDB Server ------------------------------------------------------------------------------------


def install_pouchdb() -> Path:
    folder = PEERS_DIR / "pouch"
    binary = folder / "node_modules" / ".bin" / "pouchdb-server"
    if not binary.exists():
        if shutil.which("npm") is None:
            raise PeerUnavailable("npm is not installed on this machine")
        folder.mkdir(parents=True, exist_ok=True)
        log = PEERS_DIR / "pouch-install.log"
        if not (folder / "package.json").exists():
            _run(["npm", "init", "-y"], folder, log)
        _run(["npm", "install", "--no-audit", "--no-fund", POUCHDB_SERVER], folder, log, timeout=1200)
    return binary


class Pouch:
    def __init__(self, base: str, label: str):
        self.base, self.label = base, label
        self.http = requests.Session()
        self.db = ""
        self.versions: dict[str, str] = {}
        """doc id -> ``_rev`` last seen"""

    def setup(self) -> None:
        pass

    def new_collection(self) -> None:
        self.db = f"visits{uuid.uuid4().hex[:8]}"
        self.http.put(f"{self.base}/{self.db}", timeout=30).raise_for_status()

    def _bulk(self, docs: list[dict]) -> list[dict]:
        response = self.http.post(f"{self.base}/{self.db}/_bulk_docs", json={"docs": docs}, timeout=300)
        response.raise_for_status()
        return response.json()

    def push_creates(self, visits) -> None:
        for (vid, _), answer in zip(visits, self._bulk([{"_id": vid, **data} for vid, data in visits])):
            if not answer.get("ok"):
                raise RuntimeError(f"PouchDB answered {answer}")
            self.versions[vid] = answer["rev"]

    def push_updates(self, changes: list[tuple[str, dict]]) -> dict[int, int]:
        """A doc with the ``_rev`` last seen; a stale one answers a ``conflict`` error (409)."""
        docs = [{"_id": vid, "_rev": self.versions[vid], **data} for vid, data in changes]
        statuses: dict[int, int] = {}
        for (vid, _), answer in zip(changes, self._bulk(docs)):
            status = 201 if answer.get("ok") else 409
            statuses[status] = statuses.get(status, 0) + 1
            if answer.get("ok"):
                self.versions[vid] = answer["rev"]
        return statuses

    def pull(self, since, limit: int) -> tuple[int, object]:
        count, seq = 0, since if since is not None else 0
        while True:
            response = self.http.get(f"{self.base}/{self.db}/_changes",
                                     params={"include_docs": "true", "since": seq, "limit": limit}, timeout=300)
            response.raise_for_status()
            body = response.json()
            count += len(body["results"])
            seq = body["last_seq"]
            if len(body["results"]) < limit:
                return count, seq


# --- the same figures for every peer ------------------------------------------------------------------


def bench_peer(peer, sizes, rng: random.Random, households: list[str], slow: bool) -> list[Figure]:
    runs = min(sizes.runs, 3) if slow else sizes.runs
    figures = []
    peer.setup()
    peer.new_collection()  # warm up (first connections, lazy imports, JIT) before any clock runs
    for _ in range(3):
        peer.push_creates(new_visits(households, 100, rng))
    peer.pull(None, sizes.page)
    for batch, batches in sizes.create_batches.items():
        if slow:
            batches = max(1, min(batches, SLOW_PEER_RECORDS_PER_RUN // batch))
        figure = Figure(f"push create, batches of {batch}", "ops/s", note=peer.label)
        for _ in range(runs):
            peer.new_collection()
            chunks = [new_visits(households, batch, rng) for _ in range(batches)]
            with Timer() as t:
                for chunk in chunks:
                    peer.push_creates(chunk)
            figure.values.append(batch * batches / t.seconds)
        figures.append(figure)
    for batch, batches in sizes.update_batches.items():
        if slow:
            batches = max(1, min(batches, SLOW_PEER_RECORDS_PER_RUN // batch))
        figure = Figure(f"push update, batches of {batch}, 1/4 stale", "ops/s",
                        note=f"{peer.label}; a stale op is refused, not merged")
        unexpected = 0
        for _ in range(runs):
            peer.new_collection()
            seconds = 0.0
            for _ in range(batches):
                visits = new_visits(households, batch, rng)
                peer.push_creates(visits)
                stale = visits[:batch // 4]
                seen = {vid: peer.versions[vid] for vid, _ in stale}
                peer.push_updates([(vid, {"summary": SUMMARIES[0] + " (二号平板)"}) for vid, _ in stale])
                peer.versions.update(seen)  # the author's tablet still holds the versions before that edit
                changes = [(vid, {"summary": SUMMARIES[1], "duration_minutes": rng.randint(10, 60)})
                           for vid, _ in visits]
                with Timer() as t:
                    statuses = peer.push_updates(changes)
                seconds += t.seconds
                refused = sum(n for status, n in statuses.items() if status >= 400)
                if refused < batch // 4:
                    raise RuntimeError(f"{peer.label}: expected {batch // 4} stale refusals, got {statuses}")
                unexpected += refused - batch // 4
            figure.values.append(batch * batches / seconds)
        if unexpected:
            figure.note += f"; {unexpected} current-version updates were refused too"
        figures.append(figure)
    # pulls: a full pull of the same number of records, then an incremental one
    peer.new_collection()
    for start in range(0, sizes.pull_records, 500):
        peer.push_creates(new_visits(households, min(500, sizes.pull_records - start), rng))
    full = Figure(f"full pull of {sizes.pull_records:,} records, pages of {sizes.page}", "records/s",
                  note=peer.label)
    for _ in range(runs):
        with Timer() as t:
            count, since = peer.pull(None, sizes.page)
        if count != sizes.pull_records:
            raise RuntimeError(f"{peer.label}: full pull brought {count}, expected {sizes.pull_records}")
        full.values.append(count / t.seconds)
    incremental = Figure(f"incremental pull of {sizes.incremental_records:,} new records, pages of {sizes.page}",
                         "records/s", note=peer.label)
    for _ in range(runs):
        for start in range(0, sizes.incremental_records, 500):
            peer.push_creates(new_visits(households, min(500, sizes.incremental_records - start), rng))
        with Timer() as t:
            count, since = peer.pull(since, sizes.page)
        if count < sizes.incremental_records:
            raise RuntimeError(f"{peer.label}: incremental pull brought {count}")
        incremental.values.append(count / t.seconds)
    return figures + [full, incremental]


def _recreate_database(pg_url: str, name: str) -> str:
    import psycopg

    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg_url.rsplit("/", 1)[0] + "/" + name


def bench_all(sizes, rng: random.Random, log, pg_url: str | None,
              which: tuple[str, ...] = ("kinto", "pouch")) -> dict[str, object]:
    """Every peer's figures; a peer that cannot be installed or started is reported with its error."""
    results: dict[str, object] = {}
    households = [str(uuid.uuid4()) for _ in range(20)]
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    work = PEERS_DIR / ("run-" + "-".join(which))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    configs = []
    try:
        if "kinto" not in which:
            raise LookupError
        kinto = install_kinto()
        configs.append(("Kinto 26.5, memory", "kinto", (kinto, "memory", None)))
        if pg_url:
            configs.append(("Kinto 26.5, PostgreSQL", "kinto", (kinto, "postgresql", "kinto_bench")))
    except (PeerUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        results["Kinto"] = f"could not be installed: {exc}"
    except LookupError:
        pass
    try:
        if "pouch" not in which:
            raise LookupError
        pouch = install_pouchdb()
        configs.append(("PouchDB Server 4.2, LevelDB", "pouch", (pouch, "leveldb")))
        configs.append(("PouchDB Server 4.2, in memory", "pouch", (pouch, "memory")))
    except (PeerUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        results["PouchDB Server"] = f"could not be installed: {exc}"
    except LookupError:
        pass
    for label, kind, spec in configs:
        port = free_port()
        process = None
        try:
            log(f"peer {label}: starting on 127.0.0.1:{port}")
            if kind == "kinto":
                binary, backend, database = spec
                url = _recreate_database(pg_url, database) if database else None
                ini = _kinto_ini(binary, work / f"kinto-{backend}", backend, url)
                process = Process([str(binary), "start", "--ini", str(ini), "--port", str(port)], ini.parent,
                                  ini.parent / "kinto.log")
                base = f"http://127.0.0.1:{port}"
                wait_for(base + "/v1/")
                peer = Kinto(base, label)
            else:
                binary, adapter = spec
                folder = work / f"pouch-{adapter}"
                folder.mkdir(parents=True)
                storage = ["--in-memory"] if adapter == "memory" else ["--dir", str(folder / "data")]
                process = Process([str(binary), *storage, "--host", "127.0.0.1", "--port", str(port),
                                   "--config", str(folder / "config.json")], folder, folder / "pouch.log")
                base = f"http://127.0.0.1:{port}"
                wait_for(base + "/")
                peer = Pouch(base, label)
            results[label] = bench_peer(peer, sizes, rng, households, slow=kind == "kinto")
            for figure in results[label]:
                log(f"peer {label}: {figure.name}: {figure.triple()} {figure.unit}")
        except Exception as exc:  # a peer's failure is a finding to report, not the end of the run
            results[label] = f"failed: {type(exc).__name__}: {exc}"
            log(f"peer {label}: {results[label]}")
        finally:
            if process is not None:
                process.stop()
            time.sleep(0.5)
    return results
