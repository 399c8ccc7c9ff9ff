"""Tunable rules of the engine, filled from the app's configuration by the caller."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyncSettings:
    request_due_days: dict[str, int] = field(
        default_factory=lambda: {"urgent": 1, "normal": 7, "low": 30}
    )
    feedback_due_days: int = 7
    history_days: int = 365
    visit_interval_days: dict[str, int] = field(default_factory=lambda: {"独居老人": 7, "残疾人": 14, "低保户": 14})
    default_visit_interval_days: int = 30
    supported_schema_versions: tuple[int, ...] = (1,)
    max_ops_per_batch: int = 500
