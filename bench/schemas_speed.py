"""marshmallow against the compiled loaders and dumpers (``schemas.compiled``) on the sync hot paths.

``python -m bench.schemas_speed [--count 500] [--repeat 7]`` loads ``count`` visit ops as push does (the op
envelope, then its ``data``) and dumps as many visit records (transient ORM objects) as pull does, each
way; it checks that both ways answer the same, then prints the best of ``repeat`` runs in µs per item.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import time
import uuid
from collections.abc import Callable

from schemas.compiled import compile_dumper, compile_loader
from schemas.entities import VisitData, VisitRecord
from schemas.sync import OpSchema
from sync.models import Visit

from .workload import op, visit_data


def visit_ops(count: int, rng: random.Random) -> list[dict]:
    households = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20)]
    return [op("visit", str(uuid.UUID(int=rng.getrandbits(128))), "create", visit_data(households[i % 20], rng), None)
            for i in range(count)]


def visit_records(ops: list[dict]) -> list[Visit]:
    """The visits as pull finds them: loaded, with the server's fields, not attached to a session."""
    now = dt.datetime(2026, 12, 1, 1, 30, 15, 123456, tzinfo=dt.timezone.utc)
    records = []
    for number, raw in enumerate(ops):
        data = VisitData().load(raw["data"])
        records.append(Visit(id=raw["id"], version=1, created_at=now + dt.timedelta(seconds=number),
                             updated_at=now + dt.timedelta(seconds=number), author_id=str(uuid.UUID(int=number)),
                             review_state="pending", attachments=[], **data))
    return records


def best_us_per_item(work: Callable[[], object], items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="ops and records per run (a push batch)")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each; the best is printed")
    args = parser.parse_args()

    ops = visit_ops(args.count, random.Random(7))
    records = visit_records(ops)
    op_schema, data_schema, record_schema = OpSchema(), VisitData(), VisitRecord()
    op_loader, data_loader, record_dumper = compile_loader(OpSchema), compile_loader(VisitData), compile_dumper(
        VisitRecord)

    def push_marshmallow():
        return [data_schema.load(op_schema.load(raw)["data"]) for raw in ops]

    def push_compiled():
        return [data_loader.load(op_loader.load(raw)["data"]) for raw in ops]

    def pull_marshmallow():
        return [record_schema.dump(record) for record in records]

    def pull_compiled():
        return [record_dumper.dump(record) for record in records]

    assert push_marshmallow() == push_compiled(), "the compiled loaders answer differently"
    assert pull_marshmallow() == pull_compiled(), "the compiled dumper answers differently"

    rows = [
        ("visit op load (envelope + data)", push_marshmallow, push_compiled),
        ("visit op envelope load", lambda: [op_schema.load(raw) for raw in ops],
         lambda: [op_loader.load(raw) for raw in ops]),
        ("visit data load", lambda: [data_schema.load(raw["data"]) for raw in ops],
         lambda: [data_loader.load(raw["data"]) for raw in ops]),
        ("visit record dump (ORM object)", pull_marshmallow, pull_compiled),
    ]
    print(f"{args.count} visits, best of {args.repeat} runs, µs per item")
    print(f"{'':34s}{'marshmallow':>12s}{'compiled':>10s}{'speed-up':>10s}")
    for label, slow, fast in rows:
        slow_us = best_us_per_item(slow, args.count, args.repeat)
        fast_us = best_us_per_item(fast, args.count, args.repeat)
        print(f"{label:34s}{slow_us:12.2f}{fast_us:10.2f}{slow_us / fast_us:9.1f}x")


if __name__ == "__main__":
    main()
