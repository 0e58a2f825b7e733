"""The simulated cohort's files: shapes, UKB codes, structure geometry, determinism, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from engine.demo.cohort import draw as sim
from engine.demo.cohort import targets as cal
from engine.demo.cohort.draw import SimulatedCohort, simulate_cohort, write_demo_files
from engine.demo.cohort.solve import (
    MIN_STRATUM_FOR_FIT,
    HighVsLow,
    expit,
    logistic_fit,
    solve_effect,
    spread_within,
)
from engine.demo.cohort.structures import _MUSCLE, spread_mri_asymmetry
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
    assert "50-2.0" in ph.columns and "23271-2.0" in ph.columns
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
    legs = ph["23267-2.0"].dropna()
    assert 4_000 < legs.median() < 15_000
    # BMI column agrees with weight / height^2.
    bmi = ph["21002-2.0"] / (ph["50-2.0"] / 100) ** 2
    np.testing.assert_allclose(ph["21001-2.0"], bmi, atol=1e-3)


def test_missingness_is_small_and_whole(cohort: SimulatedCohort) -> None:
    ph = cohort.phenotypes
    dexa = ph[["23250-2.0", "23254-2.0", "23267-2.0", "23271-2.0"]].isna()
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


# --- the per-sample OR solves and the even spreading of L/R asymmetry -------------------------------


def test_logistic_fit_matches_statsmodels() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    x = np.column_stack([np.ones(n), rng.random(n) < 0.5, rng.normal(0, 8, n), rng.random(n) < 0.4])
    y = (rng.random(n) < expit(-2.0 + 0.5 * x[:, 1] + 0.03 * x[:, 2] - 0.4 * x[:, 3])).astype(float)
    expected = sm.Logit(y, x).fit(disp=0).params
    np.testing.assert_allclose(logistic_fit(y, x), expected, atol=1e-7)


def test_high_vs_low_averages_the_adjustment_sets_and_drops_missing_covariates() -> None:
    rng = np.random.default_rng(6)
    n = 5000
    high = (rng.random(n) < 0.5).astype(float)
    age = rng.normal(65, 8, n)
    bmi = np.where(rng.random(n) < 0.1, np.nan, rng.normal(27, 4, n))
    y = rng.random(n) < expit(-1.5 + 0.4 * high + 0.05 * (age - 65))
    rows = rng.random(n) < 0.9
    model = HighVsLow(rows, high, [[age], [age, bmi]])
    one, two = model.log_ors(y)
    # independent fits on the same rows: statsmodels with an uncentred design
    fit_one = sm.Logit(y[rows].astype(float), sm.add_constant(np.column_stack([high, age])[rows])).fit(disp=0)
    used = rows & np.isfinite(bmi)
    fit_two = sm.Logit(y[used].astype(float), sm.add_constant(np.column_stack([high, age, bmi])[used])).fit(
        disp=0
    )
    assert one == pytest.approx(fit_one.params[1], abs=1e-7)
    assert two == pytest.approx(fit_two.params[1], abs=1e-7)
    assert model.log_or(y) == pytest.approx((one + two) / 2)


def test_solve_effect_hits_the_target_or_and_keeps_the_default_out_of_reach() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    high = (rng.random(n) < 0.5).astype(float)
    age = rng.normal(65, 8, n)
    u = rng.random(n)
    base = -2.0 + 0.05 * (age - 65)
    model = HighVsLow(np.ones(n, dtype=bool), high, [[age]])
    effect = solve_effect(lambda e: model.log_or(u < expit(base + e * high)), 1.6, default=0.0)
    fitted = sm.Logit(
        (u < expit(base + effect * high)).astype(float), sm.add_constant(np.column_stack([high, age]))
    )
    # one outcome flip moves the log OR by about 1 / (events per group) ~ 0.0005 here
    assert fitted.fit(disp=0).params[1] == pytest.approx(np.log(1.6), abs=0.002)
    # an OR the bracket cannot reach: the default comes back
    assert solve_effect(lambda e: 0.1 * e, 1e9, default=0.25) == 0.25


def test_spread_within_gives_each_cell_every_part_of_the_unit_interval() -> None:
    rng = np.random.default_rng(8)
    n = 9000
    cells = rng.integers(0, 7, n)
    key = rng.random(n)
    u = spread_within(cells, key, rng.random(n))
    for c in range(7):
        in_cell = u[cells == c]
        m = in_cell.size
        # exactly one value in each [k/m, (k+1)/m): floor(u m) is a permutation of 0..m-1
        assert np.array_equal(np.sort(np.floor(in_cell * m)), np.arange(m))
        # the order inside the cell follows the key
        order = np.argsort(key[cells == c])
        assert np.all(np.diff(in_cell[order]) > 0)


def test_spread_mri_asymmetry_sets_the_tmv_asymmetry_and_keeps_muscle_volumes() -> None:
    rng = np.random.default_rng(9)
    n, muscles = 3000, int(_MUSCLE.sum())
    volume = rng.uniform(50, 900, (n, len(STRUCTURES)))
    left = 0.5 + sim.prm.SIDE_SPLIT_SD * rng.standard_normal((n, len(STRUCTURES)))
    cells = rng.integers(0, 5, n)
    out = spread_mri_asymmetry(left, volume, cells, rng.random(n))

    def signed_asym(share: np.ndarray) -> np.ndarray:
        v = volume[:, _MUSCLE]
        return (v * (2 * share[:, _MUSCLE] - 1)).sum(axis=1) / v.sum(axis=1)

    before, after = signed_asym(left), signed_asym(out)
    assert np.all(np.sign(after) == np.sign(before))  # each participant keeps the heavier side
    sd = (
        2
        * sim.prm.SIDE_SPLIT_SD
        * np.sqrt((volume[:, _MUSCLE] ** 2).sum(axis=1))
        / volume[:, _MUSCLE].sum(axis=1)
    )
    z = np.abs(after) / sd
    factor = np.abs(after / before)
    exact = (factor > 0.1 + 1e-9) & (factor < 10.0 - 1e-9)  # the factor bounds bind only near zero size
    assert exact.mean() > 0.99
    # within a cell the standardised sizes sit one per 1/m slot of the half-normal's quantiles
    for c in range(5):
        in_cell = cells == c
        slots = np.floor((2 * stats.norm.cdf(z[in_cell]) - 1) * in_cell.sum())
        assert len(np.unique(slots[exact[in_cell]])) == exact[in_cell].sum()
        assert np.all((slots >= 0) & (slots < in_cell.sum()))
    assert np.array_equal(out[:, ~_MUSCLE], left[:, ~_MUSCLE])  # bones untouched
    assert muscles == 25


def test_died_or_is_solved_on_the_sample_under_both_adjustments(cohort: SimulatedCohort) -> None:
    """From the raw frames of a 6,000-participant cohort (large enough to solve per sample)."""
    ph = cohort.phenotypes.set_index("eid")
    per = _per_structure(cohort.metrics)
    anterior = [s.key for s in STRUCTURES if s.label in labels_in("anterior")]
    posterior = [s.key for s in STRUCTURES if s.label in labels_in("posterior")]
    pa = (per[posterior].sum(axis=1) / per[anterior].sum(axis=1)).reindex(ph.index)
    c1, c2 = np.percentile(pa, (33, 67))
    data = pd.DataFrame(
        {
            "died": (ph["40000-0.0"] != "").astype(float),
            "high": (pa > c2).astype(float),
            "age": ph["21003-2.0"].astype(float),
            "sex": ph["31-0.0"].astype(float),
            "bmi": ph["21001-2.0"].astype(float),
            "activity": ph["22032-0.0"].astype("Float64").astype(float),
        }
    )[(pa < c1) | (pa > c2)]
    age_sex = sm.Logit(data["died"], sm.add_constant(data[["high", "age", "sex"]])).fit(disp=0)
    full = data.dropna()
    dummies = pd.get_dummies(full["activity"], prefix="act", drop_first=True, dtype=float)
    x = sm.add_constant(pd.concat([full[["high", "age", "sex", "bmi"]], dummies], axis=1))
    default = sm.Logit(full["died"], x).fit(disp=0)
    target = np.log(cal.PA_HIGH_VS_LOW_OR["died"])
    # the solve puts the mean of the two on the target, to about one outcome flip (~1 / 95 events)
    assert (age_sex.params["high"] + default.params["high"]) / 2 == pytest.approx(target, abs=0.012)
    # each one within a fraction of its SE (they differ only by chance imbalance and dropped rows)
    for fit in (age_sex, default):
        assert abs(fit.params["high"] - target) < 0.5 * fit.bse["high"]


def test_lr_asymmetries_split_every_outcome_evenly_between_their_tertiles(cohort: SimulatedCohort) -> None:
    """Spread within outcome cells, high and low asymmetry tertiles hold (almost) equal event counts.

    With independent draws, (events_high - events_low)^2 / (events_high + events_low) is about
    chi-square(1) per outcome, so the sum over 4 outcomes x 2 asymmetries is chi-square(8): below 2.0
    with probability 0.02. Spread evenly it sits far below that.
    """
    ph = cohort.phenotypes.set_index("eid")
    male = (ph["31-0.0"] == 1).to_numpy()
    grip = ph[["46-2.0", "47-2.0"]].astype(float).max(axis=1).to_numpy()
    dexa = ph[["23250-2.0", "23254-2.0", "23267-2.0", "23271-2.0"]].astype(float).to_numpy()
    almi = dexa.sum(axis=1) / 1000 / (ph["50-2.0"].to_numpy() / 100) ** 2
    outcomes = {
        "died": (ph["40000-0.0"] != "").to_numpy(),
        "falls": (ph["2296-2.0"] >= 2).to_numpy(),
        "weak_grip": grip < np.where(male, 27.0, 16.0),
        "low_muscle_mass": almi < np.where(male, 7.0, 5.5),
    }
    sides = cohort.metrics[cohort.metrics["structure"].isin({s.key for s in STRUCTURES if s.is_muscle})]
    by_side = sides.groupby(["eid", "side"], observed=True)["volume_cm3"].sum().unstack().reindex(ph.index)
    asymmetries = {
        "dexa": np.abs(dexa[:, 2] - dexa[:, 3]) / dexa[:, 2:].mean(axis=1),
        "mri": (np.abs(by_side["left"] - by_side["right"]) / by_side.mean(axis=1)).to_numpy(),
    }
    statistic = 0.0
    for asym in asymmetries.values():
        known = np.isfinite(asym)
        a1, a2 = np.percentile(asym[known], (33, 67))
        for outcome in outcomes.values():
            high, low = outcome[known & (asym > a2)].sum(), outcome[known & (asym < a1)].sum()
            statistic += (high - low) ** 2 / (high + low)
    assert statistic < 2.0
