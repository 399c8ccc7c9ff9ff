"""The README's configuration table lists every setting in ``server.config.SETTINGS`` with its default, and
nothing else: a setting added to the code without a row (or a row left after a setting went) fails here."""
from __future__ import annotations

import re
from pathlib import Path

from server.config import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| variable | default | meaning |"


def settings_table() -> dict[str, tuple[str, str]]:
    """``name → (default cell, meaning cell)`` from the table under the README's header row."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2  # past the header and its |---| line
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a settings row needs three cells: {line}"
        name = re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])
        assert name, f"the first cell names one variable in backticks: {line}"
        assert name.group(1) not in rows, f"{name.group(1)} is listed twice"
        rows[name.group(1)] = (cells[1], cells[2])
    return rows


def test_every_setting_has_a_row_and_every_row_a_setting():
    documented = settings_table()
    assert sorted(set(SETTINGS) - set(documented)) == [], "settings missing from the README table"
    assert sorted(set(documented) - set(SETTINGS)) == [], "README rows for settings the code does not have"


def test_defaults_and_meanings_agree_with_the_code():
    for name, (default_cell, meaning) in settings_table().items():
        default = SETTINGS[name][0]
        assert default_cell == ("(unset)" if default is None else f"`{default}`"), name
        assert meaning, f"{name} has no meaning"
