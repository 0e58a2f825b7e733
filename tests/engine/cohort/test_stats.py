"""engine.cohort.stats against closed forms, statsmodels/scipy, an independent naive profile, and coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.contingency_tables import Table

from engine.cohort.stats import (
    bland_altman,
    cochran_armitage,
    decline_per_decade,
    interaction_p,
    least_squares_line,
    logistic_or,
    pearson,
    tertiles,
)
from engine.errors import StatsError

CHI2_95 = sps.chi2.ppf(0.95, 1)


def _cohort(n: int, seed: int, log_or: float = np.log(1.5), base: float = -2.0) -> pd.DataFrame:
    """A small cohort with a known exposure effect and numeric + categorical covariates."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.uniform(45, 82, n),
        "sex": rng.integers(0, 2, n),
        "bmi": rng.normal(27, 4, n),
        "act": rng.choice(["high", "low", "moderate"], n),
        "x": rng.integers(0, 2, n),
    })
    eta = (base + log_or * df.x + 0.04 * (df.age - 65) + 0.3 * df.sex + 0.03 * (df.bmi - 27)
           + 0.4 * (df.act == "low"))
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


def _naive_profile(df: pd.DataFrame, formula_rhs: list[str], confidence: float = 0.95) -> tuple[float, float]:
    """Independent profile interval: repeated statsmodels GLM fits with x as an offset, brentq on D(t)."""
    design = pd.get_dummies(df[formula_rhs], columns=[c for c in formula_rhs if not pd.api.types.is_numeric_dtype(df[c])],
                            drop_first=True, dtype=float)
    xo = sm.add_constant(design)
    full = sm.GLM(df.y, pd.concat([df[["x"]].astype(float), xo], axis=1),
                  family=sm.families.Binomial()).fit(tol=1e-12)
    b, se, dev = full.params["x"], full.bse["x"], full.deviance
    crit = sps.chi2.ppf(confidence, 1)

    def excess(t: float) -> float:
        fit = sm.GLM(df.y, xo, family=sm.families.Binomial(), offset=t * df.x.astype(float)).fit(tol=1e-12)
        return fit.deviance - dev - crit

    lo = optimize.brentq(excess, b - 6 * se, b, xtol=1e-10)
    hi = optimize.brentq(excess, b, b + 6 * se, xtol=1e-10)
    return float(np.exp(lo)), float(np.exp(hi))


# ------------------------------------------------------------------------ pearson


def test_pearson_matches_closed_form_and_scipy_interval() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = 0.5 * x + rng.normal(size=60)
    res = pearson(x, y)
    xc, yc = x - x.mean(), y - y.mean()
    r = (xc * yc).sum() / np.sqrt((xc**2).sum() * (yc**2).sum())
    z, half = 0.5 * np.log((1 + r) / (1 - r)), 1.959963984540054 / np.sqrt(60 - 3)
    assert res.r == pytest.approx(r, rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((np.tanh(z - half), np.tanh(z + half)), rel=1e-10)
    scipy_ci = sps.pearsonr(x, y).confidence_interval(0.95)
    assert (res.ci_low, res.ci_high) == pytest.approx((scipy_ci.low, scipy_ci.high), rel=1e-10)
    t = r * np.sqrt(58 / (1 - r**2))
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), 58), rel=1e-8)
    assert res.n == 60


def test_pearson_drops_incomplete_pairs_and_narrows_with_confidence() -> None:
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 3.0])
    y = np.array([2.0, 1.0, 3.0, np.nan, 6.0, 5.0, 8.0, 3.5])
    res = pearson(pd.Series(x), y)
    keep = ~np.isnan(x) & ~np.isnan(y)
    assert res.n == 6
    assert res.r == pytest.approx(np.corrcoef(x[keep], y[keep])[0, 1], rel=1e-12)
    narrow = pearson(x, y, confidence=0.5)
    assert res.ci_low < narrow.ci_low < narrow.r < narrow.ci_high < res.ci_high


def test_pearson_interval_covers_true_rho() -> None:
    rng = np.random.default_rng(1)
    rho, hits, reps = 0.6, 0, 400
    cov = [[1, rho], [rho, 1]]
    for _ in range(reps):
        xy = rng.multivariate_normal([0, 0], cov, size=40)
        res = pearson(xy[:, 0], xy[:, 1])
        hits += res.ci_low <= rho <= res.ci_high
    assert 0.92 <= hits / reps <= 0.98


