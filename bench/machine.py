"""What the figures were measured on: cores, memory, and the versions of everything in the path."""
from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata

import psutil


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(pg_version: str | None) -> dict[str, str]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() or "absent"
    return {
        "CPU": f"{os.cpu_count()} cores ({cpu or platform.processor() or 'unknown'})",
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        "PostgreSQL": pg_version or "not used",
        "SQLite": sqlite3.sqlite_version,
        "Node": node,
        "gunicorn / Flask / SQLAlchemy / marshmallow / psycopg": " / ".join(
            _version(p) for p in ("gunicorn", "flask", "sqlalchemy", "marshmallow", "psycopg")),
    }
