"""QC flags with known answers: clean subjects raise none; wiped, shuffled or lopsided labels and the
engine's recorded troubles raise exactly the expected flags, with their numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from engine.cohort.reference import band_z_scores, compare
from engine.quality import qc_columns, quality_report
from store.structures import STRUCTURES
from store.vocabulary import volume_column

N_REF = 40  # reference people per test subject: half at base x 0.9, half at base x 1.1
REF_SD_FACTOR = 0.1 * math.sqrt(N_REF / (N_REF - 1))  # their sample SD (ddof=1) over the base volume


def _base(label: int) -> float:
    return 50.0 * label  # 50 cm³ (sartorius) ... 1350 cm³ (femur): every structure a different size


def _row(eid: int, sex: int, age: float, volumes: dict[int, tuple[float, float]]) -> dict[str, object]:
    row: dict[str, object] = {"eid": eid, "sex": sex, "age": age, "has_imaging": True, "imaging_instance": 2}
    for s in STRUCTURES:
        left, right = volumes.get(s.label, (_base(s.label) / 2, _base(s.label) / 2))
        row[volume_column(s.key, "left")], row[volume_column(s.key, "right")] = left, right
        row[volume_column(s.key)] = left + right
    return row


def _cohort(subjects: dict[int, dict[int, tuple[float, float]]]) -> pd.DataFrame:
    """Each test subject alone with its own 40 men, 15 years from the next subject's (bands of ±5 never meet)."""
    rows = []
    for k, (eid, volumes) in enumerate(subjects.items()):
        age = 45.0 + 15.0 * k
        rows.append(_row(eid, 1, age, volumes))
        for i in range(N_REF):
            f = 0.9 if i % 2 else 1.1
            rows.append(_row(10_000 * (k + 1) + i, 1, age,
                             {s.label: (f * _base(s.label) / 2, f * _base(s.label) / 2) for s in STRUCTURES}))
    return pd.DataFrame(rows)


def _flags(report, eid: int) -> list[tuple[str, str]]:
    f = report.flags[report.flags["eid"] == eid]
    return sorted(zip(f["code"], f["structure"], strict=True))


def test_clean_subject_and_reference_raise_nothing():
    report = quality_report(_cohort({1: {}}))
    assert report.flags.empty
    assert (report.subjects["qc_flag_count"] == 0).all() and len(report.subjects) == N_REF + 1
    clean = report.subjects.set_index("eid").loc[1]
    assert clean["qc_flags"] == "" and clean["max_abs_z"] == pytest.approx(0.0, abs=1e-9)
    assert clean["max_asymmetry_pct"] == pytest.approx(0.0)


def test_wiped_structure_is_missing_not_an_outlier():
    report = quality_report(_cohort({2: {9: (0.0, 0.0)}}))  # piriformis wiped
    assert _flags(report, 2) == [("structure_missing", "piriformis")]
    assert report.subjects.set_index("eid").loc[2, "missing_structures"] == 1
    assert report.subjects.set_index("eid").loc[2, "qc_flags"] == "structure_missing(piriformis)"


def test_all_labels_wiped_flags_every_structure_missing():
    report = quality_report(_cohort({3: {s.label: (0.0, 0.0) for s in STRUCTURES}}))
    assert _flags(report, 3) == sorted(("structure_missing", s.key) for s in STRUCTURES)
    assert report.subjects.set_index("eid").loc[3, "qc_flag_count"] == 27


def test_shuffled_labels_are_volume_outliers_with_their_z():
    # gluteus maximus (label 6, base 300 cm³) and adductor magnus (14, base 700 cm³) exchanged
    report = quality_report(_cohort({4: {6: (350.0, 350.0), 14: (150.0, 150.0)}}))
    assert _flags(report, 4) == [("volume_outlier", "adductor_magnus"), ("volume_outlier", "gluteus_maximus")]
    z = report.flags.set_index("structure")["value"]
    assert z["gluteus_maximus"] == pytest.approx((700 - 300) / (300 * REF_SD_FACTOR))  # +13.2
    assert z["adductor_magnus"] == pytest.approx((300 - 700) / (700 * REF_SD_FACTOR))  # -5.6
    assert "700.0 cm³ is z = +13.2" in report.flags.set_index("structure").loc["gluteus_maximus", "reason"]


def test_volume_z_threshold_is_four():
    sd = 300 * REF_SD_FACTOR  # gluteus maximus' reference SD, 30.4 cm³
    just_in, just_out = 300 + 3.99 * sd, 300 + 4.01 * sd
    report = quality_report(_cohort({5: {6: (just_in / 2, just_in / 2)}, 6: {6: (just_out / 2, just_out / 2)}}))
    assert _flags(report, 5) == []
    assert _flags(report, 6) == [("volume_outlier", "gluteus_maximus")]
    assert report.flags["value"].iloc[0] == pytest.approx(4.01)


def test_asymmetry_threshold_is_fifty_percent():
    # piriformis 450 cm³ in total, so mean(L, R) = 225 cm³ and asymmetry = |L - R| / 225 x 100
    report = quality_report(_cohort({7: {9: (333.0, 117.0)}, 9: {9: (279.0, 171.0)}, 10: {9: (283.5, 166.5)}}))
    assert _flags(report, 7) == [("asymmetry", "piriformis")]
    assert _flags(report, 9) == []  # 108 / 225 = 48 %
    assert _flags(report, 10) == [("asymmetry", "piriformis")]  # 117 / 225 = 52 %
    value = report.flags.set_index("eid")["value"]
    assert value[7] == pytest.approx(96.0) and value[10] == pytest.approx(52.0)


