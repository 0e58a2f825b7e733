"""The simulated cohort's files: shapes, UKB codes, structure geometry, determinism, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine import calibration as cal
from engine import simulate as sim
from engine.simulate import SimulatedCohort, simulate_cohort, write_demo_files
from engine.simulate_solve import MIN_STRATUM_FOR_FIT
from store.structures import STRUCTURES, labels_in


@pytest.fixture(scope="module")
def cohort() -> SimulatedCohort:
    return simulate_cohort(6000, seed=11)


def _per_structure(metrics: pd.DataFrame) -> pd.DataFrame:
    """Both-sides volume per eid x structure, computed from the long table."""
    return metrics.groupby(["eid", "structure"], observed=True)["volume_cm3"].sum().unstack()


def test_frames_have_ukb_columns_and_one_row_per_participant_structure_side(cohort: SimulatedCohort) -> None:
    ph, me = cohort.phenotypes, cohort.metrics
    assert list(ph.columns) == list(sim.PHENOTYPE_COLUMNS)
    assert "50-2.0" in ph.columns and "23266-2.0" in ph.columns
    assert len(ph) == 6000 and ph["eid"].is_unique
    assert ph["eid"].between(1_000_000, 6_099_999).all()
    assert list(me.columns) == list(sim.METRIC_COLUMNS)
    assert len(me) == 6000 * len(STRUCTURES) * 2
    counts = me.groupby(["structure", "side"], observed=True).size()
    assert len(counts) == 54 and (counts == 6000).all()
    assert set(me["structure"].unique()) == {s.key for s in STRUCTURES}


def test_sex_split_is_the_studys(cohort: SimulatedCohort) -> None:
    men = int(cohort.phenotypes["31-0.0"].sum())
    assert men == round(6000 * 17_920 / 37_004)
    full = simulate_cohort(cal.N_PARTICIPANTS, seed=0).phenotypes
    assert int(full["31-0.0"].sum()) == cal.N_MEN
    assert int((full["31-0.0"] == 0).sum()) == cal.N_WOMEN


def test_ukb_codes_and_dates(cohort: SimulatedCohort) -> None:
    ph = cohort.phenotypes
    assert set(ph["2296-2.0"].unique()) <= {1, 2, 3, -1, -3}
    assert (ph["2296-2.0"] < 0).any()  # some "do not know / prefer not to answer"
    assert set(ph["22032-0.0"].dropna().unique()) <= {0, 1, 2}
    assert ph["22032-0.0"].isna().any()
    assert set(ph["54-2.0"].unique()) <= {11025, 11026, 11027, 11028}
    visit = pd.to_datetime(ph["53-2.0"])
    assert visit.min() >= pd.Timestamp("2014-01-01") and visit.max() <= pd.Timestamp("2020-12-31")
    dead = ph["40000-0.0"] != ""
    assert 0 < dead.mean() < 0.1
    assert (pd.to_datetime(ph.loc[dead, "40000-0.0"]) > visit[dead]).all()
    assert ph["21003-2.0"].min() >= 50 and ph["21003-2.0"].max() <= 82
    # DEXA in grams as UKB stores it: a leg weighs kilograms, so thousands of grams.
    legs = ph["23265-2.0"].dropna()
    assert 4_000 < legs.median() < 15_000
    # BMI column agrees with weight / height^2.
    bmi = ph["21002-2.0"] / (ph["50-2.0"] / 100) ** 2
    np.testing.assert_allclose(ph["21001-2.0"], bmi, atol=1e-3)


def test_missingness_is_small_and_whole(cohort: SimulatedCohort) -> None:
    ph = cohort.phenotypes
    dexa = ph[["23263-2.0", "23264-2.0", "23265-2.0", "23266-2.0"]].isna()
    assert 0.005 < dexa.all(axis=1).mean() < 0.03
    assert (dexa.any(axis=1) == dexa.all(axis=1)).all()  # no DEXA at all, never a partial scan
    grips = ph[["46-2.0", "47-2.0"]].isna()
    assert grips.any(axis=None) and grips.all(axis=1).mean() < 0.01


def test_grip_max_hand_and_integers(cohort: SimulatedCohort) -> None:
    g = cohort.phenotypes[["46-2.0", "47-2.0"]].dropna().astype(float)
    assert (g % 1 == 0).all(axis=None)
    assert (g.max(axis=1) >= g.min(axis=1)).all()
    assert 0.5 < (g["47-2.0"] >= g["46-2.0"]).mean() < 0.75  # right hand is usually the stronger


def test_muscles_sum_and_pa_ratio_geometry(cohort: SimulatedCohort) -> None:
    wide = _per_structure(cohort.metrics)
    anterior = [s.key for s in STRUCTURES if s.label in labels_in("anterior")]
    posterior = [s.key for s in STRUCTURES if s.label in labels_in("posterior")]
    muscles = [s.key for s in STRUCTURES if s.is_muscle]
    tmv = wide[muscles].sum(axis=1)
    pa_ratio = wide[posterior].sum(axis=1) / wide[anterior].sum(axis=1)
    c1, c2 = np.quantile(pa_ratio, [1 / 3, 2 / 3])
    assert c1 == pytest.approx(cal.PA_TERTILE_CUTS[0], abs=0.01)
    assert c2 == pytest.approx(cal.PA_TERTILE_CUTS[1], abs=0.01)
    assert 5_000 < tmv.median() < 13_000
    medians = wide.median()
    largest_two = set(medians[muscles].nlargest(2).index)
    assert largest_two <= {"gluteus_maximus", "vastus_lateralis", "adductor_magnus"}
    assert "gluteus_maximus" in largest_two
    small = ["piriformis", "obturator_internus", "obturator_externus", "quadratus_femoris"]
    assert (medians[small] < 0.02 * tmv.median()).all()
    # Bones are plausible bone volumes (hundreds of cm3) and not part of TMV.
    assert 200 < medians["femur"] < 1_500 and 200 < medians["iliac_bone"] < 1_000


def test_left_right_close_and_fat_fraction_plausible(cohort: SimulatedCohort) -> None:
    me = cohort.metrics
    sides = me.pivot_table(index=["eid", "structure"], columns="side", values="volume_cm3", observed=True)
    asym = (sides["left"] - sides["right"]).abs() / sides.mean(axis=1) * 100
    assert 0.5 < asym.median() < 3.0
    muscle_keys = {s.key for s in STRUCTURES if s.is_muscle}
    ff = me[me["structure"].isin(muscle_keys)]
    assert 0.05 < ff["fat_fraction"].median() < 0.15
    assert ff["fat_fraction"].between(0, 1).all()
    # Fat fraction rises with age (slope of the per-person mean on age is positive).
    person_ff = ff.groupby("eid")["fat_fraction"].mean()
    age = cohort.phenotypes.set_index("eid")["21003-2.0"].reindex(person_ff.index)
    slope = np.polyfit(age.to_numpy(float), person_ff.to_numpy(), 1)[0]
    assert slope > 0.0005


def test_same_seed_same_files_other_seed_different(tmp_path) -> None:
    a = write_demo_files(simulate_cohort(800, seed=5), tmp_path / "a")
    b = write_demo_files(simulate_cohort(800, seed=5), tmp_path / "b")
    c = write_demo_files(simulate_cohort(800, seed=6), tmp_path / "c")
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()
    assert a[1].read_bytes() != c[1].read_bytes()


def test_written_csv_round_trips(tmp_path, cohort: SimulatedCohort) -> None:
    csv_path, parquet_path = write_demo_files(cohort, tmp_path)
    assert csv_path.name.endswith(".csv") and parquet_path.suffix == ".parquet"
    back = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(sim.PHENOTYPE_COLUMNS)
    np.testing.assert_allclose(back["50-2.0"], cohort.phenotypes["50-2.0"])
    assert back["40000-0.0"].isna().sum() == (cohort.phenotypes["40000-0.0"] == "").sum()
    metrics = pd.read_parquet(parquet_path)
    assert len(metrics) == len(cohort.metrics)
    np.testing.assert_allclose(metrics["volume_cm3"].sum(), cohort.metrics["volume_cm3"].sum())
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    ("n", "seed", "error", "match"),
    [
        (0, 0, ValueError, "n must be between 1 and"),
        (-5, 0, ValueError, "got -5"),
        ("100", 0, TypeError, "n must be an int, got str"),
        (100, 1.5, TypeError, "seed must be an int, got float"),
        (True, 0, TypeError, "n must be an int, got bool"),
    ],
)
def test_bad_arguments(n: object, seed: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        simulate_cohort(n, seed)  # type: ignore[arg-type]


def test_write_needs_a_cohort(tmp_path) -> None:
    with pytest.raises(TypeError, match="cohort must be a SimulatedCohort, got DataFrame"):
        write_demo_files(pd.DataFrame(), tmp_path)  # type: ignore[arg-type]


def test_tiny_cohort_still_works() -> None:
    small = simulate_cohort(7, seed=3)
    assert len(small.phenotypes) == 7 and len(small.metrics) == 7 * 54


def test_small_cohort_uses_tuned_defaults_with_study_scale_tmv() -> None:
    """Below the per-sample fitting sizes the tuned fallbacks still give the study's TMV scale."""
    small = simulate_cohort(1200, seed=8)
    tmv = small.metrics[small.metrics["structure"].isin({s.key for s in STRUCTURES if s.is_muscle})]
    tmv = tmv.groupby("eid")["volume_cm3"].sum()
    ph = small.phenotypes.set_index("eid").reindex(tmv.index)
    assert (ph["21003-2.0"] >= 80).sum() < MIN_STRATUM_FOR_FIT * 2  # the old stratum is too small to fit
    for code, sex in ((1, "male"), (0, "female")):
        young = tmv[(ph["31-0.0"] == code) & (ph["21003-2.0"] < 60)]
        assert young.median() == pytest.approx(cal.TMV_MEDIAN_YOUNGEST[sex], rel=0.05)
