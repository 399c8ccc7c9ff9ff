"""Figures as min / median / max over several runs, and the timer every benchmark uses."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measured quantity: every run's value, in ``unit`` (higher is better unless ``lower_better``)."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    lower_better: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def triple(self) -> str:
        if not self.values:
            return "n/a"
        return " / ".join(fmt(v) for v in (min(self.values), self.median, max(self.values)))


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a: Figure, b: Figure) -> float:
    """Median over median; both rates, or both times."""
    if not a.values or not b.values or b.median == 0:
        return float("nan")
    return a.median / b.median


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
