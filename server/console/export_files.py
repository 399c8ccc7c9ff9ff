"""Exports as files: CSV written row by row from a generator, XLSX by openpyxl's write-only mode.

Neither holds the whole export in memory: CSV goes out as it is read; XLSX rows go to a temporary file
(write-only worksheets are spooled to disk), which is then streamed in chunks.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Iterable, Iterator
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from .i18n import TIMEZONE
from .i18n import lazy_gettext as _l

HEADERS = {
    "id": _l("Record ID"), "visited_at": _l("Visited at"), "occurred_at": _l("Occurred at"),
    "raised_at": _l("Raised at"), "area": _l("Area"), "address": _l("Address"), "head_name": _l("Head of household"),
    "author": _l("Recorded by"), "kind": _l("Kind"), "summary": _l("Summary"), "duration_minutes": _l("Minutes"),
    "minutes": _l("Minutes"), "review_state": _l("Review"), "category": _l("Category"),
    "description": _l("Description"), "urgency": _l("Urgency"), "status": _l("Status"), "handler": _l("Handler"),
    "due_at": _l("Due"), "resolution": _l("Resolution"), "resolved_at": _l("Resolved at"),
    "feedback_due_at": _l("Feedback due"), "closed_at": _l("Closed at"), "satisfaction": _l("Satisfaction"),
    # the service report of members registered from their workplace
    "display_name": _l("Member"), "home_organisation": _l("Home organisation"),
    "organisation_kind": _l("Kind of organisation"), "started_on": _l("Registered on"),
    "ended_on": _l("Registration ended on"), "visits": _l("Visits"), "approved_visits": _l("Approved visits"),
    "assistance_logs": _l("Assistance logs"), "closed_requests": _l("Requests closed"), "points": _l("Points"),
}

CHUNK = 64 * 1024
# A cell that starts like a formula would run in a spreadsheet (CSV injection): keep it text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def headers(columns: Iterable[str]) -> list[str]:
    return [str(HEADERS[c]) for c in columns]


def _cell(value, local: ZoneInfo):
    if isinstance(value, dt.datetime):
        return value.astimezone(local).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_stream(columns: tuple[str, ...], rows: Iterator[dict]) -> Iterator[str]:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese headers correctly."""
    local = ZoneInfo(TIMEZONE)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(headers(columns))
    for count, row in enumerate(rows, 1):
        writer.writerow([_cell(row[c], local) for c in columns])
        if count % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_stream(columns: tuple[str, ...], rows: Iterator[dict], title: str) -> Iterator[bytes]:
    local = ZoneInfo(TIMEZONE)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(headers(columns))
    for row in rows:
        sheet.append([_cell(row[c], local) for c in columns])
    with tempfile.TemporaryFile() as file:
        workbook.save(file)
        file.seek(0)
        while chunk := file.read(CHUNK):
            yield chunk