def test_pearson_rejects_too_few_pairs_and_constants() -> None:
    with pytest.raises(StatsError, match="at least 4 complete pairs for a Fisher-z interval, got 3"):
        pearson([1, 2, 3, np.nan], [1, 2, 4, 5])
    with pytest.raises(StatsError, match="constant"):
        pearson([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        pearson([1, 2, 3, 4], [1, 2, 3, 5], confidence=95)


# ------------------------------------------------------------------------ tertiles


def test_tertiles_cut_points_and_labels() -> None:
    x = np.arange(101, dtype=float)  # linear interpolation puts the 33rd/67th percentiles at 33 and 67
    x_with_gap = np.append(x, np.nan)
    res = tertiles(x_with_gap)
    assert res.cuts == pytest.approx((33.0, 67.0))
    labels = list(res.labels)
    assert labels.count("low") == 33 and labels.count("high") == 33 and labels.count("middle") == 35
    assert labels[32] == "low" and labels[33] == "middle" and labels[67] == "middle" and labels[68] == "high"
    assert labels[-1] is None
    contrast = res.high_vs_low()
    assert contrast[0] == 0.0 and contrast[100] == 1.0
    assert np.isnan(contrast[50]) and np.isnan(contrast[-1])


def test_tertiles_need_values() -> None:
    with pytest.raises(StatsError, match="at least 3 non-missing values, got 2"):
        tertiles([1.0, np.nan, 2.0])


# ------------------------------------------------------------------------ Cochran-Armitage


def test_cochran_armitage_equals_prop_trend_test_weighted_regression() -> None:
    # R's prop.trend.test: chisq = regression SS of freq ~ score, weights n / (p (1 - p)).
    events = np.array([83.0, 90, 129, 70])
    totals = np.array([86.0, 93, 136, 82])
    scores = np.array([1.0, 2, 3, 4])
    res = cochran_armitage(events, totals)
    p = events.sum() / totals.sum()
    wls = sm.WLS(events / totals, sm.add_constant(scores), weights=totals / p / (1 - p)).fit()
    chisq = wls.ess
    assert res.z**2 == pytest.approx(chisq, rel=1e-10)
    assert res.p_value == pytest.approx(sps.chi2.sf(chisq, 1), rel=1e-8)
    assert res.z < 0  # the share falls across these groups
    # the example in R's documentation prints X-squared = 8.2249, p-value = 0.004132
    assert res.z**2 == pytest.approx(8.2249, abs=1e-4)
    assert res.p_value == pytest.approx(0.004132, abs=1e-6)


def test_cochran_armitage_is_n_over_n_minus_1_times_statsmodels() -> None:
    events = np.array([5.0, 12, 20, 31])
    totals = np.array([100.0, 110, 95, 90])
    scores = np.array([0.0, 1, 2, 4])
    res = cochran_armitage(events, totals, scores)
    table = Table(np.column_stack([totals - events, events]))
    lin = table.test_ordinal_association(row_scores=scores, col_scores=np.array([0.0, 1.0]))
    big_n = totals.sum()
    assert res.z == pytest.approx(lin.zscore * np.sqrt(big_n / (big_n - 1)), rel=1e-10)
    assert res.z > 0


def test_cochran_armitage_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="0 <= events <= totals"):
        cochran_armitage([5, 20], [10, 10])
    with pytest.raises(StatsError, match="no group"):
        cochran_armitage([0, 0, 0], [10, 10, 10])
    with pytest.raises(ValueError, match="one value per group"):
        cochran_armitage([1, 2, 3], [10, 10, 10], scores=[1, 2])


# ------------------------------------------------------------------------ decline per decade


def test_decline_per_decade_matches_ols() -> None:
    rng = np.random.default_rng(2)
    age = rng.uniform(45, 80, 200)
    y = 8.0 - 0.03 * age + rng.normal(0, 0.4, 200)
    y[3] = np.nan
    res = decline_per_decade(age, y)
    keep = ~np.isnan(y)
    ols = sm.OLS(y[keep], sm.add_constant(age[keep])).fit()
    b, se = ols.params[1], ols.bse[1]
    assert res.estimate == pytest.approx(10 * b, rel=1e-10)
    assert (res.ci_low, res.ci_high) == pytest.approx((10 * (b - 1.96 * se), 10 * (b + 1.96 * se)), rel=1e-10)


def test_decline_per_decade_covers_true_slope() -> None:
    rng = np.random.default_rng(3)
    hits, reps = 0, 400
    for _ in range(reps):
        age = rng.uniform(45, 80, 60)
        y = 30.0 - 0.05 * age + rng.normal(0, 1.0, 60)
        res = decline_per_decade(age, y)
        hits += res.ci_low <= -0.5 <= res.ci_high
    assert 0.92 <= hits / reps <= 0.98


def test_decline_per_decade_rejects_constant_age() -> None:
    with pytest.raises(StatsError, match="every age is the same"):
        decline_per_decade([60, 60, 60, 60], [1, 2, 3, 4])


# ------------------------------------------------------------------------ logistic regression


def test_logistic_wald_matches_statsmodels_with_categorical_reference() -> None:
    df = _cohort(3000, seed=4)
    res = logistic_or(df, "y", "x", ["age", "sex", "bmi", "act"], ci="wald")
    fit = smf.logit("y ~ x + age + sex + bmi + C(act)", data=df).fit(disp=0)  # reference "high"
    assert res.odds_ratio == pytest.approx(np.exp(fit.params["x"]), rel=1e-7)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.exp(fit.conf_int().loc["x"])), rel=1e-6)
    assert res.p_value == pytest.approx(fit.pvalues["x"], rel=1e-5)
    assert res.n == 3000
    assert res.events_exposed == int(df.y[df.x == 1].sum())
    assert res.events_reference == int(df.y[df.x == 0].sum())


