"""AMRA's fields, the DEXA totals and the IPAQ source instance: imported by the shipped mapping, in the
wide table and the data dictionary, against hand computations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from store.home import Home
from store.metrics import data_dictionary
from store.reader import Reader
from store.structures import STRUCTURES
from store.writer import Writer

# UK Biobank showcase columns (ukbconv style) of the shipped store/fields.toml; field IDs written out so
# a wrong ID in the mapping fails here.
HEADER = ("eid,31-0.0,50-2.0,22032-2.0,22032-0.0,23258-2.0,23275-2.0,23280-2.0,"
          "22409-2.0,22403-2.0,22404-2.0,22405-2.0,22406-2.0,22435-2.0")
ROWS = (
    # eid 1: IPAQ at the imaging visit; AMRA in litres, DEXA totals in grams
    "1,1,180,1,0,6200,20800,55000,11.25,2.5,1.5,2.25,1.25,6.5",
    # eid 2: IPAQ only at baseline (falls back, recorded as instance 0); no AMRA
    "2,0,165,,2,5000,16000,40000,,,,,,",
    # eid 3: no IPAQ answer at all
    "3,1,175,,,,,,,,,,,",
)


def _vol(label: int, side: str) -> float:
    """Left 10 x label, right 5 more (as tests/store/test_metrics.py): compartment sums by hand."""
    return 10.0 * label + (5.0 if side == "right" else 0.0)


def _write(path: Path, lines: tuple[str, ...]) -> Path:
    path.write_text("\n".join((HEADER, *lines)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def wide(tmp_path: Path, home: Home) -> pd.DataFrame:
    metrics = [{"structure": s.key, "side": side, "volume_cm3": _vol(s.label, side), "fat_fraction": 0.1}
               for s in STRUCTURES for side in ("left", "right")]  # fmt: skip
    with Writer(home) as w:
        report = w.import_phenotypes(_write(tmp_path / "p.csv", ROWS))
        w.commit_subject(1, metrics, [], {"kind": "test"})
    assert report.rejected == [] and report.errors.empty, (report.rejected, report.errors)
    with Reader(home) as r:
        return r.participants().set_index("eid")


def test_amra_volumes_in_cm3_and_the_pa_ratio(wide: pd.DataFrame) -> None:
    one = wide.loc[1]
    assert one["amra_thigh_muscle_cm3"] == pytest.approx(11_250.0)
    assert (one["amra_anterior_right_cm3"], one["amra_anterior_left_cm3"]) == pytest.approx((2_500.0, 2_250.0))
    assert (one["amra_posterior_right_cm3"], one["amra_posterior_left_cm3"]) == pytest.approx((1_500.0, 1_250.0))
    assert one["amra_anterior_cm3"] == pytest.approx(4_750.0)
    assert one["amra_posterior_cm3"] == pytest.approx(2_750.0)
    assert one["amra_pa_ratio"] == pytest.approx(2_750.0 / 4_750.0)
    assert one["amra_mfi_pct"] == pytest.approx(6.5)
    assert wide.loc[[2, 3], "amra_thigh_muscle_cm3"].isna().all() and pd.isna(wide.loc[2, "amra_pa_ratio"])


def test_msmv_compartment_volumes_are_the_sums_of_their_structures(wide: pd.DataFrame) -> None:
    one = wide.loc[1]
    # anterior labels 1-5: left 10+20+30+40+50 = 150, right 175; posterior 19-21: left 600, right 615
    assert one["anterior_cm3"] == pytest.approx(325.0)
    assert one["posterior_cm3"] == pytest.approx(1_215.0)
    assert one["pa_ratio"] == pytest.approx(1_215.0 / 325.0)
    assert pd.isna(wide.loc[2, "anterior_cm3"])  # no imaging


def test_dexa_totals_and_the_ipaq_instance_are_columns(wide: pd.DataFrame) -> None:
    assert wide.loc[1, ["dexa_arms_lean_kg", "dexa_legs_lean_kg", "dexa_total_lean_kg"]].tolist() == pytest.approx(
        [6.2, 20.8, 55.0])  # grams converted to kg
    assert wide.loc[2, "dexa_total_lean_kg"] == pytest.approx(40.0)
    assert (wide.loc[1, "activity_group"], wide.loc[1, "activity_group_instance"]) == (1, 2)
    assert (wide.loc[2, "activity_group"], wide.loc[2, "activity_group_instance"]) == (2, 0)
    assert pd.isna(wide.loc[3, "activity_group"]) and pd.isna(wide.loc[3, "activity_group_instance"])


def test_the_dictionary_names_amra_fields_and_says_the_regions_differ() -> None:
    d = data_dictionary().set_index("column")
    assert d.loc["amra_thigh_muscle_cm3", "source_field"] == "22409"
    assert d.loc["amra_anterior_cm3", "source_field"] == "22405, 22403"
    assert d.loc["amra_posterior_cm3", "source_field"] == "22406, 22404"
    assert d.loc["amra_mfi_pct", "source_field"] == "22435"
    assert d.loc["dexa_total_lean_kg", "source_field"] == "23280"
    assert d.loc["activity_group_instance", "source_field"] == "22032 (instance 2, else 0)"
    thigh = d.loc["amra_thigh_muscle_cm3", "definition"]
    assert "Not TMV" in thigh and "gluteal" in thigh and "compare, don't equate" in thigh
    assert d.loc["amra_thigh_muscle_cm3", "unit"] == "cm³" and d.loc["anterior_cm3", "source_field"] == "MSMV"


def test_thigh_volumes_in_cm3_are_refused_as_litres(tmp_path: Path, home: Home) -> None:
    # the whole column in cm³ (11,250 for 11.25 L) is a unit mistake: outside [1, 30] L, not stored
    rows = tuple(f"{e},1,180,1,,,,,{11_250 + e},,,,," for e in range(1, 6))
    with Writer(home) as w:
        report = w.import_phenotypes(_write(tmp_path / "cm3.csv", rows))
    assert len(report.rejected) == 1
    assert report.rejected[0].startswith("amra_thigh_muscle_l (field 22409, column 22409-2.0) not stored: 5 of 5")
    assert "outside plausible range [1, 30]" in report.rejected[0]
