"""The records every system is given: household visits, as a tablet records them offline.

Lianhu, the raw database path and the peers all receive the same visit documents, built here.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import uuid

SUMMARIES = [
    "走访王秀英家，老人身体状况良好，反映楼道灯坏了，已记录。",
    "独居老人李大爷，血压偏高，提醒按时服药，约定下周复访。",
    "低保户张阿姨家，询问养老金调整政策，已当面解答。",
    "残疾人刘先生，轮椅需要维修，已联系街道助残员。",
]
RECORDED_AT = "2026-11-28T15:02:00+08:00"
CLIENT_TIME = "2026-12-01T09:30:00+08:00"


def visit_data(household_id: str, rng: random.Random) -> dict:
    """One visit's fields, as a tablet sends them (about 400 bytes of JSON)."""
    day = rng.randint(1, 28)
    return {
        "household_id": household_id,
        "visited_at": f"2026-11-{day:02d}T{rng.randint(8, 17):02d}:{rng.randint(0, 59):02d}:00+08:00",
        "kind": rng.choice(["routine", "assistance", "follow_up", "feedback"]),
        "summary": rng.choice(SUMMARIES),
        "observations": {"health": rng.choice(["good", "fair", "poor"]), "mood": "calm",
                         "needs": rng.sample(["楼道灯", "助餐", "理发", "送药", "陪诊"], 2)},
        "duration_minutes": rng.randint(10, 60),
        "location": {"lat": round(31.2 + rng.random() / 10, 5), "lng": round(121.4 + rng.random() / 10, 5)},
    }


def new_visits(households: list[str], count: int, rng: random.Random) -> list[tuple[str, dict]]:
    return [(str(uuid.uuid4()), visit_data(households[i % len(households)], rng)) for i in range(count)]


def op(entity: str, record_id: str, action: str, data: dict | None, base_version: int | None) -> dict:
    return {"op_id": str(uuid.uuid4()), "entity": entity, "id": record_id, "action": action,
            "base_version": base_version, "recorded_at": RECORDED_AT, "data": data}


def push_body(ops: list[dict]) -> bytes:
    """A push envelope, encoded before the clock starts: the client's JSON work is not the server's."""
    return json.dumps({"batch_id": str(uuid.uuid4()), "client_time": CLIENT_TIME,
                       "client": {"app_version": "bench", "schema_version": 1}, "ops": ops},
                      ensure_ascii=False).encode()


def create_bodies(visits: list[tuple[str, dict]], batch: int) -> list[bytes]:
    return [push_body([op("visit", vid, "create", data, None) for vid, data in visits[i:i + batch]])
            for i in range(0, len(visits), batch)]


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