def test_logistic_profile_matches_naive_statsmodels_profile() -> None:
    df = _cohort(1500, seed=5)
    res = logistic_or(df, "y", "x", ["age", "sex", "bmi", "act"])
    lo, hi = _naive_profile(df, ["age", "sex", "bmi", "act"])
    assert res.ci_low == pytest.approx(lo, rel=5e-4)  # 3 significant digits (in fact ~1e-8)
    assert res.ci_high == pytest.approx(hi, rel=5e-4)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=1e-6)
    wald = logistic_or(df, "y", "x", ["age", "sex", "bmi", "act"], ci="wald")
    assert res.odds_ratio == wald.odds_ratio and res.p_value == wald.p_value
    # profile and Wald differ (log-likelihood is not quadratic) but only slightly at this size
    assert res.ci_low != pytest.approx(wald.ci_low, rel=1e-6)
    assert res.ci_low == pytest.approx(wald.ci_low, rel=0.05)


def test_logistic_profile_small_sample_is_asymmetric_like_naive() -> None:
    df = _cohort(120, seed=6, log_or=np.log(3.0), base=-1.5)
    res = logistic_or(df, "y", "x", ["age"], ci="profile", confidence=0.9)
    lo, hi = _naive_profile(df, ["age"], confidence=0.9)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=1e-6)
    log_or = np.log(res.odds_ratio)
    assert np.log(res.ci_high) - log_or != pytest.approx(log_or - np.log(res.ci_low), rel=1e-3)


def test_logistic_drops_rows_with_missing_values() -> None:
    df = _cohort(800, seed=7)
    df.loc[[1, 5, 9], "bmi"] = np.nan
    df.loc[[2, 5], "act"] = None
    res = logistic_or(df, "y", "x", ["bmi", "act"], ci="wald")
    complete = df.dropna(subset=["bmi", "act"])
    ref = logistic_or(complete.reset_index(drop=True), "y", "x", ["bmi", "act"], ci="wald")
    assert res.n == len(complete) == 800 - 4
    assert res.odds_ratio == pytest.approx(ref.odds_ratio, rel=1e-12)


def test_logistic_profile_covers_generating_odds_ratio() -> None:
    rng = np.random.default_rng(8)
    hits, reps, true_or = 0, 150, 2.0
    for _ in range(reps):
        df = _cohort(300, seed=int(rng.integers(1 << 30)), log_or=np.log(true_or), base=-1.0)
        res = logistic_or(df, "y", "x", ["age", "sex"])
        hits += res.ci_low <= true_or <= res.ci_high
    assert 0.89 <= hits / reps <= 0.99


def test_logistic_detects_separation_and_bad_designs() -> None:
    df = _cohort(200, seed=9)
    sep = df.copy()
    sep["y"] = (sep.age > 60).astype(int)  # age predicts the outcome perfectly
    with pytest.raises(StatsError, match="separation"):
        logistic_or(sep, "y", "x", ["age"])
    zero = df.copy()
    zero.loc[zero.x == 1, "y"] = 0
    with pytest.raises(StatsError, match=r"separation: 0 of \d+ exposed rows"):
        logistic_or(zero, "y", "x", ["age"])
    const = df.assign(k=1.0)
    with pytest.raises(StatsError, match="singular"):
        logistic_or(const, "y", "x", ["k"])
    with pytest.raises(ValueError, match="exposure 'age' must be coded 0/1"):
        logistic_or(df, "y", "age")
    with pytest.raises(ValueError, match="ci must be 'profile' or 'wald', got 'exact'"):
        logistic_or(df, "y", "x", ci="exact")
    with pytest.raises(ValueError, match=r"columns not in data: \['nope'\]"):
        logistic_or(df, "y", "x", ["nope"])
    with pytest.raises(TypeError, match="not a single string"):
        logistic_or(df, "y", "x", "age")


