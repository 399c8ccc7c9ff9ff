"""Lianhu's own figures, all through gunicorn over HTTP: push (creates, stale updates), pull, concurrency."""
from __future__ import annotations

import random
import threading
import time

from .harness import Gunicorn, Tablet, World
from .stats import Figure, Timer
from .workload import SUMMARIES, create_bodies, new_visits, op, push_body


def _check(answer: dict, expected: dict[str, int]) -> None:
    seen: dict[str, int] = {}
    for result in answer["results"]:
        seen[result["status"]] = seen.get(result["status"], 0) + 1
    if seen != expected:
        raise RuntimeError(f"push answered {seen}, expected {expected}: {answer['results'][:2]}")


def push_creates(tablet: Tablet, households: list[str], batch: int, batches: int, runs: int,
                 rng: random.Random, label: str) -> tuple[Figure, list[str]]:
    """ops/s of create batches; answers the created visit ids (with their versions kept on the tablet)."""
    figure = Figure(f"push create, batches of {batch}", "ops/s", note=label)
    created: list[str] = []
    for _ in range(runs):
        visits = new_visits(households, batch * batches, rng)
        bodies = create_bodies(visits, batch)
        answers = []
        with Timer() as t:
            for body in bodies:
                answers.append(tablet.push_raw(body))
        for answer in answers:
            _check(answer, {"applied": batch})
        for (vid, _), version in zip(visits, (r["version"] for a in answers for r in a["results"])):
            tablet.versions[vid] = version
        created += [vid for vid, _ in visits]
        figure.values.append(batch * batches / t.seconds)
    return figure, created


def push_updates(author: Tablet, second: Tablet, visit_ids: list[str], batch: int, batches: int, runs: int,
                 rng: random.Random, label: str) -> Figure:
    """ops/s of update batches where a quarter of the ops are stale: the author's other tablet changed
    those visits since, so the server merges them field by field (and records the conflicts)."""
    figure = Figure(f"push update, batches of {batch}, 1/4 stale", "ops/s", note=label)
    stale_count = batch // 4
    needed = batch * batches
    if len(visit_ids) < needed:
        raise RuntimeError(f"need {needed} visits to update, have {len(visit_ids)}")
    for run in range(runs):
        ids = visit_ids[:needed]
        seconds = 0.0
        for start in range(0, needed, batch):
            chunk = ids[start:start + batch]
            stale = chunk[:stale_count]
            # the other tablet of the same member edits a quarter first (not timed)
            earlier = push_body([op("visit", vid, "update", {"summary": SUMMARIES[0] + " (二号平板)"},
                                    author.versions[vid]) for vid in stale])
            for vid, result in zip(stale, second.push_raw(earlier)["results"]):
                second.versions[vid] = result["version"]
            body = push_body([op("visit", vid, "update",
                                 {"summary": f"{SUMMARIES[1]} 第{run}轮", "duration_minutes": rng.randint(10, 60)},
                                 author.versions[vid]) for vid in chunk])
            with Timer() as t:
                answer = author.push_raw(body)
            seconds += t.seconds
            _check(answer, {"merged": stale_count, "applied": batch - stale_count})
            for vid, result in zip(chunk, answer["results"]):
                author.versions[vid] = result["version"]
        figure.values.append(needed / seconds)
    return figure


def _timed_full_pulls(world: World, member: str, limit: int, runs: int, expected: int) -> list[float]:
    """Seconds of each of ``runs`` fresh tablets' first pull of the member's whole scope (enrolment not timed)."""
    seconds = []
    for _ in range(runs):
        tablet = world.tablet(member)
        with Timer() as t:
            count = tablet.pull_all(limit)
        if count != expected:
            raise RuntimeError(f"full pull brought {count} records, expected {expected}")
        seconds.append(t.seconds)
    return seconds


def pull_full(world: World, member: str, limit: int, runs: int, expected: int, label: str) -> Figure:
    """records/s of a fresh tablet's first pull of its whole scope."""
    figure = Figure(f"full pull of {expected:,} records, pages of {limit}", "records/s", note=label)
    figure.values += [expected / s for s in _timed_full_pulls(world, member, limit, runs, expected)]
    return figure


def pull_seconds(world: World, member: str, limit: int, runs: int, expected: int, label: str) -> Figure:
    figure = Figure(f"full pull of {expected:,} records", "s", lower_better=True, note=label)
    figure.values += _timed_full_pulls(world, member, limit, runs, expected)
    return figure


def pull_incremental(writer: Tablet, reader: Tablet, households: list[str], count: int, limit: int, runs: int,
                     rng: random.Random, label: str, seconds_figure: Figure | None = None) -> Figure:
    """records/s of a pull that brings ``count`` new visits another tablet pushed since the last pull."""
    figure = Figure(f"incremental pull of {count:,} new records, pages of {limit}", "records/s", note=label)
    reader.pull_all(limit)
    for _ in range(runs):
        for body in create_bodies(new_visits(households, count, rng), 500):
            writer.push_raw(body)
        with Timer() as t:
            got = reader.pull_all(limit)
        if got < count:
            raise RuntimeError(f"incremental pull brought {got}, expected at least {count}")
        figure.values.append(got / t.seconds)
        if seconds_figure is not None:
            seconds_figure.values.append(t.seconds)
    return figure


def push_concurrent(server: Gunicorn, tablets: list[tuple[Tablet, list[str]]], batch: int, batches: int,
                    runs: int, rng: random.Random, label: str) -> tuple[Figure, Figure]:
    """Total ops/s with every tablet pushing ``batches`` create batches at once; and the largest RSS
    of any gunicorn worker seen while they did (sampled every 100 ms)."""
    n = len(tablets)
    figure = Figure(f"push create, {n} concurrent tablet{'s' if n > 1 else ''}, batches of {batch}", "ops/s",
                    note=label)
    memory = Figure(f"RSS per worker, {n} concurrent tablet{'s' if n > 1 else ''}", "MiB", lower_better=True,
                    note=label)
    for _ in range(runs):
        work = [(tablet, create_bodies(new_visits(households, batch * batches, rng), batch))
                for tablet, households in tablets]
        errors: list[Exception] = []
        peak = [0.0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max([peak[0], *server.worker_rss_mib()])
                time.sleep(0.1)

        def run(tablet: Tablet, bodies: list[bytes]):
            try:
                for body in bodies:
                    _check(tablet.push_raw(body), {"applied": batch})
            except Exception as exc:  # reported after the run
                errors.append(exc)

        threads = [threading.Thread(target=run, args=item) for item in work]
        sampler = threading.Thread(target=sample)
        sampler.start()
        with Timer() as t:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        done.set()
        sampler.join()
        if errors:
            raise RuntimeError(f"{len(errors)} tablets failed: {errors[0]}")
        figure.values.append(n * batch * batches / t.seconds)
        memory.values.append(peak[0])
    return figure, memory
