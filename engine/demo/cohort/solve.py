"""The per-sample solves and small numeric helpers behind :mod:`engine.demo.cohort.draw`.

Solving a few parameters on each drawn sample (moment matching) makes the study's published figures
hold for any seed and size, not only in expectation: the sarcopenia prevalence by sex, the two Fig. 3
correlations, the Fig. 4b TMV stratum medians and the Fig. 5a high-vs-low P/A tertile odds ratios
(:class:`HighVsLow`, :func:`solve_effect`). Cohorts too small to solve on keep tuned defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize
from scipy.interpolate import PchipInterpolator

from engine.demo.cohort import params as prm
from engine.demo.cohort import targets as cal

MIN_GRIP_KG = 2.0  # the lowest reading a Jamar dynamometer gives
MIN_STRATUM_FOR_FIT = 30  # fewer participants in an age stratum: use the default TMV age slope
# Fallbacks when an age stratum is too small to solve a and g on the sample: the values those solves
# give on 300,000 participants (TMV = ALM x legs share x 1000 x exp(a + g (age - 55) + noise)).
TMV_DEFAULT_LOG_RATIO = {"male": -0.487, "female": -0.489}
TMV_DEFAULT_LOG_PER_YEAR = {"male": -0.00495, "female": -0.00424}

MIN_N_FOR_SAMPLE_FIT = 2_000  # smaller cohorts use the tuned defaults instead of per-sample solves
# P/A-tertile effects (logistic units) are searched in this range; the tuned values are 0.04-0.5.
EFFECT_BRACKET = (-2.0, 3.0)
NEWTON_TOL = 1e-9
NEWTON_MAX_ITER = 30
EFFECT_XTOL = 1e-4  # far below one outcome flip (a log-OR step of about 1 / events)


def corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def solve_for_r(r_of: Callable[[float], float], target: float, default: float, n: int) -> float:
    """The noise SD in [0, 0.5] at which ``r_of(sd)`` (decreasing) equals ``target`` on this sample.

    Solving per sample makes the published correlation hold for any seed (moment matching); small
    cohorts, and targets out of reach, keep the tuned default.
    """
    if n < MIN_N_FOR_SAMPLE_FIT:
        return default
    lo, hi = 0.0, 0.5
    if not r_of(hi) <= target <= r_of(lo):
        return default
    return float(optimize.brentq(lambda sd: r_of(sd) - target, lo, hi, xtol=1e-6))


def grip_for_sarcopenia(sex: str, units: np.ndarray, almi_z: np.ndarray, low_mass: np.ndarray) -> np.ndarray:
    """Whole-kg max grip of one sex: mean + scale x (units + lambda x ALMI z), centred.

    ``lambda`` (how much grip follows ALMI) is solved on the sample so that the share with both weak
    grip and low muscle mass is the study's sarcopenia prevalence for this sex; small groups keep the
    tuned default.
    """
    target_count = round(cal.SARCOPENIA_PREVALENCE_BY_SEX[sex] * len(units))

    def grip(lam: float) -> np.ndarray:
        centred = units + lam * almi_z
        g = cal.GRIP_MAX_KG[sex] + prm.GRIP_LOGISTIC_SCALE[sex] * (centred - centred.mean())
        return np.round(np.maximum(g, MIN_GRIP_KG))  # UKB stores whole kg

    def count(lam: float) -> int:
        return int(np.count_nonzero((grip(lam) < cal.WEAK_GRIP_BELOW_KG[sex]) & low_mass))

    lam = prm.GRIP_PER_ALMI_Z[sex]
    if len(units) >= MIN_N_FOR_SAMPLE_FIT // 2:
        lo, hi = 0.0, 2.0
        best = (abs(count(lam) - target_count), lam)
        for _ in range(30):  # bisection on an (almost) monotone step function: keep the best seen
            mid_lam = 0.5 * (lo + hi)
            c = count(mid_lam)
            best = min(best, (abs(c - target_count), mid_lam))
            if c == target_count:
                break
            lo, hi = (lo, mid_lam) if c > target_count else (mid_lam, hi)
        lam = best[1]
    return grip(lam)


def centre_by_sex(x: np.ndarray, male: np.ndarray) -> np.ndarray:
    out = np.asarray(x, dtype=float).copy()
    for group in (male, ~male):
        if group.any():
            out[group] -= out[group].mean()
    return out


def sd_by_sex(x: np.ndarray, male: np.ndarray) -> np.ndarray:
    sd = np.ones_like(x, dtype=float)
    for group in (male, ~male):
        if group.sum() > 1:
            sd[group] = max(float(x[group].std()), 1e-12)
    return sd


def logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def asymmetry_pct(u: np.ndarray) -> np.ndarray:
    """|L - R| / mean x 100 at uniforms ``u``: a monotone quantile function through the study's quartiles."""
    q1, q3 = cal.LR_ASYM_IQR_PCT
    probs = np.array([0.0, 0.25, 0.5, 0.75, 0.95, 0.999, 1.0])
    # Tail knots continue the upper quartile's spacing; they are not published figures.
    values = np.array([0.0, q1, cal.LR_ASYM_MEDIAN_PCT, q3, 8.2, 14.0, 18.0])
    return PchipInterpolator(probs, values)(u)


