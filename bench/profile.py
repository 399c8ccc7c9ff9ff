"""Where a gunicorn worker spends its time: py-spy samples of the real server, summed per function.

``python -m bench.profile push|pull`` starts its own gunicorn (one worker, SQLite by default or
``--pg-url``), records the worker with py-spy while a tablet pushes (or pulls), and prints the
functions by inclusive and by own share of the samples.
"""
from __future__ import annotations

import argparse
import random
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from .harness import BIN, REPO, Database, Gunicorn, World
from .workload import create_bodies, new_visits

OUT = REPO / "bench" / "out" / "profile"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``module.py:func``: lines merged, paths shortened."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{match['func']}"


def summarize(folded: Path, top: int = 25) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    share = lambda c: [(name, 100.0 * n / total) for name, n in c.most_common(top)]  # noqa: E731
    return total, share(inclusive), share(own)


def record(database: Database, what: str, seconds: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    database.reset_schema()
    server = Gunicorn(database, 1, OUT / "gunicorn.log").start()
    folded = OUT / f"{what}-{database.kind}.folded"
    try:
        world = World(server)
        world.create_admin()
        world.member("m", 100)
        tablet = world.tablet("m")
        rng = random.Random(1)
        if what == "pull":
            for body in create_bodies(new_visits(world.households["m"], 9_900, rng), 500):
                tablet.push_raw(body)
        spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(server.worker_pids()[0]),
                                "--duration", str(seconds), "--rate", "200", "--format", "raw",
                                "-o", str(folded), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        deadline = time.monotonic() + seconds - 1.5
        while time.monotonic() < deadline:
            if what == "push":
                for body in create_bodies(new_visits(world.households["m"], 500, rng), 100):
                    tablet.push_raw(body)
            else:
                world.tablet("m").pull_all(500)
        spy.wait()
    finally:
        server.stop()
    return folded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["push", "pull"])
    parser.add_argument("--pg-url", default=None, help="profile on this PostgreSQL database (it is wiped)")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--folded", type=Path, default=None, help="summarize an existing recording instead")
    args = parser.parse_args(argv)
    if args.folded:
        folded = args.folded
    else:
        if args.pg_url:
            database = Database("postgresql", args.pg_url.replace("postgresql://", "postgresql+psycopg://", 1),
                                OUT / "pg")
        else:
            folder = OUT / "sqlite"
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("profile.db*"):
                stale.unlink()
            database = Database("sqlite", f"sqlite:///{folder / 'profile.db'}", folder)
        folded = record(database, args.what, args.seconds)
    total, inclusive, own = summarize(folded)
    print(f"{total} samples from {folded}")
    print("\ninclusive share (the function and what it calls):")
    for name, pct in inclusive:
        print(f"  {pct:5.1f}%  {name}")
    print("\nown share (time in the function's own lines):")
    for name, pct in own:
        print(f"  {pct:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
