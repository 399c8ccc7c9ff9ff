"""The database's own limit, on the same database in the same run: the same visit rows inserted with a
plain driver (``executemany``; ``COPY`` on PostgreSQL), and the same scope selected and serialized to JSON.

No HTTP, no validation, no change log, no idempotence: what a program that only stores rows could do.
Rows go into ``bench_raw_visits``, a copy of the ``visits`` table with the same indexes, one
transaction per batch, as the server commits one push per batch.
"""
from __future__ import annotations

import datetime as dt
import json
import random

from .harness import Database
from .stats import Figure, Timer
from .workload import new_visits, parse_time

COLUMNS = ("id", "community_id", "version", "created_at", "updated_at", "deleted_at", "author_id",
           "origin_device_id", "household_id", "visited_at", "kind", "summary", "observations",
           "duration_minutes", "location", "attachments", "review_state")
JSON_COLUMNS = {"observations", "location", "attachments"}


def create_table(database: Database) -> None:
    conn = database.connect()
    try:
        conn.execute("DROP TABLE IF EXISTS bench_raw_visits")
        conn.execute("CREATE TABLE bench_raw_visits AS SELECT * FROM visits WHERE 1 = 0")
        if database.kind == "postgresql":
            conn.execute("ALTER TABLE bench_raw_visits ADD PRIMARY KEY (id)")
        else:
            conn.execute("CREATE UNIQUE INDEX bench_raw_visits_id ON bench_raw_visits (id)")
        for name, columns in (("household_id_id", "household_id, id"), ("visited_at", "visited_at"),
                              ("community_id", "community_id")):  # the indexes of ``visits`` (sync/models.py)
            conn.execute(f"CREATE INDEX bench_raw_visits_{name} ON bench_raw_visits ({columns})")
        if database.kind == "postgresql":
            conn.commit()
    finally:
        conn.close()


def drop_table(database: Database) -> None:
    conn = database.connect()
    try:
        conn.execute("DROP TABLE IF EXISTS bench_raw_visits")
        if database.kind == "postgresql":
            conn.commit()
    finally:
        conn.close()


def _rows(database: Database, visits, community_id: str, author_id: str, device_id: str) -> list[tuple]:
    """Driver-ready rows: the conversions any writer must do (time zones, JSON) are part of the limit."""
    now = dt.datetime.now(dt.timezone.utc)
    pg = database.kind == "postgresql"
    if pg:
        from psycopg.types.json import Jsonb as wrap
    else:
        wrap = lambda value: json.dumps(value, ensure_ascii=False)  # noqa: E731
    stamp = (lambda v: v) if pg else (lambda v: v.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" "))
    rows = []
    for vid, data in visits:
        rows.append((vid, community_id, 1, stamp(now), stamp(now), None, author_id, device_id, data["household_id"],
                     stamp(parse_time(data["visited_at"])), data["kind"], data["summary"],
                     wrap(data["observations"]), data["duration_minutes"], wrap(data["location"]), wrap([]),
                     "pending"))
    return rows


def insert_rate(database: Database, method: str, households: list[str], batch: int, batches: int, runs: int,
                ids: dict[str, str], rng: random.Random) -> Figure:
    """rows/s of ``executemany`` (or ``copy``) in transactions of ``batch`` rows."""
    figure = Figure(f"raw {method}, transactions of {batch}", "rows/s", note=database.label)
    placeholders = ", ".join(["%s" if database.kind == "postgresql" else "?"] * len(COLUMNS))
    sql = f"INSERT INTO bench_raw_visits ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    conn = database.connect()
    try:
        for _ in range(runs):
            visits = new_visits(households, batch * batches, rng)
            with Timer() as t:
                for start in range(0, len(visits), batch):
                    rows = _rows(database, visits[start:start + batch], ids["community"], ids["author"],
                                 ids["device"])
                    if database.kind == "sqlite":
                        conn.execute("BEGIN IMMEDIATE")
                        conn.executemany(sql, rows)
                        conn.execute("COMMIT")
                    elif method == "copy":
                        with conn.cursor() as cur:
                            with cur.copy(f"COPY bench_raw_visits ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                                for row in rows:
                                    copy.write_row(row)
                        conn.commit()
                    else:
                        with conn.cursor() as cur:
                            cur.executemany(sql, rows)
                        conn.commit()
            figure.values.append(len(visits) / t.seconds)
    finally:
        conn.close()
    return figure


def _json_value(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def select_rate(database: Database, member_id: str, limit: int, runs: int, expected: int) -> Figure:
    """records/s of selecting a member's scope (households, then their visits) in keyset pages of
    ``limit`` and encoding each page as JSON: a pull without cursor, change log or schema."""
    figure = Figure(f"raw select + JSON of {expected:,} records, pages of {limit}", "records/s",
                    note=database.label)
    mark = "%s" if database.kind == "postgresql" else "?"
    scope = f"SELECT household_id FROM pairings WHERE member_id = {mark}"
    queries = [
        f"SELECT * FROM households WHERE id IN ({scope}) AND deleted_at IS NULL AND id > {mark} ORDER BY id LIMIT {limit}",
        f"SELECT * FROM visits WHERE household_id IN ({scope}) AND deleted_at IS NULL AND id > {mark} "
        f"ORDER BY id LIMIT {limit}",
    ]
    conn = database.connect()
    try:
        for _ in range(runs):
            count = 0
            with Timer() as t:
                for query in queries:
                    after = ""
                    while True:
                        cur = conn.execute(query, (member_id, after))
                        names = [d[0] for d in cur.description]
                        page = [{k: _json_value(v) for k, v in zip(names, row)} for row in cur.fetchall()]
                        if database.kind == "sqlite":
                            for record in page:
                                for key in JSON_COLUMNS | {"tags"}:
                                    if isinstance(record.get(key), str):
                                        record[key] = json.loads(record[key])
                        json.dumps({"changes": page}, ensure_ascii=False).encode()
                        count += len(page)
                        if len(page) < limit:
                            break
                        after = page[-1]["id"]
            if database.kind == "postgresql":
                conn.rollback()
            if count != expected:
                raise RuntimeError(f"raw select found {count} records, expected {expected}")
            figure.values.append(count / t.seconds)
    finally:
        conn.close()
    return figure
