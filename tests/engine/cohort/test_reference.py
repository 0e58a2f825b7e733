"""Percentiles and z-scores against a same-sex ±5-year reference group, checked with scipy/numpy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engine.cohort.reference import (
    AGE_BAND_YEARS,
    compare,
    ewgsop2_status,
    percentile_rank,
    reference_group,
    structure_table,
    z_score,
)
from tests.cohort_data import synthetic_cohort


def _cohort(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """The shared synthetic cohort with one reference-group member lacking TMV."""
    df = synthetic_cohort(n, seed)
    df.loc[5, "tmv_cm3"] = np.nan  # a group member without a value
    return df


@pytest.mark.parametrize("value", [3.0, 2.5, 10.0, -1.0, 4.0])
def test_percentile_rank_matches_scipy_mean_kind(value):
    ref = np.array([1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 7.5, np.nan])
    assert percentile_rank(value, ref) == pytest.approx(stats.percentileofscore(ref[:-1], value, kind="mean"))


def test_percentile_rank_edge_cases():
    assert percentile_rank(3.0, np.array([3.0, 3.0])) == 50.0  # all ties: the middle
    assert np.isnan(percentile_rank(3.0, np.array([])))
    assert np.isnan(percentile_rank(float("nan"), np.array([1.0, 2.0])))


def test_z_score_uses_sample_sd():
    ref = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert z_score(9.0, ref) == pytest.approx((9.0 - ref.mean()) / ref.std(ddof=1))
    assert np.isnan(z_score(1.0, np.array([5.0])))
    assert np.isnan(z_score(1.0, np.array([5.0, 5.0])))  # SD 0


def test_reference_group_is_same_sex_within_band_excluding_the_person():
    df = _cohort()
    eid = int(df.eid.iloc[10])
    me = df.iloc[10]
    group = reference_group(df, eid)
    expected = [int(r.eid) for r in df.itertuples()
                if r.sex == me.sex and abs(r.age - me.age) <= AGE_BAND_YEARS and r.eid != eid]
    assert sorted(df.loc[group.mask, "eid"].tolist()) == expected
    assert group.n == len(expected) > 20
    assert ("men" if me.sex == 1 else "women") in group.description


def test_compare_equals_an_independent_computation():
    df = _cohort()
    eid = int(df.eid.iloc[42])
    me = df.iloc[42]
    ref = df[(df.sex == me.sex) & ((df.age - me.age).abs() <= 5) & (df.eid != eid)]["tmv_cm3"].dropna()
    out = compare(df, eid, ["tmv_cm3"]).iloc[0]
    assert out["n_ref"] == len(ref)
    assert out["percentile"] == pytest.approx(stats.percentileofscore(ref, me.tmv_cm3, kind="mean"))
    assert out["z_score"] == pytest.approx((me.tmv_cm3 - ref.mean()) / ref.std(ddof=1))
    assert out["ref_mean"] == pytest.approx(ref.mean())


def test_compare_rejects_unknown_participant_and_column():
    df = _cohort(50)
    with pytest.raises(ValueError, match="participant 1 is not in the store"):
        compare(df, 1, ["tmv_cm3"])
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['nope'\]"):
        compare(df, int(df.eid.iloc[0]), ["nope"])


def test_unknown_sex_gives_an_empty_group_and_nan():
    df = _cohort(50)
    df.loc[0, "sex"] = np.nan
    out = compare(df, int(df.eid.iloc[0]), ["tmv_cm3"]).iloc[0]
    assert out["n_ref"] == 0 and np.isnan(out["percentile"])


def test_structure_table_sides_and_asymmetry():
    df = _cohort()
    eid = int(df.eid.iloc[7])
    me = df.iloc[7]
    table = structure_table(df, eid).set_index("key")
    assert len(table) == 27
    rf = table.loc["rectus_femoris"]
    left, right = me.vol_rectus_femoris_left_cm3, me.vol_rectus_femoris_right_cm3
    assert rf["asymmetry_pct"] == pytest.approx(abs(left - right) / ((left + right) / 2) * 100)
    ref = df[(df.sex == me.sex) & ((df.age - me.age).abs() <= 5) & (df.eid != eid)]
    assert rf["percentile_left"] == pytest.approx(
        stats.percentileofscore(ref.vol_rectus_femoris_left_cm3, left, kind="mean"))
    assert rf["percentile"] == pytest.approx(
        stats.percentileofscore(ref.vol_rectus_femoris_cm3, left + right, kind="mean"))
    assert rf["fat_fraction"] == pytest.approx(me.ff_rectus_femoris)
    assert rf["n_ref"] == len(ref)


@pytest.mark.parametrize(("weak", "low", "expected"), [
    (1, 1, "sarcopenia (weak"), (1, 0, "probable sarcopenia (weak grip only)"), (0, 1, "no sarcopenia"),
    (None, 1, "unknown"), (1, None, "probable sarcopenia (weak grip; muscle mass unknown)"),
])
def test_ewgsop2_status(weak, low, expected):
    assert ewgsop2_status(pd.Series({"weak_grip": weak, "low_muscle_mass": low})).startswith(expected)
