"""Import a community's household ledger (台账) from .xlsx or .csv, row by row, streaming.

Ledgers are laid out one line per person: household columns (address, head, phone, tags) on the household's
first line and blank (or vertically merged) on the lines of its other members. Headers are in Chinese and
often span two rows (a merged "人员" over 姓名/性别/出生年份). Each row is validated with the same schemas as
the API; a bad row is reported (row, column, what is wrong) and skipped, never stopping the import. Changes go
through the sync engine, so tablets receive imported and re-imported households as normal versions.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.entities import HouseholdData, ResidentData
from sync.apply import Change, apply_change
from sync.changes import PENDING_KEY
from sync.errors import NotFoundError, OpRejected
from sync.models import Area, Household, Resident, new_id, utcnow
from sync.policy import Actor, Scope
from sync.rows import flush_rows
from sync.txcache import tx_cache

from .common import sync_settings

HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "ledger_id": ("台账编号", "户编号", "户号", "编号", "ledger_id"),
    "address": ("地址", "住址", "家庭住址", "详细地址", "门牌号", "address"),
    "head_name": ("户主", "户主姓名", "head_name"),
    "phone": ("联系电话", "电话", "手机", "手机号", "联系方式", "phone"),
    "name": ("姓名", "人员", "成员姓名", "人员姓名", "家庭成员", "name"),
    "gender": ("性别", "gender"),
    "birth_year": ("出生年份", "出生年月", "出生日期", "出生年", "birth_year"),
    "relation": ("与户主关系", "关系", "relation"),
    "tags": ("标签/类别", "标签", "类别", "人员类别", "户类别", "类型", "tags"),
    "notes": ("备注", "notes"),
}
NEVER_IMPORTED = ("身份证号", "身份证", "证件号码", "身份证号码")
"""ID numbers never enter the server whole: such columns are ignored and said so in the summary."""

HOUSEHOLD_FIELDS = ("ledger_id", "address", "head_name", "phone", "tags", "notes")
RESIDENT_FIELDS = ("name", "gender", "birth_year", "relation")
FIELD_LABELS = {"ledger_id": "台账编号", "address": "地址", "head_name": "户主", "phone": "联系电话", "name": "姓名",
                "gender": "性别", "birth_year": "出生年份", "relation": "与户主关系", "tags": "标签/类别", "notes": "备注"}
GENDERS = {"男": "M", "女": "F", "m": "M", "f": "F", "男性": "M", "女性": "F"}
CHUNK = 500
COUNTERS = ("households_created", "households_updated", "households_unchanged", "duplicate_households",
            "residents_created", "residents_updated")


@dataclass
class RowError:
    row: int
    column: str
    problem: str
    value: str = ""


@dataclass
class ImportReport:
    rows: int = 0
    households_created: int = 0
    households_updated: int = 0
    households_unchanged: int = 0
    duplicate_households: int = 0
    residents_created: int = 0
    residents_updated: int = 0
    skipped_blank: int = 0
    rejected_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "households_created": self.households_created,
            "households_updated": self.households_updated, "households_unchanged": self.households_unchanged,
            "duplicate_households": self.duplicate_households, "residents_created": self.residents_created,
            "residents_updated": self.residents_updated, "skipped_blank_rows": self.skipped_blank,
            "rejected_rows": self.rejected_rows, "errors": len(self.errors),
            "ignored_columns": self.ignored_columns, "dry_run": self.dry_run,
        }

    def error_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["行号", "列", "问题", "原值"])
        for e in self.errors:
            writer.writerow([e.row, e.column, e.problem, e.value])
        return out.getvalue()


# --- reading files ---------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.replace("\x00", "").replace("\u3000", " ").strip()
        return value or None
    return value


def read_rows(path: Path) -> tuple[Iterator[tuple[int, list[Any]]], int]:
    """Rows of the first sheet (or the CSV) as (row number, cells), streamed; and an estimate of the count."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        sheet = workbook.worksheets[0]

        def xlsx_rows():
            try:
                for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield number, [_clean(v) for v in row]
            finally:
                workbook.close()

        return xlsx_rows(), sheet.max_row or 0
    if path.suffix.lower() in (".csv", ".txt"):
        encoding = _detect_encoding(path)
        with path.open("rb") as f:
            total = sum(1 for _ in f)

        def csv_rows():
            with path.open(encoding=encoding, newline="") as f:
                for number, row in enumerate(csv.reader(f), start=1):
                    yield number, [_clean(v) for v in row]

        return csv_rows(), total
    raise ValueError("Only .xlsx and .csv ledgers can be imported.")


