"""What the engine knows about each synced entity: how it may be changed and how it merges.

The wire fields themselves live in ``schemas/``; this is the behaviour behind them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .models import (
    AssistanceLog,
    Household,
    Request,
    RequestEvent,
    Resident,
    Review,
    Task,
    Visit,
)


@dataclass(frozen=True)
class EntitySpec:
    name: str
    model: type
    actions: frozenset[str]
    """What a device may push; empty for pull-only entities."""
    authored: bool = False
    """Only the user who created it may change or delete it (visits, assistance logs)."""
    set_fields: frozenset[str] = frozenset()
    immutable: frozenset[str] = frozenset()
    """Fields fixed at create: a record never moves to another household."""


SPECS: dict[str, EntitySpec] = {
    s.name: s
    for s in (
        EntitySpec("household", Household, frozenset({"create", "update"}),
                   set_fields=frozenset({"tags"}), immutable=frozenset({"area_id"})),
        EntitySpec("resident", Resident, frozenset({"create", "update", "delete"}),
                   set_fields=frozenset({"tags"}), immutable=frozenset({"household_id"})),
        EntitySpec("visit", Visit, frozenset({"create", "update", "delete"}), authored=True,
                   immutable=frozenset({"household_id"})),
        EntitySpec("assistance_log", AssistanceLog, frozenset({"create", "update", "delete"}),
                   authored=True, immutable=frozenset({"household_id"})),
        EntitySpec("request", Request, frozenset({"create"})),
        EntitySpec("request_event", RequestEvent, frozenset({"create"})),
        EntitySpec("task", Task, frozenset()),
        EntitySpec("review", Review, frozenset()),
    )
}

PULL_ORDER = ("household", "resident", "visit", "assistance_log", "request", "request_event", "task", "review")
"""Parents before children, so a replica can apply a page in order."""

HOUSEHOLD_CHILDREN = ("resident", "visit", "assistance_log", "request", "request_event", "task", "review")
