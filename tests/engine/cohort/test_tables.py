"""engine.cohort.tables on tiny seeded wide tables with known truth, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps

from engine.cohort.stats import cochran_armitage
from engine.cohort.tables import (
    OUTCOMES,
    age_trends,
    below_cutoff_tests,
    below_cutoff_trend,
    concordance,
    exposure_columns,
    exposure_options,
    exposure_series,
    forest_table,
    sex_stratified,
    table1,
)
from store.metrics import BY_NAME, LOW_ALMI_KG_M2
from tests.cohort_data import OutcomeTruth, synthetic_cohort

TRUE_OR = {"low_muscle_mass": 1.0, "weak_grip": 1.6, "sarcopenia": 1.4, "died": 1.5, "falls": 1.1}
BASE_RISK = {"low_muscle_mass": 0.10, "weak_grip": 0.08, "sarcopenia": 0.05, "died": 0.04, "falls": 0.2}
TMV_DECLINE_CM3_PER_DECADE = -300  # the shared cohort's generating TMV decline: 30 cm³ per year of age


def _wide(n: int, seed: int) -> pd.DataFrame:
    """The shared cohort with the study columns; outcomes depend on the P/A tertile with the ORs above (and on age)."""
    truth = {outcome: OutcomeTruth(BASE_RISK[outcome], odds_ratio) for outcome, odds_ratio in TRUE_OR.items()}
    return synthetic_cohort(n, seed, analysis=True, outcomes=truth, exposure="pa_ratio")


def _manual_contrast(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    x = df[metric]
    c1, c2 = np.percentile(x.dropna(), [33, 67])
    out = df[(x < c1) | (x > c2)].copy()
    out["high"] = (out[metric] > c2).astype(int)
    return out


# ------------------------------------------------------------------------ Table 1


def test_table1_welch_and_chi_square_by_hand() -> None:
    df = _wide(400, seed=1).drop(columns="grip_max_kg")  # the shared cohort has grip; this test needs it absent
    t1 = table1(df).set_index("variable")
    men, women = df[df.sex == 1], df[df.sex == 0]
    assert t1.loc["n", "men"] == f"{len(men):,}"
    a, b = men.bmi, women.bmi
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert t1.loc["bmi", "p_value"] == pytest.approx(2 * sps.t.sf(abs(t), dof), rel=1e-8)
    assert t1.loc["bmi", "men"] == f"{a.mean():.4g} ± {a.std():.3g}"
    k = [[(men.falls == 1).sum(), (men.falls == 0).sum()], [(women.falls == 1).sum(), (women.falls == 0).sum()]]
    (ka, kb), (kc, kd) = k
    big_n = ka + kb + kc + kd
    chi2 = big_n * (ka * kd - kb * kc) ** 2 / ((ka + kb) * (kc + kd) * (ka + kc) * (kb + kd))
    assert t1.loc["falls", "p_value"] == pytest.approx(sps.chi2.sf(chi2, 1), rel=1e-8)
    assert t1.loc["falls", "women"] == f"{kc:,} ({100 * kc / (kc + kd):.1f} %)"
    assert "grip_max_kg" not in t1.index  # absent columns are skipped


# ------------------------------------------------------------------------ age trends


def test_age_trends_recover_exact_and_noisy_slopes() -> None:
    # On noiseless data scipy's linregress reports a CI width of either 0 or about 1e-9 (1 - r² is quantised at
    # machine epsilon), depending on the ages' round-off; the seed is one whose ages give 0, as seed 2 did before
    # the shared cohort (its ages are rounded to 0.1 year and give 1.01e-9).
    df = _wide(1200, seed=4)
    df["almi"] = np.where(df.sex == 1, 9.0 - 0.03 * df.age, 7.0 - 0.01 * df.age)  # no noise: exact slope
    res = age_trends(df).set_index(["metric", "sex"])
    assert res.loc[("almi", 1), "estimate"] == pytest.approx(-0.3, rel=1e-9)
    assert res.loc[("almi", 0), "estimate"] == pytest.approx(-0.1, rel=1e-9)
    assert res.loc[("almi", 1), "ci_high"] - res.loc[("almi", 1), "ci_low"] == pytest.approx(0, abs=1e-9)
    women = df[df.sex == 0]
    ols = smf.ols("tmv_cm3 ~ age", data=women).fit()
    row = res.loc[("tmv_cm3", 0)]
    assert row["estimate"] == pytest.approx(10 * ols.params["age"], rel=1e-9)
    assert row["ci_low"] == pytest.approx(10 * (ols.params["age"] - 1.96 * ols.bse["age"]), rel=1e-9)
    assert row["n"] == len(women) and row["sex_label"] == "Women"
    assert row["ci_low"] <= TMV_DECLINE_CM3_PER_DECADE <= row["ci_high"]


def test_below_cutoff_trend_counts_and_test() -> None:
    rows = []
    # men: 1, 2, 3, 4 of 10 below 7.0 in 50-59 ... 80+; women: ALMI 6.0 is above their 5.5 cut-off
    for i, stratum in enumerate(["50-59", "60-69", "70-79", "80+"]):
        rows += [{"sex": 1, "age_stratum": stratum, "almi": 6.0 if j <= i else 8.0} for j in range(10)]
        rows += [{"sex": 0, "age_stratum": stratum, "almi": 6.0 if j < 2 else 5.0} for j in range(8)]
    rows += [{"sex": 1, "age_stratum": "40-49", "almi": 6.0} for _ in range(5)]  # shown, not tested
    df = pd.DataFrame(rows)
    res = below_cutoff_trend(df)
    men = res[res.sex == 1].set_index("age_stratum")
    assert list(men.index) == ["40-49", "50-59", "60-69", "70-79", "80+"]
    assert list(men.n_below) == [5, 1, 2, 3, 4] and list(men.n) == [5, 10, 10, 10, 10]
    assert list(men.in_trend) == [False, True, True, True, True]
    women = res[res.sex == 0]
    assert list(women.n_below) == [6, 6, 6, 6]  # below 5.5, not below the men's 7.0
    assert list(women.share_pct) == pytest.approx([75.0] * 4)
    assert LOW_ALMI_KG_M2[0] == 5.5
    ref = cochran_armitage([1, 2, 3, 4], [10, 10, 10, 10], [1, 2, 3, 4])
    assert men.trend_z.iloc[0] == pytest.approx(ref.z) and ref.z > 0
    assert men.trend_p.iloc[-1] == pytest.approx(ref.p_value)
    tests = below_cutoff_tests(df).set_index("group")
    assert tests.loc["Men", "n"] == 40 and tests.loc["Men", "strata"] == "50-59, 60-69, 70-79, 80+"
    assert tests.loc["Women", "z"] == pytest.approx(0.0, abs=1e-12)
    pooled = cochran_armitage([7, 8, 9, 10], [18, 18, 18, 18])
    assert tests.loc["All", "p_value"] == pytest.approx(pooled.p_value)


def test_concordance_by_sex_matches_numpy() -> None:
    df = _wide(500, seed=7)
    df["legs_lean_kg"] = df.tmv_cm3 / 600 + np.random.default_rng(0).normal(0, 1.5, len(df))
    df.loc[[0, 1], "legs_lean_kg"] = np.nan
    res = concordance(df, "legs_lean_kg", "tmv_cm3").set_index("group")
    for group, part in (("All", df), ("Men", df[df.sex == 1]), ("Women", df[df.sex == 0])):
        part = part.dropna(subset=["legs_lean_kg"])
        assert res.loc[group, "r"] == pytest.approx(np.corrcoef(part.legs_lean_kg, part.tmv_cm3)[0, 1], rel=1e-10)
        assert res.loc[group, "n"] == len(part)
        assert res.loc[group, "ci_low"] < res.loc[group, "r"] < res.loc[group, "ci_high"]
    tiny = concordance(df.iloc[:3], "legs_lean_kg", "tmv_cm3").set_index("group")
    assert np.isnan(tiny.loc["All", "r"]) and "at least 4" in tiny.loc["All", "error"]


# ------------------------------------------------------------------------ exposures


def test_exposure_options_and_series() -> None:
    opts = exposure_options()
    assert {"pa_ratio", "lr_asym_dexa_pct", "lr_asym_mri_pct", "tvi", "muscle_strength"} <= set(opts)
    assert len([k for k in opts if k.startswith("share:")]) == 25  # the muscles, bones excluded
    df = pd.DataFrame({"tmv_cm3": [1000.0, 2000.0, 0.0], "vol_gracilis_cm3": [30.0, 50.0, 1.0]})
    share = exposure_series(df, "share:gracilis")
    assert share.iloc[0] == pytest.approx(3.0) and share.iloc[1] == pytest.approx(2.5)
    assert np.isnan(share.iloc[2])  # TMV of zero is unknown, not infinite
    with pytest.raises(ValueError, match="unknown exposure metric 'share:femur'"):
        exposure_series(df, "share:femur")
    assert exposure_columns("share:gracilis") == ["vol_gracilis_cm3", "tmv_cm3"]
    assert exposure_columns("tvi") == ["tvi"]
    pd.testing.assert_series_equal(exposure_series(df[exposure_columns("share:gracilis")], "share:gracilis"), share)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['pa_ratio'\]"):
        exposure_series(df, "pa_ratio")


# ------------------------------------------------------------------------ forest tables


def test_forest_table_matches_statsmodels_on_manual_tertiles() -> None:
    df = _wide(5000, seed=3)
    res = forest_table(df, "pa_ratio", covariates=["age", "sex", "bmi", "activity_group"], ci="wald")
    c1, c2 = np.percentile(df.pa_ratio, [33, 67])
    assert res.cut_low.iloc[0] == pytest.approx(c1) and res.cut_high.iloc[0] == pytest.approx(c2)
    assert list(res.outcome) == list(OUTCOMES)
    contrast = _manual_contrast(df, "pa_ratio")
    for _, row in res.iterrows():
        fit = smf.logit(f"{row.outcome} ~ high + age + sex + bmi + C(activity_group)", data=contrast).fit(disp=0)
        assert row.odds_ratio == pytest.approx(np.exp(fit.params["high"]), rel=1e-6)
        assert row.ci_low == pytest.approx(np.exp(fit.conf_int().loc["high", 0]), rel=1e-6)
        assert row.p_value == pytest.approx(fit.pvalues["high"], rel=1e-4)
        assert row.n == len(contrast)
        assert row.events_high == contrast.loc[contrast.high == 1, row.outcome].sum()
        assert row.error == "" and row.adjusted_for == "age, sex, bmi, activity_group"


def test_forest_table_profile_cis_cover_generating_ors() -> None:
    df = _wide(20000, seed=4)
    res = forest_table(df, "pa_ratio").set_index("outcome")
    for outcome, odds_ratio in TRUE_OR.items():
        assert res.loc[outcome, "ci_low"] <= odds_ratio <= res.loc[outcome, "ci_high"], outcome
    null = forest_table(df, "lr_asym_dexa_pct")  # independent of every outcome
    assert ((null.ci_low <= 1.0) & (null.ci_high >= 1.0)).sum() >= 4


def test_forest_table_drops_constant_covariates_and_reports_failures() -> None:
    df = _wide(600, seed=5)
    men = df[df.sex == 1].copy()
    men.loc[:, "sarcopenia"] = 0.0  # no events: the odds ratio is not finite
    res = forest_table(men, "pa_ratio", outcomes=["weak_grip", "sarcopenia"], ci="wald").set_index("outcome")
    assert res.loc["weak_grip", "adjusted_for"] == "age, bmi, activity_group"  # sex is constant
    assert np.isfinite(res.loc["weak_grip", "odds_ratio"])
    assert np.isnan(res.loc["sarcopenia", "odds_ratio"])
    assert "separation" in res.loc["sarcopenia", "error"]
    with pytest.raises(ValueError, match=r"unknown outcome\(s\) \['grip'\]"):
        forest_table(df, "pa_ratio", outcomes=["grip"])
    with pytest.raises(ValueError, match=r"unknown covariate\(s\) \['smoking'\]"):
        forest_table(df, "pa_ratio", covariates=["smoking"])


def test_sex_stratified_and_interaction_against_statsmodels() -> None:
    df = _wide(6000, seed=6)
    res = sex_stratified(df, "pa_ratio", outcomes=["weak_grip", "died"], covariates=["age", "sex", "bmi"],
                         ci="wald")
    assert len(res) == 4 and set(res.sex_label) == {"Men", "Women"}
    contrast = _manual_contrast(df, "pa_ratio")  # whole-sample cut points
    for _, row in res.iterrows():
        part = contrast[contrast.sex == row.sex]
        fit = smf.logit(f"{row.outcome} ~ high + age + bmi", data=part).fit(disp=0)
        assert row.odds_ratio == pytest.approx(np.exp(fit.params["high"]), rel=1e-6)
        assert row.adjusted_for == "age, bmi"
        pooled = smf.logit(f"{row.outcome} ~ high * sex + age + bmi", data=contrast).fit(disp=0)
        assert row.interaction_p == pytest.approx(pooled.pvalues["high:sex"], rel=1e-4)


def test_sex_stratified_in_a_one_sex_cohort_explains_the_gaps() -> None:
    df = _wide(800, seed=8)
    res = sex_stratified(df[df.sex == 0], "pa_ratio", outcomes=["falls"], ci="wald").set_index("sex_label")
    assert np.isfinite(res.loc["Women", "odds_ratio"]) and res.loc["Women", "error"] == ""
    assert np.isnan(res.loc["Men", "odds_ratio"]) and res.loc["Men", "error"] == "no men in the analysed cohort"
    assert res.loc["Women", "interaction_error"] == "the sex x exposure interaction needs both sexes in the cohort"


# ------------------------------------------------------------------------ labels


def test_tables_spell_each_metric_as_the_store_does() -> None:
    df = _wide(300, seed=5)
    rows = table1(df).set_index("variable")["label"]
    assert rows["lr_asym_dexa_pct"] == "L/R asymmetry, DEXA legs (%)" == exposure_options()["lr_asym_dexa_pct"]
    assert rows["age"] == "Age (years)" and rows["pa_ratio"] == "P/A ratio"
    for column in rows.index.drop("n"):
        assert rows[column] == BY_NAME[column].title, column
    forest = forest_table(df, "pa_ratio", covariates=["age"], ci="wald")
    assert list(forest.outcome_label) == ["Low muscle mass", "Weak grip", "Sarcopenia", "All-cause mortality",
                                          "Falls (last year)"]
    assert list(forest.outcome_label) == [BY_NAME[o].label for o in forest.outcome]
    assert exposure_options()["share:gracilis"] == "Gracilis share of TMV (%)"