def _detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as such, else GB18030 (a superset of GBK)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        head = f.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        f.seek(0)
        try:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            return "gb18030"


# --- headers ---------------------------------------------------------------------------------------


def _normalize_header(text: Any) -> str:
    return re.sub(r"[\s*＊:：()（）]", "", str(text)) if text is not None else ""


def _field_for(header: str, mapping: dict[str, str]) -> str | None:
    if not header:
        return None
    if header in mapping:
        return mapping[header]
    for name, aliases in HEADER_ALIASES.items():
        if header in (_normalize_header(a) for a in aliases):
            return name
    return None


def find_header(rows: Iterator[tuple[int, list[Any]]], mapping: dict[str, str]):
    """Find the header (one or two rows, merged cells forward-filled); return columns → fields and the rest."""
    seen: list[tuple[int, list[Any]]] = []
    for number, cells in rows:
        seen.append((number, cells))
        headers = [_normalize_header(c) for c in cells]
        if sum(_field_for(h, mapping) is not None for h in headers) >= 2:
            break
        if len(seen) > 20:
            raise ValueError("No header row with known columns (地址, 户主, 姓名…) in the first 20 rows.")
    else:
        raise ValueError("The file has no header row with known columns.")
    header_number, header_cells = seen[-1]
    top = [_normalize_header(c) for c in header_cells]
    columns: dict[int, str] = {i: f for i, h in enumerate(top) if (f := _field_for(h, mapping))}
    ignored = [h for h in top if h in NEVER_IMPORTED]
    first_data: list[tuple[int, list[Any]]] = []
    nxt = next(rows, None)
    if nxt is not None:
        sub = [_normalize_header(c) for c in nxt[1]]
        sub_fields = {i: f for i, h in enumerate(sub) if (f := _field_for(h, mapping))}
        under_blank = [i for i in sub_fields if i >= len(top) or not top[i]]
        if len(sub_fields) >= 2 or under_blank:
            # a second header row: the sub-columns under a merged title ("人员" over 姓名/性别/…) carry the
            # meaning; cells merged down from the first row (地址, 户主) keep theirs
            columns.update(sub_fields)
            ignored += [h for h in sub if h in NEVER_IMPORTED]
        else:
            first_data.append(nxt)
    if "address" not in columns.values() and "ledger_id" not in columns.values():
        raise ValueError("The ledger needs an address (地址) or a ledger number (台账编号) column.")

    def rest():
        yield from first_data
        yield from rows

    return columns, ignored, rest(), header_number


# --- values ----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _birth_year(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.year
    if isinstance(value, (int, float)):
        return int(value)
    match = re.search(r"(18|19|20)\d{2}", str(value))
    return int(match.group(0)) if match else str(value)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    return [t for t in re.split(r"[、,，;；/|\s]+", str(value)) if t]


def _gender(value: Any) -> str | None:
    if value is None:
        return None
    return GENDERS.get(str(value).strip().lower(), str(value))


def _phone(value: Any) -> str | None:
    text = _text(value)
    return re.sub(r"[\s\-]", "", text) if text else None


# --- the import --------------------------------------------------------------------------------------


