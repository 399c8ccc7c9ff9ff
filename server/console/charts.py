"""Charts as inline SVG, drawn on the server: no chart library, nothing fetched by the browser."""
from __future__ import annotations

from markupsafe import Markup, escape

ROW = 30
LABEL_WIDTH = 130
WIDTH = 460
COLORS = ("#c0392b", "#0b5cad", "#1f7a4d", "#b26a00", "#6b7280", "#7c3aed")


def bars(items: list[tuple[str, float]], unit: str = "", maximum: float | None = None,
         title: str = "") -> Markup:
    """A horizontal bar per ``(label, value)``; ``maximum`` fixes the scale (100 for percentages)."""
    if not items:
        return Markup("")
    top = maximum or max((v for _, v in items), default=0) or 1
    span = WIDTH - LABEL_WIDTH - 60
    height = ROW * len(items) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(items):
        y = 4 + i * ROW
        w = max(0.0, min(1.0, value / top)) * span
        shown = f"{value:.0f}{unit}" if isinstance(value, float) else f"{value}{unit}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 16}" text-anchor="end">{escape(_clip(label))}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{w:.1f}" height="{ROW - 8}" rx="3" '
            f'fill="{COLORS[i % len(COLORS)] if len(items) <= len(COLORS) else COLORS[0]}"/>'
            f'<text x="{LABEL_WIDTH + w + 6:.1f}" y="{y + 16}">{escape(shown)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip(label: str, length: int = 10) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"
