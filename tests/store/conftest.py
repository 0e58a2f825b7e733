"""Shared helpers for store tests: tiny phenotype and metric files written in code."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from store.home import Home
from store.home import home as make_home
from store.structures import STRUCTURES

# ukbconv-style header for the default mapping (store/fields.toml).
UKBCONV_COLUMNS = {
    "sex": "31-0.0", "age": "21003-2.0", "height_cm": "50-2.0", "weight_kg": "21002-2.0", "bmi": "21001-2.0",
    "grip_left_kg": "46-2.0", "grip_right_kg": "47-2.0", "falls_code": "2296-2.0", "activity_group": "22032-0.0",
    "death_date": "40000-0.0", "visit_date": "53-2.0", "centre": "54-2.0", "arm_lean_left_kg": "23250-2.0",
    "arm_lean_right_kg": "23254-2.0", "leg_lean_left_kg": "23267-2.0", "leg_lean_right_kg": "23271-2.0",
}  # fmt: skip


def rap_name(ukbconv: str) -> str:
    """``50-2.0`` -> ``p50_i2``."""
    field, rest = ukbconv.split("-")
    return f"p{field}_i{rest.split('.')[0]}"


def write_phenotypes(path: Path, rows: list[dict[str, object]], *, style: str = "ukbconv", sep: str = ",") -> Path:
    """Write rows keyed by store variable (plus ``eid``) with UKB column names."""
    variables = [v for v in UKBCONV_COLUMNS if any(v in r for r in rows)]
    names = [UKBCONV_COLUMNS[v] if style == "ukbconv" else rap_name(UKBCONV_COLUMNS[v]) for v in variables]
    lines = [sep.join(["eid", *names])]
    for r in rows:
        lines.append(sep.join("" if r.get(k) is None else str(r.get(k)) for k in ["eid", *variables]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def metric_rows(eid: int, volume: float = 10.0, ff: float | None = 0.1) -> list[dict[str, object]]:
    """All 27 structures x 2 sides with one volume (the engine's commit_subject shape)."""
    return [
        {"structure": s.label, "side": side, "volume_cm3": volume, "fat_fraction": ff}
        for s in STRUCTURES
        for side in ("left", "right")
    ]


def write_metrics_csv(path: Path, rows: Iterable[tuple[object, ...]], header: str = "eid,structure,side,volume_cm3,fat_fraction") -> Path:
    lines = [header] + [",".join("" if v is None else str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "msmv")