class LedgerImporter:
    def __init__(self, session: Session, actor: Actor, area: Area, *, dry_run: bool = False,
                 mapping: dict[str, str] | None = None):
        self.session, self.actor, self.area, self.dry_run = session, actor, area, dry_run
        self.mapping = {_normalize_header(k): v for k, v in (mapping or {}).items()}
        self.report = ImportReport(dry_run=dry_run)
        self.settings = sync_settings()
        self.seen: dict[str, str] = {}  # household key in this file → household id
        self.current: str | None = None  # the household the following member lines belong to
        self.current_rejected = False
        self.area_id = area.id
        self.subtree = select(Area.id).where(Area.path.startswith(area.path))
        self.schemas = {HouseholdData: HouseholdData(), ResidentData: ResidentData()}
        self.created: set[str] = set()  # households made by this run: their residents are known here
        self.created_residents: dict[tuple[str, str], str] = {}
        # Every household already in the area, by both keys: one query instead of one per ledger line.
        self.by_ledger_id: dict[str, str] = {}
        self.by_address: dict[str, str] = {}
        for household_id, ledger_id, address in session.execute(
                select(Household.id, Household.ledger_id, Household.address)
                .where(Household.area_id.in_(self.subtree), Household.deleted_at.is_(None))):
            if ledger_id:
                self.by_ledger_id.setdefault(ledger_id, household_id)
            self.by_address.setdefault(address, household_id)

    def run(self, rows: Iterator[tuple[int, list[Any]]], progress: Callable[[int], None] | None = None) -> ImportReport:
        columns, ignored, data, header_row = find_header(rows, self.mapping)
        self.report.ignored_columns = sorted(set(ignored))
        self.report.rows = 0
        done = header_row
        for number, cells in data:
            self.report.rows += 1
            if all(c is None for c in cells):
                self.report.skipped_blank += 1
            else:
                values = {f: cells[i] if i < len(cells) else None for i, f in columns.items()}
                self.savepoint = None
                queued = len(self.session.info.get(PENDING_KEY, []))
                self.row_queued = queued
                counts = {name: getattr(self.report, name) for name in COUNTERS}
                self.row_keys: list[tuple[Any, str]] = []
                try:
                    self._row(number, values)
                    if self.savepoint is not None:
                        self.savepoint.commit()
                except _RowRejected as exc:
                    # the whole row goes, household line included: counts and keys return to before it
                    if self.savepoint is not None:
                        self.savepoint.rollback()
                    elif len(self.session.info.get(PENDING_KEY, [])) != queued:
                        raise RuntimeError(f"row {number} was rejected after writing without a savepoint") from None
                    del self.session.info.setdefault(PENDING_KEY, [])[queued:]
                    for name in COUNTERS:
                        setattr(self.report, name, counts[name])
                    if self.row_keys:  # the household this row started is forgotten again
                        for container, key in self.row_keys:
                            container.discard(key) if isinstance(container, set) else container.pop(key, None)
                        self.current_rejected = True
                    self.report.rejected_rows += 1
                    self.report.errors.extend(exc.errors)
            if self.report.rows % CHUNK == 0:
                self._end_chunk()
            if progress:
                progress(number - done)
                done = number
        self._end_chunk(final=True)
        return self.report

    def _end_chunk(self, final: bool = False) -> None:
        if self.dry_run:
            self.session.flush()
            self.session.info.pop(PENDING_KEY, None)  # never written: the whole run is rolled back
            if final:
                self.session.rollback()
        else:
            self.session.commit()  # committed objects are only weakly held: memory stays flat however long the file

    # one row ---------------------------------------------------------------------------------------
    def _row(self, number: int, values: dict[str, Any]) -> None:
        household_values = {
            "ledger_id": _text(values.get("ledger_id")), "address": _text(values.get("address")),
            "head_name": _text(values.get("head_name")), "phone": _phone(values.get("phone")),
            "tags": _tags(values.get("tags")), "notes": _text(values.get("notes")),
        }
        starts_household = bool(household_values["address"] or household_values["ledger_id"])
        resident = {"name": _text(values.get("name")), "gender": _gender(values.get("gender")),
                    "birth_year": _birth_year(values.get("birth_year")), "relation": _text(values.get("relation"))}
        if resident["name"]:  # checked before the household line is written, so a bad row writes nothing
            self._validate(number, ResidentData, {k: v for k, v in resident.items() if v is not None}, partial=True)
        if starts_household:
            self.current_rejected = False
            self.current = self._household(number, household_values)
        elif self.current is None or self.current_rejected:
            raise _RowRejected([RowError(number, "地址", "该行没有地址，且前面没有可归属的户" if self.current is None
                                         else "所属户有错误，本行一并跳过")])
        if resident["name"]:
            if not starts_household or household_values["tags"]:
                resident["tags"] = household_values["tags"] if not starts_household else []
            self._resident(number, resident)

    def _household(self, number: int, values: dict[str, Any]) -> str:
        key = f"id:{values['ledger_id']}" if values["ledger_id"] else f"addr:{values['address']}"
        if key in self.seen:
            self.report.duplicate_households += 1
            return self.seen[key]
        existing = self._find_household(values)
        data = {k: v for k, v in values.items() if k != "ledger_id" and (v not in (None, []) or k == "tags")}
        if existing is None:
            if not values["address"]:
                self.current_rejected = True
                raise _RowRejected([RowError(number, "地址", "新户必须有地址")])
            data["area_id"] = self.area_id
            loaded = self._validate(number, HouseholdData, data, partial=False)
            household_id = new_id()
            self._apply(number, Change("household", household_id, "create", loaded, None, utcnow()))
            self.session.get(Household, household_id).ledger_id = values["ledger_id"]
            self.created.add(household_id)
            self.row_keys.append((self.created, household_id))
            self.report.households_created += 1
        else:
            household_id = existing.id
            data.pop("address", None) if values["ledger_id"] else None
            loaded = self._validate(number, HouseholdData, data, partial=True)
            changed = {k: v for k, v in loaded.items()
                       if (sorted(v) if k == "tags" else v) != (sorted(getattr(existing, k) or []) if k == "tags"
                                                                 else getattr(existing, k))}
            if changed:
                self._apply(number, Change("household", household_id, "update", changed, existing.version, utcnow()))
                self.report.households_updated += 1
            else:
                self.report.households_unchanged += 1
        self._remember(self.seen, key, household_id)
        if values["ledger_id"] and values["ledger_id"] not in self.by_ledger_id:
            self._remember(self.by_ledger_id, values["ledger_id"], household_id)
        if values["address"] and values["address"] not in self.by_address:
            self._remember(self.by_address, values["address"], household_id)
        return household_id

    def _remember(self, container: dict, key: str, value: str) -> None:
        container[key] = value
        self.row_keys.append((container, key))

    def _find_household(self, values: dict[str, Any]) -> Household | None:
        if values["ledger_id"]:
            household_id = self.by_ledger_id.get(values["ledger_id"])
        else:
            household_id = self.by_address.get(values["address"])
        return self.session.get(Household, household_id) if household_id else None

    def _resident(self, number: int, values: dict[str, Any]) -> None:
        household_id = self.current
        data = {k: v for k, v in values.items() if v is not None}
        if household_id in self.created:  # made by this run: its residents are the ones this run made
            made = self.created_residents.get((household_id, values["name"]))
            existing = self.session.get(Resident, made) if made else None
        else:
            existing = self.session.scalars(select(Resident).where(
                Resident.household_id == household_id, Resident.name == values["name"],
                Resident.deleted_at.is_(None)).limit(1)).first()
        if existing is None:
            data["household_id"] = household_id
            loaded = self._validate(number, ResidentData, data, partial=False)
            resident_id = new_id()
            self._apply(number, Change("resident", resident_id, "create", loaded, None, utcnow()))
            if household_id in self.created:
                self._remember(self.created_residents, (household_id, values["name"]), resident_id)
            self.report.residents_created += 1
            return
        loaded = self._validate(number, ResidentData, data, partial=True)
        changed = {k: v for k, v in loaded.items() if v != getattr(existing, k)}
        if changed:
            self._apply(number, Change("resident", existing.id, "update", changed, existing.version, utcnow()))
            self.report.residents_updated += 1

    def _validate(self, number: int, schema: type[ma.Schema], data: dict, partial: bool) -> dict:
        try:
            return self.schemas[schema].load(data, partial=partial)
        except ma.ValidationError as exc:
            if schema is HouseholdData:
                self.current_rejected = True
            raise _RowRejected([
                RowError(number, FIELD_LABELS.get(name, name), "；".join(map(str, messages if isinstance(messages, list)
                                                                                else [messages])),
                         str(data.get(name, "")))
                for name, messages in exc.messages.items()
            ]) from None

    def _apply(self, number: int, change: Change) -> None:
        made_here = change.action == "create" and (change.entity == "household" or self.current in self.created)
        if made_here:
            # a record new to this run: its id is free and its household in scope, without asking again
            cache = tx_cache(self.session)
            cache.free_ids.setdefault(change.entity, set()).add(change.record_id)
            if change.entity == "resident":
                household = self.session.get(Household, self.current)
                cache.in_scope[(self.actor.user_id, household.id)] = household
        elif self.savepoint is None and len(self.session.info.get(PENDING_KEY, [])) == self.row_queued:
            # a change to what was already there can still be refused: write this row under a savepoint
            flush_rows(self.session)  # earlier rows' new residents go in before the savepoint (sync.rows)
            self.savepoint = self.session.begin_nested()
        try:
            apply_change(self.session, self.actor, change, self.settings)
        except OpRejected as exc:
            raise _RowRejected([RowError(number, "", exc.message)]) from None


class _RowRejected(Exception):
    def __init__(self, errors: list[RowError]):
        super().__init__(errors)
        self.errors = errors


def import_ledger(session: Session, actor: Actor, area_id_or_name: str, path: Path, *, dry_run: bool = False,
                  mapping: dict[str, str] | None = None,
                  progress: Callable[[int], None] | None = None) -> ImportReport:
    scope = Scope(actor)
    area = session.scalar(select(Area).where(scope.areas(), (Area.id == area_id_or_name) | (Area.name == area_id_or_name)))
    if area is None:
        raise NotFoundError("No such area.", {"area": area_id_or_name})
    rows, _ = read_rows(path)
    return LedgerImporter(session, actor, area, dry_run=dry_run, mapping=mapping).run(rows, progress)