def spread_within(cells: np.ndarray, order_key: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Uniforms spread evenly inside each cell: the k-th of a cell's m members (by ``order_key``) gets
    ``(k + jitter) / m``.

    Each cell then holds every part of [0, 1) in proportion (stratified sampling), so a value drawn
    from these uniforms falls into each of its own tertiles equally often in every cell: with the
    outcomes among the cell keys, its high-vs-low ORs sit at 1 in the sample, not only in expectation.
    """
    n = len(cells)
    order = np.lexsort((order_key, cells))
    sorted_cells = cells[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(starts, sizes)
    out = np.empty(n)
    out[order] = (np.arange(n) - first + jitter[order]) / np.repeat(sizes, sizes)
    return out


def tmv_by_age(
    base_kg: np.ndarray, age_exact: np.ndarray, age: np.ndarray, male: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """TMV = base x exp(a + g (age - 55) + noise), with a and g solved per sex on this sample.

    ``a`` and ``g`` put the medians of the youngest and the oldest age stratum on the study's values
    (Fig. 4b); strata too small to fit use the tuned defaults.
    """
    log_tmv = np.empty_like(base_kg)
    young_lo, young_hi = cal.YOUNGEST_STRATUM
    old_lo, _ = cal.OLDEST_STRATUM
    for sex, group in (("male", male), ("female", ~male)):
        base = np.log(base_kg[group] * 1000.0) + noise[group]  # the cm3-per-kg scale is folded into a
        t = age_exact[group] - 55.0
        young = (age[group] >= young_lo) & (age[group] < young_hi)
        old = age[group] >= old_lo
        target_young = np.log(cal.TMV_MEDIAN_YOUNGEST[sex])
        target_gap = np.log(cal.TMV_MEDIAN_OLDEST[sex]) - target_young
        if young.sum() >= MIN_STRATUM_FOR_FIT and old.sum() >= MIN_STRATUM_FOR_FIT:
            g = optimize.brentq(_median_gap, -0.1, 0.1, args=(base, t, young, old, target_gap), xtol=1e-7)
            a = target_young - float(np.median((base + g * t)[young]))
        else:
            g = TMV_DEFAULT_LOG_PER_YEAR[sex]
            a = TMV_DEFAULT_LOG_RATIO[sex]
        log_tmv[group] = base + a + g * t
    return np.exp(log_tmv)


def _median_gap(
    g: float, base: np.ndarray, t: np.ndarray, young: np.ndarray, old: np.ndarray, target: float
) -> float:
    y = base + g * t
    return float(np.median(y[old]) - np.median(y[young]) - target)


class HighVsLow:
    """Adjusted high-vs-low P/A tertile log-odds ratios of one outcome, as the analyses will fit them.

    One model per adjustment set (each a list of covariate columns; rows with any of them missing are
    left out, as the analyses do); ``rows`` are those with the outcome known. The designs are built once,
    so each solve step is one logistic fit per set (:func:`logistic_fit`). :meth:`log_or` is the mean over
    the sets, so a solve puts the target between the study's adjustment (age, sex, BMI, activity) and
    the minimal one (age and sex) when chance imbalance in the sample pulls them apart.
    """

    def __init__(
        self, rows: np.ndarray, high: np.ndarray, adjustments: Sequence[Sequence[np.ndarray]]
    ) -> None:
        self._designs: list[tuple[np.ndarray, np.ndarray]] = []
        for covariates in adjustments:
            used = np.asarray(rows, dtype=bool).copy()
            for c in covariates:
                used &= np.isfinite(c)
            columns = [np.ones(int(used.sum())), high[used]]
            # centred covariates: the same OR, a better-conditioned Newton fit
            columns += [c[used] - c[used].mean() for c in covariates]
            self._designs.append((used, np.column_stack(columns).astype(float)))

    def log_ors(self, outcome: np.ndarray) -> list[float]:
        """The adjusted log OR of ``outcome`` (bool, one per participant) under each adjustment set."""
        y = np.asarray(outcome, dtype=float)
        return [float(logistic_fit(y[used], x)[1]) for used, x in self._designs]

    def log_or(self, outcome: np.ndarray) -> float:
        return float(np.mean(self.log_ors(outcome)))


def logistic_fit(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton's method (the solves' hot path).

    statsmodels' ``Logit`` gives the same coefficients (tested) but costs about 10x more per fit in
    its bookkeeping, and a solve fits a few hundred times. Stops when no coefficient moves by more than
    :data:`NEWTON_TOL`; a fit that has not settled after :data:`NEWTON_MAX_ITER` steps (separation, far
    outside the targets) returns where it got to, which still orders the solve's bracket correctly.
    """
    beta = np.zeros(x.shape[1])
    mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    beta[0] = np.log(mean / (1.0 - mean))
    for _ in range(NEWTON_MAX_ITER):
        p = expit(x @ beta)
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x
        step = np.linalg.lstsq(hessian, x.T @ (y - p), rcond=None)[0]
        beta += step
        if np.max(np.abs(step)) < NEWTON_TOL:
            break
    return beta


def solve_effect(
    log_or_of: Callable[[float], float],
    target_or: float,
    default: float,
    bracket: tuple[float, float] = EFFECT_BRACKET,
) -> float:
    """The generating effect at which the sample's fitted log OR (increasing in it) is ``log(target_or)``.

    The random draws stay fixed, so the fitted OR is a step function of the effect (an outcome flips
    one participant at a time); Brent's method lands on the step that crosses the target. A target out
    of reach in ``bracket`` keeps ``default``.
    """
    target = float(np.log(target_or))

    def gap(effect: float) -> float:
        return log_or_of(effect) - target

    lo, hi = bracket
    if not gap(lo) <= 0.0 <= gap(hi):
        return default
    return float(optimize.brentq(gap, lo, hi, xtol=EFFECT_XTOL))
