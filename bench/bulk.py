"""Bulk-load other members' households straight into the tables, for the scale figures.

Each household gets exactly the rows the engine writes when a coordinator creates and pairs one
(``households``, ``pairings``, and two ``change_log`` rows: the create and the pairing), numbered from
the same ``change_counter``, so a pull sees a database that looks as if the API had made them.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

from .harness import Database

PER_MEMBER = 100
CHUNK = 50_000


def _stamp(database: Database, value: dt.datetime):
    if database.kind == "postgresql":
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")


def count_households(database: Database) -> int:
    conn = database.connect()
    try:
        return conn.execute("SELECT count(*) FROM households").fetchone()[0]
    finally:
        conn.close()


def fill_households(database: Database, total: int, community_id: str, area_id: str, admin_id: str) -> int:
    """Add other members' households until the database holds ``total``; answer how many were added."""
    have = count_households(database)
    missing = total - have
    if missing <= 0:
        return 0
    conn = database.connect()
    pg = database.kind == "postgresql"
    as_json = (lambda v: json.dumps(v, ensure_ascii=False)) if not pg else None
    if pg:
        from psycopg.types.json import Jsonb

        as_json = Jsonb
    now = _stamp(database, dt.datetime.now(dt.timezone.utc))
    yes, no = (True, False) if pg else (1, 0)
    try:
        done = 0
        while done < missing:
            n = min(CHUNK, missing - done)
            if not pg:
                conn.execute("BEGIN IMMEDIATE")
            last = conn.execute("UPDATE change_counter SET value = value + %s WHERE id = 1 RETURNING value"
                                .replace("%s", "%s" if pg else "?"), (2 * n,)).fetchone()[0]
            seq = last - 2 * n
            users, households, pairings, log = [], [], [], []
            member = None
            for i in range(n):
                if (have + done + i) % PER_MEMBER == 0 or member is None:
                    member = str(uuid.uuid4())
                    users.append((member, f"filler-{member[:13]}", "member", "member", area_id, yes, now))
                hid = str(uuid.uuid4())
                address = f"和谐路{have + done + i}号"
                households.append((hid, community_id, 1, now, now, admin_id, area_id, address, "张三",
                                   as_json([]), yes, no))
                pairings.append((hid, member, community_id, now, admin_id))
                seq += 1
                log.append((seq, community_id, hid, None, None, "household", hid, 1, "create",
                            as_json({"area_id": [None, area_id], "address": [None, address],
                                     "head_name": [None, "张三"]}), None, admin_id, now, now))
                seq += 1
                log.append((seq, community_id, hid, member, None, "pairing", hid, None, "pair",
                            as_json({"member_id": [None, member]}), None, admin_id, now, now))
            tables = [
                ("users", "id, username, display_name, role, area_id, active, created_at", users),
                ("households", "id, community_id, version, created_at, updated_at, author_id, area_id, address, "
                               "head_name, tags, offline_served, sms_consent", households),
                ("pairings", "household_id, member_id, community_id, paired_at, paired_by", pairings),
                ("change_log", "seq, community_id, household_id, audience_user_id, former_user_id, entity, "
                               "record_id, version, action, fields, device_id, user_id, recorded_at, created_at",
                 log),
            ]
            for table, columns, rows in tables:
                if pg:
                    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(rows[0]))
                    conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            conn.commit() if pg else conn.execute("COMMIT")
            done += n
        if pg:
            conn.execute("ANALYZE")
            conn.commit()
        else:
            conn.execute("ANALYZE")
        return missing
    finally:
        conn.close()
