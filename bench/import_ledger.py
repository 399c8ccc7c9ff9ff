"""Benchmark: import a generated ledger (台账) of N rows through ``flask import-households``.

    python -m bench.import_ledger --rows 200000 [--database postgresql://…]

Writes one line of JSON with rows/s and the peak memory of the importing process.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
TAGS = ["独居老人", "残疾人", "低保户", "", "", ""]


def make_ledger(path: Path, rows: int) -> int:
    rng = random.Random(7)
    households = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["台账编号", "地址", "户主", "联系电话", "姓名", "性别", "出生年份", "与户主关系", "标签/类别"])
        written = 0
        while written < rows:
            households += 1
            head = rng.choice(SURNAMES) + "某" + str(households)
            members = min(rng.randint(1, 3), rows - written)
            for m in range(members):
                first = m == 0
                writer.writerow([f"L{households:07d}" if first else "", f"幸福路{households}号" if first else "",
                                 head if first else "", f"13{rng.randint(100000000, 999999999)}" if first else "",
                                 head if first else f"{head}家属{m}", rng.choice("男女"), rng.randint(1935, 2020),
                                 "户主" if first else "家属", rng.choice(TAGS) if first else ""])
                written += 1
    return households


def run(rows: int, database: str | None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        ledger = folder / "ledger.csv"
        households = make_ledger(ledger, rows)
        env = dict(os.environ, INSTANCE_PATH=str(folder), FLASK_APP="wsgi", LOG_LEVEL="WARNING",
                   DATABASE_URL=database or f"sqlite:///{folder / 'bench.db'}")
        flask = [sys.executable, "-m", "flask"]
        subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        subprocess.run(flask + ["create-user", "admin", "--role", "admin", "--password", "bench-password"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        setup = ("from server import create_app\nfrom server.extensions import db\nfrom sync.models import Area\n"
                 "app=create_app()\nwith app.app_context():\n"
                 "    db.session.add(Area(id='00000000-0000-4000-8000-00000000c001', name='社区', kind='community',"
                 " community_id='00000000-0000-4000-8000-00000000c001', path='/00000000-0000-4000-8000-00000000c001/'))\n"
                 "    db.session.commit()\n")
        subprocess.run([sys.executable, "-c", setup], cwd=ROOT, env=env, check=True)
        started = time.perf_counter()
        result = subprocess.run(flask + ["import-households", str(ledger), "--area", "社区"], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        summary = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if database and database.startswith("postgres"):
            pass
        return {"database": env["DATABASE_URL"].split(":")[0], "rows": rows, "households": households,
                "seconds": round(elapsed, 1), "rows_per_s": round(rows / elapsed), "peak_rss_mib": round(peak_kib / 1024),
                "created": summary["households_created"], "residents": summary["residents_created"],
                "errors": summary["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--database", default=None, help="a PostgreSQL URL of an empty database (default SQLite)")
    args = parser.parse_args()
    print(json.dumps(run(args.rows, args.database), ensure_ascii=False))


if __name__ == "__main__":
    main()