def _outlier_cohort(n: int, seed: int) -> pd.DataFrame:
    """A standardized covariate z with a strong effect and one participant at z = 25, who has the outcome.

    Not separated: other participants with the outcome have low z, so no direction predicts every row.
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.integers(0, 2, n), "z": rng.normal(0, 1, n)})
    df.loc[0, "z"] = 25.0
    eta = -0.5 + 0.7 * df.x + 1.5 * df.z
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    df.loc[0, "y"] = 1
    return df


def test_logistic_one_extreme_linear_predictor_is_not_separation() -> None:
    df = _outlier_cohort(300, seed=11)
    fit = smf.logit("y ~ x + z", data=df).fit(disp=0)
    # The participant at z = 25 really has a fitted probability of 1 to machine precision ...
    assert np.abs(fit.fittedvalues).max() > 30
    assert 0 < df.y[df.z < 0].sum() < (df.z < 0).sum()  # ... but the outcome is mixed at low z
    res = logistic_or(df, "y", "x", ["z"])
    assert res.odds_ratio == pytest.approx(np.exp(fit.params["x"]), rel=1e-8)
    assert res.p_value == pytest.approx(fit.pvalues["x"], rel=1e-5)
    # Every constrained refit of the profile has that fitted probability of 1 as well.
    assert (res.ci_low, res.ci_high) == pytest.approx(_naive_profile(df, ["z"]), rel=1e-6)
    sex = np.random.default_rng(12).integers(0, 2, len(df))
    inter = interaction_p(df.assign(sex=sex), "y", "x", "sex", ["z"])
    ref = smf.logit("y ~ x * sex + z", data=df.assign(sex=sex)).fit(disp=0)
    assert inter.estimate == pytest.approx(ref.params["x:sex"], rel=1e-6)


def test_logistic_single_bmi_of_70_matches_statsmodels() -> None:
    rng = np.random.default_rng(13)
    n = 300
    df = pd.DataFrame({"x": rng.integers(0, 2, n), "bmi": rng.uniform(20, 35, n)})
    df.loc[0, "bmi"] = 70.0
    eta = -3.0 + 0.6 * df.x + 0.1 * (df.bmi - 20)
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    res = logistic_or(df, "y", "x", ["bmi"])
    fit = smf.logit("y ~ x + bmi", data=df).fit(disp=0)
    assert res.odds_ratio == pytest.approx(np.exp(fit.params["x"]), rel=1e-8)
    assert (res.ci_low, res.ci_high) == pytest.approx(_naive_profile(df, ["bmi"]), rel=1e-6)


def test_logistic_complete_separation_by_a_combination_of_columns() -> None:
    rng = np.random.default_rng(14)
    n = 300
    df = pd.DataFrame({"x": rng.integers(0, 2, n), "age": rng.uniform(45, 82, n)})
    df["y"] = ((df.age + 20 * df.x) > 70).astype(int)  # the line age + 20 x = 70 splits the outcome
    # Both exposure groups have events and non-events, so only the fit can reveal the separation.
    assert pd.crosstab(df.x, df.y).to_numpy().min() > 10
    with pytest.raises(StatsError, match=r"\(quasi-\)separation: a combination of \['x', 'age'\] predicts "
                                         r"the outcome perfectly for 300 of 300 rows"):
        logistic_or(df, "y", "x", ["age"])
    # Exposure alone predicting the outcome is caught before any fit, with the counts.
    n_exp = int(df.x.sum())
    with pytest.raises(StatsError, match=rf"separation: {n_exp} of {n_exp} exposed rows have 'y'"):
        logistic_or(df.assign(y=df.x), "y", "x", ["age"])


def test_logistic_quasi_separation_by_a_covariate_level() -> None:
    rng = np.random.default_rng(15)
    n = 300
    df = pd.DataFrame({"x": rng.integers(0, 2, n), "age": rng.uniform(45, 82, n),
                       "act": rng.choice(["high", "low"], n)})
    df["y"] = (rng.random(n) < 0.35).astype(int)
    df.loc[:6, "act"] = "none"
    df.loc[:6, "y"] = 0  # none of the 7 in this level has the outcome
    # statsmodels does not flag it (not every row is predicted) but its estimate runs away.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.logit("y ~ x + age + C(act)", data=df).fit(disp=0)
    assert fit.bse["C(act)[T.none]"] > 1e3
    with pytest.raises(StatsError, match=r"separation: a combination of \['act\[none\]'\] predicts "
                                         r"the outcome perfectly for 7 of 300 rows"):
        logistic_or(df, "y", "x", ["age", "act"])
    with pytest.raises(StatsError, match=r"\['act\[none\]'\]"):
        interaction_p(df.assign(sex=rng.integers(0, 2, n)), "y", "x", "sex", ["age", "act"])


def test_logistic_quasi_separation_with_ties_on_the_boundary() -> None:
    rng = np.random.default_rng(16)
    n = 200
    df = pd.DataFrame({"x": rng.integers(0, 2, n), "age": rng.integers(45, 83, n).astype(float)})
    df.loc[:3, "age"] = 65.0
    df.loc[:3, "x"] = [0, 0, 1, 1]
    df["y"] = (df.age > 65).astype(int)
    df.loc[:3, "y"] = [0, 1, 0, 1]  # both outcomes at age 65 in each exposure group: quasi, not complete
    n_off_line = int((df.age != 65).sum())
    # Only the tied rows are fitted away from 0 and 1; x may join age in a separating line, as
    # age + c x = 65 with |c| < 1 separates the other integer ages too.
    with pytest.raises(StatsError, match=rf"'age'\] predicts the outcome perfectly for {n_off_line} of {n} rows"):
        logistic_or(df, "y", "x", ["age"])


def test_interaction_p_matches_statsmodels() -> None:
    df = _cohort(2500, seed=10)
    res = interaction_p(df, "y", "x", "sex", ["age", "sex", "bmi", "act"])
    fit = smf.logit("y ~ x * sex + age + bmi + C(act)", data=df).fit(disp=0)
    assert res.estimate == pytest.approx(fit.params["x:sex"], rel=1e-6)
    assert res.p_value == pytest.approx(fit.pvalues["x:sex"], rel=1e-5)
    assert res.n == 2500
    with pytest.raises(TypeError, match="must be numeric"):
        interaction_p(df, "y", "x", "act", ["age"])


# ---------------------------------------------------------------- agreement and the regression line


def test_bland_altman_matches_a_hand_computation() -> None:
    # differences y - x = 2, -1, 5, 2: mean 2; squared deviations 0 + 9 + 9 + 0 = 18, SD sqrt(18 / 3) = sqrt(6)
    # = 2.449490; limits 2 -/+ 1.96 x 2.449490 = -2.800999 and 6.800999 (Bland & Altman's 1.96);
    # bias interval 2 -/+ t(0.975, 3) x sqrt(6) / 2 = 2 -/+ 3.182446 x 1.224745 = -1.897685 and 5.897685.
    # The pair with a missing value is dropped.
    x = [10.0, 20.0, 30.0, 40.0, np.nan]
    y = [12.0, 19.0, 35.0, 42.0, 50.0]
    res = bland_altman(x, y)
    assert res.n == 4
    assert res.mean_difference == pytest.approx(2.0, abs=1e-12)
    assert res.sd_difference == pytest.approx(2.449489742783178, rel=1e-12)
    assert (res.lower_limit, res.upper_limit) == pytest.approx((-2.800999895855029, 6.800999895855029), rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((-1.897685, 5.897685), abs=1e-6)
    # the direction is y - x: swapping the methods flips the bias, not the spread
    flipped = bland_altman(y, x)
    assert flipped.mean_difference == pytest.approx(-2.0, abs=1e-12)
    assert flipped.upper_limit == pytest.approx(2.800999895855029, rel=1e-12)
    # identical methods agree exactly
    same = bland_altman([1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    assert (same.mean_difference, same.lower_limit, same.upper_limit) == (0.0, 0.0, 0.0)


def test_bland_altman_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(StatsError, match="at least 2 complete pairs, got 1"):
        bland_altman([1.0, np.nan], [2.0, 3.0])
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        bland_altman([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        bland_altman([1.0, 2.0], [1.0, 2.0], confidence=95)


def test_least_squares_line_matches_a_hand_computation() -> None:
    # x mean 1.5, y mean 2.75; Sxy = 2.625 - 0.125 - 0.375 + 3.375 = 5.5, Sxx = 5: slope 1.1, intercept 1.1
    line = least_squares_line([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0, np.nan])
    assert (line.slope, line.intercept, line.n) == (pytest.approx(1.1, rel=1e-12), pytest.approx(1.1, rel=1e-12), 4)
    with pytest.raises(StatsError, match="every x is the same"):
        least_squares_line([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
