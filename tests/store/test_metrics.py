"""Derived metrics against hand computations, and the data dictionary against the wide table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from store.home import home as make_home
from store.metrics import data_dictionary
from store.reader import Reader
from store.structures import MUSCLE_LABELS, STRUCTURES, labels_in
from store.writer import Writer
from tests.store.conftest import write_phenotypes

# Columns the engine, dashboard and exports code against: they must exist under exactly these names.
REQUIRED_COLUMNS = (
    "eid sex age height_cm weight_kg bmi grip_left_kg grip_right_kg grip_max_kg arm_lean_left_kg arm_lean_right_kg "
    "leg_lean_left_kg leg_lean_right_kg alm_kg almi legs_lean_kg tmv_cm3 tvi pa_ratio lr_asym_dexa_pct "
    "lr_asym_mri_pct muscle_strength weak_grip low_muscle_mass sarcopenia probable_sarcopenia died falls "
    "activity_group centre visit_date death_date age_stratum source simulated has_imaging"
).split()

BASE = {"sex": 1, "age": 60, "height_cm": 180, "weight_kg": 81, "grip_left_kg": 30, "grip_right_kg": 26,
        "arm_lean_left_kg": 3.0, "arm_lean_right_kg": 3.2, "leg_lean_left_kg": 10.0, "leg_lean_right_kg": 10.8,
        "visit_date": "2016-01-01", "falls_code": 1}  # fmt: skip


def _vol(label: int, side: str) -> float:
    """Left volume 10 x label, right 5 more: sums are easy to do by hand."""
    return 10.0 * label + (5.0 if side == "right" else 0.0)


def _ff(side: str) -> float:
    return 0.1 if side == "left" else 0.3


def _subject_metrics() -> list[dict[str, object]]:
    return [{"structure": s.key, "side": side, "volume_cm3": _vol(s.label, side), "fat_fraction": _ff(side)}
            for s in STRUCTURES for side in ("left", "right")]  # fmt: skip


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    tmp_path = tmp_path_factory.mktemp("metrics")
    home = make_home(tmp_path / "msmv")
    people = [
        dict(BASE, eid=1),  # the hand-computed subject, with imaging
        # EWGSOP2 (Cruz-Jentoft 2019, Table 3): weak grip < 27 kg men, < 16 kg women; low ALMI < 7.0 / < 5.5 kg/m².
        # Literal numbers on purpose: a wrong cut-off in store.metrics must fail here.
        dict(BASE, eid=2, grip_left_kg=27.0, grip_right_kg=None, height_cm=200,  # men at both cut-offs
             arm_lean_left_kg=4, arm_lean_right_kg=4, leg_lean_left_kg=10, leg_lean_right_kg=10),
        dict(BASE, eid=3, grip_left_kg=26.9, grip_right_kg=None, height_cm=200,  # weak + low (6.99)
             arm_lean_left_kg=4, arm_lean_right_kg=4, leg_lean_left_kg=10, leg_lean_right_kg=9.96),
        dict(BASE, eid=4, sex=0, grip_left_kg=16.0, grip_right_kg=None, height_cm=200,  # women at cut-offs
             arm_lean_left_kg=3, arm_lean_right_kg=3, leg_lean_left_kg=8, leg_lean_right_kg=8),
        dict(BASE, eid=5, sex=0, grip_left_kg=15.99, grip_right_kg=None, height_cm=200,  # probable sarcopenia
             arm_lean_left_kg=3, arm_lean_right_kg=3, leg_lean_left_kg=8, leg_lean_right_kg=8),
        dict(BASE, eid=6, leg_lean_right_kg=None, grip_left_kg=None, grip_right_kg=None,  # unknowns propagate
             falls_code=-3, death_date="2017-02-03"),
        dict(BASE, eid=7, visit_date=None, death_date="2020-01-01", falls_code=3, age=49.9),
        dict(BASE, eid=8, death_date="2016-01-01", falls_code=2, age=80),  # died on the visit day: 0
        dict(BASE, eid=9, age=39, sex=None),
        dict(BASE, eid=10),  # imaging with a missing femur row and an unknown fat fraction
        dict(BASE, eid=11, sex=0, grip_left_kg=16.01, grip_right_kg=None, height_cm=200,  # women: low (5.49) only
             arm_lean_left_kg=3, arm_lean_right_kg=3, leg_lean_left_kg=8, leg_lean_right_kg=7.96),
    ]
    partial = [m for m in _subject_metrics() if not (m["structure"] == "femur" and m["side"] == "right")]
    for m in partial:
        if m["structure"] == "gracilis" and m["side"] == "right":
            m["fat_fraction"] = None
    with Writer(home) as w:
        w.import_phenotypes(write_phenotypes(tmp_path / "p.csv", people))
        w.commit_subject(1, _subject_metrics(), [], {"kind": "test"})
        w.commit_subject(10, partial, [], {"kind": "test"})
    with Reader(home) as r:
        return r.participants().set_index("eid")


def test_dictionary_and_wide_table_have_the_same_columns(wide: pd.DataFrame) -> None:
    dictionary = data_dictionary()
    assert list(dictionary.columns) == ["column", "unit", "definition", "source_field"]
    assert dictionary["column"].tolist() == ["eid", *wide.columns]
    assert dictionary["column"].is_unique
    assert dictionary["definition"].str.len().min() > 2
    assert set(REQUIRED_COLUMNS) <= set(dictionary["column"])
    for s in STRUCTURES:
        for col in (f"vol_{s.key}_cm3", f"vol_{s.key}_left_cm3", f"vol_{s.key}_right_cm3", f"ff_{s.key}"):
            assert col in wide.columns
    assert "cm³/cm²" in dictionary.set_index("column").loc["tvi", "unit"]
    assert "cm³/m²" in dictionary.set_index("column").loc["tvi", "definition"]  # says why it is not cm³/m²


def test_volume_metrics_match_hand_computation(wide: pd.DataFrame) -> None:
    row = wide.loc[1]
    left = sum(_vol(lab, "left") for lab in MUSCLE_LABELS)
    right = sum(_vol(lab, "right") for lab in MUSCLE_LABELS)
    assert (left, right) == (3250.0, 3375.0)
    assert row["tmv_cm3"] == pytest.approx(left + right)
    assert row["tvi"] == pytest.approx(6625.0 / 180.0**2)
    post = sum(_vol(lab, s) for lab in labels_in("posterior") for s in ("left", "right"))
    ant = sum(_vol(lab, s) for lab in labels_in("anterior") for s in ("left", "right"))
    assert (post, ant) == (1215.0, 325.0)
    assert row["pa_ratio"] == pytest.approx(1215.0 / 325.0)
    assert row["lr_asym_mri_pct"] == pytest.approx(125.0 / 3312.5 * 100)
    assert row["muscle_strength"] == pytest.approx(30.0 / 6.625)
    assert row["vol_femur_cm3"] == pytest.approx(270 + 275)  # bones are stored but not in TMV
    assert row["vol_gracilis_left_cm3"] == 170.0 and row["vol_gracilis_right_cm3"] == 175.0
    assert row["ff_gracilis"] == pytest.approx((170 * 0.1 + 175 * 0.3) / 345)
    assert bool(row["has_imaging"]) and not bool(wide.loc[2, "has_imaging"])
    assert math.isnan(wide.loc[2, "tmv_cm3"]) and pd.isna(wide.loc[2, "pa_ratio"])


def test_dexa_and_grip_metrics_match_hand_computation(wide: pd.DataFrame) -> None:
    row = wide.loc[1]
    assert row["grip_max_kg"] == 30.0
    assert row["alm_kg"] == pytest.approx(27.0)
    assert row["almi"] == pytest.approx(27.0 / 1.8**2)
    assert row["legs_lean_kg"] == pytest.approx(20.8)
    assert row["lr_asym_dexa_pct"] == pytest.approx(0.8 / 10.4 * 100)
    assert row["bmi"] == pytest.approx(81 / 1.8**2)  # field 21001 absent: computed from weight and height
    assert (row["weak_grip"], row["low_muscle_mass"], row["sarcopenia"], row["probable_sarcopenia"]) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("eid", "almi", "weak", "low", "sarc", "probable"),
    [
        (2, 28 / 4, 0, 0, 0, 0),  # men: grip 27 and ALMI (4+4+10+10)/2² = 7.0 exactly are not below the cut-offs
        (3, 27.96 / 4, 1, 1, 1, 0),  # men: 26.9 kg and ALMI 6.99
        (4, 22 / 4, 0, 0, 0, 0),  # women: grip 16 and ALMI (3+3+8+8)/2² = 5.5 exactly
        (5, 5.5, 1, 0, 0, 1),  # women: 15.99 kg, normal mass -> probable sarcopenia
        (11, 21.96 / 4, 0, 1, 0, 0),  # women: 16.01 kg is not weak; ALMI 5.49 is low mass
    ],
)
def test_ewgsop2_at_the_cut_offs(wide: pd.DataFrame, eid: int, almi: float, weak: int, low: int, sarc: int,
                                 probable: int) -> None:  # fmt: skip
    row = wide.loc[eid]
    assert row["almi"] == pytest.approx(almi)
    assert (row["weak_grip"], row["low_muscle_mass"], row["sarcopenia"], row["probable_sarcopenia"]) == (
        weak, low, sarc, probable)  # fmt: skip


def test_unknown_inputs_give_empty_outcomes(wide: pd.DataFrame) -> None:
    row = wide.loc[6]
    for col in ("grip_max_kg", "alm_kg", "almi", "legs_lean_kg", "lr_asym_dexa_pct", "weak_grip", "low_muscle_mass",
                "sarcopenia", "probable_sarcopenia", "falls", "muscle_strength"):  # fmt: skip
        assert pd.isna(row[col]), col
    assert row["died"] == 1  # died 2017 after the 2016 visit
    assert pd.isna(wide.loc[9, "weak_grip"]) and pd.isna(wide.loc[9, "low_muscle_mass"])  # sex unknown


def test_died_falls_and_age_strata(wide: pd.DataFrame) -> None:
    assert pd.isna(wide.loc[7, "died"])  # visit date unknown
    assert wide.loc[8, "died"] == 0  # death on the visit day is not after it
    assert wide.loc[1, "died"] == 0  # no death recorded
    assert [wide.loc[e, "falls"] for e in (1, 7, 8)] == [0, 1, 1]
    strata = {e: wide.loc[e, "age_stratum"] for e in (1, 7, 8, 9)}
    assert strata[1] == "60-69" and strata[7] == "40-49" and strata[8] == "80+" and pd.isna(strata[9])


def test_missing_rows_and_unknown_fat_fractions_stay_in_their_own_slot(wide: pd.DataFrame) -> None:
    row = wide.loc[10]
    assert row["vol_femur_left_cm3"] == 270.0 and pd.isna(row["vol_femur_right_cm3"]) and pd.isna(row["vol_femur_cm3"])
    assert row["ff_gracilis"] == pytest.approx(0.1)  # right side unknown: left only
    assert row["ff_sartorius"] == pytest.approx((10 * 0.1 + 15 * 0.3) / 25)
    assert row["tmv_cm3"] == pytest.approx(6625.0)  # bones are not part of TMV
    assert row["vol_iliac_bone_right_cm3"] == 265.0
