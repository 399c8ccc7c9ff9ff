"""Field-level three-way merge rules: pure functions of (base, server's, device's) values.

"Others" are any other device or an online edit. A field changed on both sides keeps the value with the
later corrected ``recorded_at`` (a tie keeps the server's). Set-valued fields merge additions and removals
from both sides, and conflict only where one side added what the other removed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

UNKNOWN = object()
"""The base value when history no longer reaches back to the device's ``base_version``."""


@dataclass(frozen=True)
class FieldConflict:
    field: str
    kept: Any
    discarded: Any

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kept": self.kept, "discarded": self.discarded}


@dataclass(frozen=True)
class FieldOutcome:
    """What to write for one field (``write`` is False when the server's value stays)."""

    write: bool
    value: Any
    conflict: FieldConflict | None = None


def _as_set(value: Any) -> list[Any]:
    return list(value or [])


def _union(left: list[Any], right: list[Any]) -> list[Any]:
    return left + [x for x in right if x not in left]


def _minus(left: list[Any], right: list[Any]) -> list[Any]:
    return [x for x in left if x not in right]


def merge_set(
    field: str,
    base: Any,
    server: Any,
    device: Any,
    *,
    others_added: list[Any] | None = None,
    others_removed: list[Any] | None = None,
    server_recorded_at: dt.datetime | None = None,
    device_recorded_at: dt.datetime | None = None,
) -> FieldOutcome:
    """Merge a set field: keep every addition and removal of both sides.

    ``others_added``/``others_removed`` are what others added or removed in any change since the base
    (not only the net effect), so "one side added what the other removed" can be seen: for such an
    item the later corrected ``recorded_at`` decides, and the field is reported as a conflict.
    """
    server_items, device_items = _as_set(server), _as_set(device)
    device_wins = (
        device_recorded_at is not None
        and server_recorded_at is not None
        and device_recorded_at > server_recorded_at
    )
    if base is UNKNOWN:
        # Without a base an item on one side only may be an addition or a removal: union, and report
        # the difference so that a coordinator can take an item out again.
        if sorted(map(repr, server_items)) == sorted(map(repr, device_items)):
            return FieldOutcome(False, server_items)
        merged = _union(server_items, device_items)
        alternative = device_items if not device_wins else server_items
        return FieldOutcome(merged != server_items, merged, FieldConflict(field, merged, alternative))
    base_items = _as_set(base)
    added_by_device = _minus(device_items, base_items)
    removed_by_device = _minus(base_items, device_items)
    merged = _union(_minus(server_items, removed_by_device), added_by_device)
    clash_added = [x for x in added_by_device if x in (others_removed or []) and x not in server_items]
    clash_removed = [x for x in removed_by_device if x in (others_added or [])]
    if not clash_added and not clash_removed:
        return FieldOutcome(merged != server_items, merged)
    device_choice = merged
    server_choice = _union(_minus(merged, clash_added), clash_removed)
    kept, discarded = (device_choice, server_choice) if device_wins else (server_choice, device_choice)
    return FieldOutcome(kept != server_items, kept, FieldConflict(field, kept, discarded))


def merge_scalar(
    field: str,
    server: Any,
    device: Any,
    server_recorded_at: dt.datetime,
    device_recorded_at: dt.datetime,
) -> FieldOutcome:
    """A field changed on both sides: the later corrected ``recorded_at`` wins; a tie keeps the server's."""
    if server == device:
        return FieldOutcome(False, server)
    if device_recorded_at > server_recorded_at:
        return FieldOutcome(True, device, FieldConflict(field, device, server))
    return FieldOutcome(False, server, FieldConflict(field, server, device))


def merge_field(
    field: str,
    *,
    is_set: bool,
    base: Any,
    server: Any,
    device: Any,
    changed_by_others: bool,
    server_recorded_at: dt.datetime,
    device_recorded_at: dt.datetime,
    others_added: list[Any] | None = None,
    others_removed: list[Any] | None = None,
) -> FieldOutcome:
    """Decide one field of an update against the server's current value.

    ``changed_by_others`` says whether anyone but this device changed the field since the device's
    base; when history is gone (``base is UNKNOWN``) any difference counts as a change on both sides.
    ``server_recorded_at`` is the corrected time of the latest change of the field by others.
    """
    if is_set:
        if not changed_by_others and base is not UNKNOWN:
            return FieldOutcome(_as_set(device) != _as_set(server), _as_set(device))
        return merge_set(
            field, base, server, device,
            others_added=others_added, others_removed=others_removed,
            server_recorded_at=server_recorded_at, device_recorded_at=device_recorded_at,
        )
    if base is UNKNOWN:
        changed_by_others = server != device
    if not changed_by_others:
        return FieldOutcome(device != server, device)
    return merge_scalar(field, server, device, server_recorded_at, device_recorded_at)
