"""``python -m bench.run [--short|--full] [--db sqlite,postgresql] [--skip-peers]``: every figure, one run.

Writes the tables into the generated part of ``BENCHMARKS.md`` (``--full``) or ``bench/out/BENCHMARKS.short.md``
(``--short``), and the raw figures as JSON beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import bulk, lianhu, machine, raw, report
from .harness import REPO, Database, Gunicorn, World
from .stats import Figure

OUT = REPO / "bench" / "out"
PG_DEFAULT = "postgresql://postgres@127.0.0.1/lianhu_bench"
CONCURRENT_BATCH = 20


@dataclass(frozen=True)
class Sizes:
    runs: int
    create_batches: dict[int, int]  # batch size -> batches per run
    update_batches: dict[int, int]
    pull_records: int
    pull_households: int
    incremental_records: int
    page: int
    scale_small: int
    scale_large: int
    concurrency: tuple[int, ...]
    concurrent_ops: int
    workers: int = 2


SIZES = {
    "short": Sizes(runs=3, create_batches={100: 5, 500: 2}, update_batches={100: 4, 500: 1}, pull_records=2_000,
                   pull_households=20, incremental_records=500, page=500, scale_small=10_000, scale_large=50_000,
                   concurrency=(1, 10, 100), concurrent_ops=2_000),
    # Sized so that one run of both databases and the four peers stays under about 25 minutes on two shared
    # cores; each figure is still over 5 runs (3 for the peers that push a few hundred records a second).
    "full": Sizes(runs=5, create_batches={100: 4, 500: 1}, update_batches={100: 2, 500: 1}, pull_records=10_000,
                  pull_households=100, incremental_records=500, page=500, scale_small=10_000,
                  scale_large=500_000, concurrency=(1, 10, 100), concurrent_ops=1_000),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def bench_database(database: Database, sizes: Sizes, rng: random.Random) -> dict[str, list[Figure]]:
    """Every Lianhu figure and its limit on one database."""
    label = database.label
    sections: dict[str, list[Figure]] = {"push": [], "pull": [], "limit": [], "scale": [], "concurrency": []}
    log(f"{label}: fresh schema, gunicorn with {sizes.workers} workers")
    database.reset_schema()
    server = Gunicorn(database, sizes.workers, OUT / f"gunicorn-{database.kind}.log").start()
    try:
        world = World(server)
        world.create_admin()
        world.member("pusher", 20)
        author, second = world.tablet("pusher"), world.tablet("pusher")
        world.member("puller", sizes.pull_households)
        puller = world.tablet("puller")
        world.member("incr", 10)
        incr_writer, incr_reader = world.tablet("incr"), world.tablet("incr")
        crowd = []
        for i in range(max(sizes.concurrency)):
            world.member(f"c{i:03d}", 1)
            crowd.append((world.tablet(f"c{i:03d}"), world.households[f"c{i:03d}"]))
        log(f"{label}: world ready ({len(world.members)} members)")

        created: list[str] = []
        for batch, batches in sizes.create_batches.items():
            figure, ids = lianhu.push_creates(author, world.households["pusher"], batch, batches, sizes.runs, rng,
                                              label)
            sections["push"].append(figure)
            created += ids
            log(f"{label}: {figure.name}: {figure.triple()} {figure.unit}")
        for batch, batches in sizes.update_batches.items():
            figure = lianhu.push_updates(author, second, created, batch, batches, sizes.runs, rng, label)
            sections["push"].append(figure)
            log(f"{label}: {figure.name}: {figure.triple()} {figure.unit}")

        raw.create_table(database)
        ids = {"community": world.community["id"], "author": world.members["pusher"]["id"],
               "device": author.device_id}
        methods = ["executemany"] + (["copy"] if database.kind == "postgresql" else [])
        for batch, batches in sizes.create_batches.items():
            for method in methods:
                figure = raw.insert_rate(database, method, world.households["pusher"], batch, batches, sizes.runs,
                                         ids, rng)
                sections["limit"].append(figure)
                log(f"{label}: {figure.name}: {figure.triple()} {figure.unit}")
        raw.drop_table(database)

        visits = sizes.pull_records - sizes.pull_households
        from .workload import create_bodies, new_visits

        for body in create_bodies(new_visits(world.households["puller"], visits, rng), 500):
            puller.push_raw(body)
        admin_id, area_id = world.admin_user["id"], world.building["id"]
        bulk.fill_households(database, sizes.scale_small, world.community["id"], area_id, admin_id)
        log(f"{label}: {bulk.count_households(database):,} households in the database")

        full = lianhu.pull_full(world, "puller", sizes.page, sizes.runs, sizes.pull_records, label)
        sections["pull"].append(full)
        log(f"{label}: {full.name}: {full.triple()} {full.unit}")
        limit = raw.select_rate(database, world.members["puller"]["id"], sizes.page, sizes.runs, sizes.pull_records)
        sections["limit"].append(limit)
        log(f"{label}: {limit.name}: {limit.triple()} {limit.unit}")
        small_incr = Figure(f"incremental pull of {sizes.incremental_records:,}", "s", lower_better=True)
        incremental = lianhu.pull_incremental(incr_writer, incr_reader, world.households["incr"],
                                              sizes.incremental_records, sizes.page, sizes.runs, rng, label,
                                              small_incr)
        sections["pull"].append(incremental)
        log(f"{label}: {incremental.name}: {incremental.triple()} {incremental.unit}")

        for n in sizes.concurrency:
            # the same total of ops at every level: n tablets, each pushing its share in batches of 20 (a day's
            # visits), so the figures compare the server's throughput, not the amount of work
            batches = max(1, sizes.concurrent_ops // (n * CONCURRENT_BATCH))
            throughput, memory = lianhu.push_concurrent(server, crowd[:n], CONCURRENT_BATCH, batches,
                                                        min(sizes.runs, 3), rng, label)
            sections["concurrency"] += [throughput, memory]
            log(f"{label}: {throughput.name}: {throughput.triple()} ops/s; {memory.name}: {memory.triple()} MiB")

        small_full = Figure(f"full pull of {sizes.pull_records:,} records", "s", lower_better=True,
                            values=[sizes.pull_records / v for v in full.values])
        scale = {"households": [sizes.scale_small], "full": [small_full], "incremental": [small_incr]}
        log(f"{label}: bulk-loading to {sizes.scale_large:,} households")
        bulk.fill_households(database, sizes.scale_large, world.community["id"], area_id, admin_id)
        scale["households"].append(bulk.count_households(database))
        scale["full"].append(lianhu.pull_seconds(world, "puller", sizes.page, sizes.runs, sizes.pull_records,
                                                 label))
        large_incr = Figure(f"incremental pull of {sizes.incremental_records:,}", "s", lower_better=True)
        lianhu.pull_incremental(incr_writer, incr_reader, world.households["incr"], sizes.incremental_records,
                                sizes.page, min(sizes.runs, 3), rng, label, large_incr)
        scale["incremental"].append(large_incr)
        log(f"{label}: scale: full pull {scale['full'][0].triple()} s at {scale['households'][0]:,} households, "
            f"{scale['full'][1].triple()} s at {scale['households'][1]:,}")
        sections["scale"] = scale
    finally:
        server.stop()
    return sections


def ensure_database(url: str) -> None:
    """Create the run's own PostgreSQL database when it does not exist yet."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def _figures(value):
    """Figures back from a results file (dicts with a name and values), leaving everything else as it is."""
    if isinstance(value, dict) and {"name", "unit", "values"} <= value.keys():
        return Figure(**value)
    if isinstance(value, dict):
        return {k: _figures(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_figures(v) for v in value]
    return value


def merge(paths: list[Path]) -> dict:
    """One report from runs of the same sizes made side by side (e.g. one per database)."""
    parts = [_figures(json.loads(Path(p).read_text())) for p in paths]
    merged = dict(parts[0])
    merged["databases"], merged["peers"] = {}, {}
    for part in parts:
        merged["databases"].update(part["databases"])
        merged["peers"].update(part["peers"])
        if part["machine"].get("PostgreSQL") not in (None, "not used"):
            merged["machine"] = part["machine"]
    merged["seconds"] = max(part["seconds"] for part in parts)
    merged["command"] = "` and `".join(part["command"] for part in parts)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="small sizes, a few minutes (make bench)")
    mode.add_argument("--full", action="store_true", help="the sizes of issue 7 (make bench-full)")
    parser.add_argument("--db", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql; none for the peers alone")
    parser.add_argument("--skip-peers", action="store_true", help="Lianhu and the raw limit only")
    parser.add_argument("--peers", default="kinto,pouch", help="comma-separated: kinto, pouch")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_DATABASE_URL", PG_DEFAULT),
                        help="a PostgreSQL database this run may wipe (default: %(default)s)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="write BENCHMARKS.md from these results files instead of running")
    args = parser.parse_args(argv)
    if args.merge:
        results = merge(args.merge)
        target = REPO / "BENCHMARKS.md" if results["mode"] == "full" else OUT / "BENCHMARKS.short.md"
        report.write(target, results)
        log(f"wrote {target.relative_to(REPO)} from {len(args.merge)} results files")
        return 0
    # a terminated run still stops the servers it started (their finally blocks run on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = "full" if args.full else "short"
    sizes = SIZES[name]
    rng = random.Random(7)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"mode": name, "sizes": asdict(sizes), "databases": {}, "peers": {}}
    pg_version = None
    for kind in [k.strip() for k in args.db.split(",") if k.strip() not in ("", "none")]:
        if kind == "sqlite":
            folder = OUT / "sqlite"
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("bench.db*"):
                stale.unlink()
            database = Database("sqlite", f"sqlite:///{folder / 'bench.db'}", folder)
        else:
            try:
                ensure_database(args.pg_url)
            except Exception as exc:  # reported, and the other database still runs
                results["databases"]["PostgreSQL"] = f"not measured: {type(exc).__name__}: {exc}"
                log(f"PostgreSQL: {results['databases']['PostgreSQL']}")
                continue
            database = Database("postgresql", args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
                                OUT / "pg")
            pg_version = database.server_version()
        results["databases"][database.label] = bench_database(database, sizes, rng)
    if not args.skip_peers:
        from . import peers

        results["peers"] = peers.bench_all(sizes, rng, log, args.pg_url,
                                           tuple(p.strip() for p in args.peers.split(",") if p.strip()))
    results["machine"] = machine.describe(pg_version)
    results["seconds"] = time.time() - started
    results["command"] = "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    target = REPO / "BENCHMARKS.md" if name == "full" else OUT / "BENCHMARKS.short.md"
    report.write(target, results)
    kinds = "-".join(k.strip() for k in args.db.split(",") if k.strip()) + (
        "" if args.skip_peers else "-" + args.peers.replace(",", "-"))
    (OUT / f"results.{name}.{kinds}.json").write_text(
        json.dumps(results, default=report.plain, indent=1, ensure_ascii=False))
    log(f"wrote {target.relative_to(REPO)} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