def test_provenance_details_raise_their_flags():
    wide = _cohort({11: {}, 12: {}, 13: {}})
    details = {
        11: {"low_confidence_share": 0.12, "touches_edge": [9, 22, 27], "swapped_stations": [4, 5],
             "mesh_error": "NotAllTrianglesError: Input mesh for decimation must be all triangles"},
        12: {"low_confidence_share": 0.03, "touches_edge": [22, 27], "swapped_stations": []},  # all as expected
        13: {},  # processed before any of these were recorded
    }
    prov = pd.DataFrame({"eid": list(details), "instance": 2, "details": [json.dumps(d) for d in details.values()]})
    report = quality_report(wide, prov)
    assert _flags(report, 11) == [("low_confidence", ""), ("stage_degraded", ""), ("swap_corrected", ""),
                                  ("touches_edge", "piriformis")]  # multifidus and femur leave the field anyway
    reasons = report.flags.set_index("code")["reason"]
    assert "12.0% of body voxels" in reasons["low_confidence"]
    assert "stations 4, 5" in reasons["swap_corrected"]
    assert "NotAllTrianglesError" in reasons["stage_degraded"]
    assert _flags(report, 12) == [] and _flags(report, 13) == []
    s = report.subjects.set_index("eid")
    assert s.loc[11, "low_confidence_share"] == pytest.approx(0.12) and math.isnan(s.loc[13, "low_confidence_share"])
    assert s.loc[11, "swapped_stations"] == "4,5"


def test_edge_shares_are_judged_against_a_tenth_of_the_widest_cross_section():
    wide = _cohort({17: {}})
    details = {"touches_edge": [7, 8, 9, 22],  # the engine's list, made with any voxel counting
               "edge_share": {"7": 0.014, "8": 0.10, "9": 0.5, "22": 0.99, "6": 0.099}}
    prov = pd.DataFrame({"eid": [17], "instance": 2, "details": [json.dumps(details)]})
    report = quality_report(wide, prov)
    # gluteus medius' 1.4 % sliver and gluteus maximus' 9.9 % are not cuts; multifidus leaves the field anyway
    assert _flags(report, 17) == [("touches_edge", "gluteus_minimus"), ("touches_edge", "piriformis")]
    f = report.flags.set_index("structure")
    assert f.loc["piriformis", "value"] == pytest.approx(0.5) and f.loc["piriformis", "threshold"] == pytest.approx(0.1)
    assert "with 50% of its widest cross-section (>= 10%)" in f.loc["piriformis", "reason"]


def test_edge_shares_of_unknown_labels_are_left_out():
    wide = _cohort({18: {}})
    details = {"edge_share": {"x": 0.9, "999": 0.8, "9": 0.5, "2.5": 0.7}}
    prov = pd.DataFrame({"eid": [18], "instance": 2, "details": [json.dumps(details)]})
    assert _flags(quality_report(wide, prov), 18) == [("touches_edge", "piriformis")]

def test_confidence_threshold_is_eight_percent():
    wide = _cohort({14: {}, 15: {}})
    prov = pd.DataFrame({"eid": [14, 15], "instance": 2,
                         "details": [json.dumps({"low_confidence_share": 0.079}),
                                     json.dumps({"low_confidence_share": 0.081})]})
    report = quality_report(wide, prov)
    assert _flags(report, 14) == [] and _flags(report, 15) == [("low_confidence", "")]


def test_import_not_measured_structures_are_not_missing():
    wide = _cohort({16: {24: (0.0, 0.0), 25: (0.0, 0.0), 7: (0.0, 0.0)}})
    prov = pd.DataFrame({"eid": [16], "instance": 2, "details": [json.dumps({
        "tool": "MuscleMap", "not_measured": ["abdominal_oblique left", "abdominal_oblique right",
                                              "rectus_abdominis left", "rectus_abdominis right"]})]})
    assert _flags(quality_report(wide, prov), 16) == [("structure_missing", "gluteus_medius")]


def test_unmeasured_structures_and_unimaged_participants_are_not_judged():
    wide = _cohort({17: {}})
    wide.loc[wide["eid"] == 17, [volume_column("piriformis", side) for side in (None, "left", "right")]] = np.nan
    wide = pd.concat([wide, pd.DataFrame([{"eid": 99, "sex": 1, "age": 45.0, "has_imaging": False}])])
    report = quality_report(wide)
    assert report.flags.empty and 99 not in set(report.subjects["eid"])
    cols = qc_columns(report, [17, 99])
    assert cols["qc_flag_count"].tolist()[0] == 0 and pd.isna(cols["qc_flag_count"].tolist()[1])


def test_band_z_scores_match_compare_for_everyone(cohort):
    cols = ["tmv_cm3", volume_column("piriformis")]
    df = cohort.reset_index(drop=True).head(400)
    z = band_z_scores(df, cols)
    for eid in df["eid"].iloc[::37]:
        expected = compare(df, int(eid), cols).set_index("column")["z_score"]
        got = z.loc[df.index[df["eid"] == eid][0]]
        for c in cols:
            assert got[c] == pytest.approx(expected[c], rel=1e-9, abs=1e-12, nan_ok=True)
