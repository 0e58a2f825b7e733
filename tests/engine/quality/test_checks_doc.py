"""docs/quality.md's table of checks says what engine/quality/checks.py declares: every code, its threshold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.quality.checks import CHECKS

DOC = Path(__file__).resolve().parents[3] / "docs" / "quality.md"
ROW = re.compile(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", re.MULTILINE)


def test_the_table_lists_every_check_with_its_threshold():
    rows = dict(ROW.findall(DOC.read_text()))
    assert sorted(rows) == sorted(c.code for c in CHECKS)
    for c in CHECKS:
        cell = rows[c.code].strip()
        if c.threshold is None:
            assert cell == "—", c.code
            continue
        number = float(re.search(r"[\d.]+", cell).group())
        # a share written as a percentage (10 % for 0.1); a threshold whose unit is % is written as it is
        shown = number / 100 if cell.endswith("%") and c.unit != "%" else number
        assert shown == pytest.approx(c.threshold), c.code
