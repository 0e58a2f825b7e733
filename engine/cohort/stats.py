"""The study's statistics (docs/architecture.md, "Statistics") as a small public API.

Every function returns a small frozen dataclass and raises :class:`engine.errors.StatsError` when the
model cannot be fitted meaningfully (too few rows, a constant column, separation, non-convergence).

The logistic model is fitted by our own Newton/IRLS (verified against statsmodels in the tests)
because the profile-likelihood interval - which statsmodels does not offer for Logit - needs many
constrained refits: the exposure coefficient is fixed as an offset, each refit is warm-started from
the nearest one already done, and a safeguarded Newton search finds where the signed root of the
deviance difference reaches the normal quantile (equivalently, the deviance rises by the chi-square(1)
quantile).

(Quasi-)separation - some combination of the columns predicting the outcome perfectly for a group of
rows, so the maximum-likelihood estimate does not exist - is decided exactly, not from a threshold on
the fitted values: when the fit shows its symptoms (no convergence, or fitted probabilities close to
0 or 1), a linear program looks for a separating direction (Albert & Anderson 1984; Konis 2007, as
in R's ``detectseparation``). One participant with an extreme covariate value can have a
fitted probability of 1 - 1e-16 without any separation; statsmodels' Logit only warns when *every*
row is predicted perfectly, so it misses quasi-separation.

Example (in a notebook, on the wide participant table)::

    from engine.cohort.stats import logistic_or, pearson, tertiles
    t = tertiles(df["pa_ratio"])
    df["pa_high"] = t.high_vs_low()                      # 1 high, 0 low, NaN middle
    df["activity_group"] = df["activity_group"].astype("category")  # stored as codes 0/1/2
    logistic_or(df, "weak_grip", "pa_high", ["age", "sex", "bmi", "activity_group"])
    pearson(df["legs_lean_kg"], df["tmv_cm3"]).r
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from engine.errors import StatsError

__all__ = [
    "Correlation",
    "OddsRatio",
    "Tertiles",
    "TrendTest",
    "Decline",
    "Interaction",
    "Agreement",
    "Line",
    "pearson",
    "bland_altman",
    "least_squares_line",
    "logistic_or",
    "tertiles",
    "cochran_armitage",
    "decline_per_decade",
    "interaction_p",
    "TERTILE_PERCENTILES",
]

# The study: "Tertile cutpoints were determined using the 33rd and 67th percentiles".
TERTILE_PERCENTILES: tuple[float, float] = (33.0, 67.0)
# The study's decline CI uses 1.96 literally: 10 x (beta1 +/- 1.96 SE).
_DECLINE_Z = 1.96
# Bland & Altman, Lancet 1986;i:307-310: the 95 % limits of agreement are the mean difference +/- 1.96 SD
# of the differences (normal differences; the factor as they print it).
LIMITS_OF_AGREEMENT_Z = 1.96
_MAX_NEWTON = 60
# Stop Newton when the remaining log-likelihood gain is ~1e-11: deviances exact to ~1e-10.
_DECREMENT_TOL = 2e-11
# Below this decrement (remaining log-likelihood gain ~0.005) Newton is in its quadratic regime.
_SAFE_DECREMENT = 1e-2
# Under (quasi-)separation Newton only stops once the perfectly predicted rows have |linear predictor|
# in the twenties (their remaining log-likelihood gain ~exp(-|eta|) must fall below _DECREMENT_TOL), so
# any fit without a row beyond 10 (fitted probability within 5e-5 of 0 or 1) cannot be separated and
# skips the linear program; a fit with one is only a suspect, which the program then decides.
_SUSPECT_ETA = 10.0
# Separating-direction margins are in units of an orthonormal basis of the design (rows of norm <= 1,
# direction in the unit box): a row counts as perfectly predicted above _SEPARATED_MARGIN, and a
# certificate whose worst row is below -_VIOLATED_MARGIN is a solver-tolerance artefact, not separation.
_SEPARATED_MARGIN = 1e-7
_VIOLATED_MARGIN = 1e-9
_MAX_PROFILE_STEPS = 60
# |r(t) - z| at a profile bound; r is in standard-normal units, so bounds are exact to ~1e-10 SE.
_PROFILE_TOL = 1e-10


@dataclass(frozen=True)
class Correlation:
    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


@dataclass(frozen=True)
class OddsRatio:
    odds_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    events_exposed: int
    events_reference: int


@dataclass(frozen=True)
class Tertiles:
    """Cut points (c1, c2) and a label per value: "low" (< c1), "middle", "high" (> c2), None if missing."""

    cuts: tuple[float, float]
    labels: np.ndarray

    def high_vs_low(self) -> np.ndarray:
        """1.0 for high, 0.0 for low, NaN for middle or missing: the primary exposure contrast."""
        out = np.full(self.labels.shape, np.nan)
        out[self.labels == "high"] = 1.0
        out[self.labels == "low"] = 0.0
        return out


@dataclass(frozen=True)
class TrendTest:
    z: float
    p_value: float


@dataclass(frozen=True)
class Decline:
    estimate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Interaction:
    """Wald test of the exposure x ``by`` product term; ``estimate`` is its log odds-ratio ratio."""

    estimate: float
    p_value: float
    n: int


@dataclass(frozen=True)
class Agreement:
    """Bland-Altman agreement of two methods: differences ``y - x`` against their means.

    ``mean_difference`` (the bias) with its t interval, the SD of the differences, the limits of
    agreement ``mean_difference -/+ LIMITS_OF_AGREEMENT_Z x sd_difference`` and the complete pairs used.
    """

    mean_difference: float
    ci_low: float
    ci_high: float
    sd_difference: float
    lower_limit: float
    upper_limit: float
    n: int


@dataclass(frozen=True)
class Line:
    """Least-squares line ``y = intercept + slope x`` and the complete pairs it was fitted on."""

    slope: float
    intercept: float
    n: int


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _as_float(values: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric, got {np.asarray(values).dtype}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def pearson(x: Sequence[float] | np.ndarray | pd.Series, y: Sequence[float] | np.ndarray | pd.Series,
            confidence: float = 0.95) -> Correlation:
    """Pearson r with its Fisher-z interval and t-test p; pairs with a missing value are dropped."""
    _check_confidence(confidence)
    xa, ya = _as_float(x, "x"), _as_float(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < 4:
        raise StatsError(f"pearson needs at least 4 complete pairs for a Fisher-z interval, got {n}")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        raise StatsError("pearson is undefined for a constant variable")
    res = sps.pearsonr(xa, ya)
    r = float(np.clip(res.statistic, -1.0, 1.0))
    zq = sps.norm.ppf(0.5 + confidence / 2)
    z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    half = zq / np.sqrt(n - 3)
    return Correlation(r, float(np.tanh(z - half)), float(np.tanh(z + half)), float(res.pvalue), n)


def _complete_pairs(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = _as_float(x, "x"), _as_float(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def bland_altman(x: Sequence[float] | np.ndarray | pd.Series, y: Sequence[float] | np.ndarray | pd.Series,
                 confidence: float = 0.95) -> Agreement:
    """Bland-Altman agreement of ``y`` with ``x`` (two measurements of one quantity in one unit).

    Differences are ``y - x``; the SD is the sample SD (n - 1), the bias interval uses Student's t
    with n - 1 degrees of freedom at ``confidence``; pairs with a missing value are dropped.
    """
    _check_confidence(confidence)
    xa, ya = _complete_pairs(x, y)
    n = int(xa.size)
    if n < 2:
        raise StatsError(f"Bland-Altman limits need at least 2 complete pairs, got {n}")
    d = ya - xa
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / np.sqrt(n)
    spread = LIMITS_OF_AGREEMENT_Z * sd
    return Agreement(mean, mean - half, mean + half, sd, mean - spread, mean + spread, n)


def least_squares_line(x: Sequence[float] | np.ndarray | pd.Series,
                       y: Sequence[float] | np.ndarray | pd.Series) -> Line:
    """Ordinary least-squares line of ``y`` on ``x``; pairs with a missing value are dropped."""
    xa, ya = _complete_pairs(x, y)
    if xa.size < 2:
        raise StatsError(f"a regression line needs at least 2 complete pairs, got {xa.size}")
    if np.ptp(xa) == 0:
        raise StatsError("a regression line is undefined when every x is the same")
    res = sps.linregress(xa, ya)
    return Line(float(res.slope), float(res.intercept), int(xa.size))


def tertiles(x: Sequence[float] | np.ndarray | pd.Series) -> Tertiles:
    """Cut points at the 33rd and 67th percentiles of the non-missing values and a label per value."""
    xa = _as_float(x, "x")
    finite = np.isfinite(xa)
    if finite.sum() < 3:
        raise StatsError(f"tertiles need at least 3 non-missing values, got {int(finite.sum())}")
    c1, c2 = (float(c) for c in np.percentile(xa[finite], TERTILE_PERCENTILES))
    labels = np.full(xa.shape, None, dtype=object)
    labels[finite] = "middle"
    labels[finite & (xa < c1)] = "low"
    labels[finite & (xa > c2)] = "high"
    return Tertiles((c1, c2), labels)


def cochran_armitage(events: Sequence[float] | np.ndarray, totals: Sequence[float] | np.ndarray,
                     scores: Sequence[float] | np.ndarray | None = None) -> TrendTest:
    """Cochran-Armitage trend test, N-denominator form (R's ``prop.trend.test``); z > 0: rising share.

    The variance is p(1-p) [sum n_i s_i^2 - (sum n_i s_i)^2 / N], not statsmodels' N-1 version.
    """
    x, n = _as_float(events, "events"), _as_float(totals, "totals")
    if x.shape != n.shape or x.size < 2:
        raise ValueError(f"events and totals must have the same length >= 2, got {x.size} and {n.size}")
    s = np.arange(1.0, x.size + 1) if scores is None else _as_float(scores, "scores")
    if s.shape != x.shape:
        raise ValueError(f"scores must have one value per group ({x.size}), got {s.size}")
    if np.any(n <= 0) or np.any(x < 0) or np.any(x > n):
        raise ValueError("totals must be positive and 0 <= events <= totals in every group")
    big_n = n.sum()
    p = x.sum() / big_n
    if p in (0.0, 1.0):
        raise StatsError("Cochran-Armitage test is undefined when no group (or every group) has events")
    s_bar = (n * s).sum() / big_n
    t = (x * (s - s_bar)).sum()
    var = p * (1 - p) * ((n * s**2).sum() - (n * s).sum() ** 2 / big_n)
    if var <= 0:
        raise StatsError("Cochran-Armitage test needs at least two distinct scores")
    z = float(t / np.sqrt(var))
    return TrendTest(z, float(2 * sps.norm.sf(abs(z))))


def decline_per_decade(age: Sequence[float] | np.ndarray | pd.Series,
                       y: Sequence[float] | np.ndarray | pd.Series) -> Decline:
    """10 x beta1 of the OLS fit y ~ age, CI 10 x (beta1 +/- 1.96 SE); pairs with a missing value dropped."""
    a, ya = _as_float(age, "age"), _as_float(y, "y")
    if a.shape != ya.shape:
        raise ValueError(f"age and y must have the same length, got {a.size} and {ya.size}")
    keep = np.isfinite(a) & np.isfinite(ya)
    a, ya = a[keep], ya[keep]
    if a.size < 3:
        raise StatsError(f"decline per decade needs at least 3 complete pairs, got {a.size}")
    if np.ptp(a) == 0:
        raise StatsError("decline per decade is undefined when every age is the same")
    res = sps.linregress(a, ya)
    b, se = float(res.slope), float(res.stderr)
    return Decline(10 * b, 10 * (b - _DECLINE_Z * se), 10 * (b + _DECLINE_Z * se))


# ---------------------------------------------------------------- logistic regression


def _design(data: pd.DataFrame, outcome: str, exposure: str, covariates: Sequence[str]
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """y and X = [intercept, exposure, covariates (categorical as dummies)] on complete rows."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if isinstance(covariates, str):
        raise TypeError("covariates must be a sequence of column names, not a single string")
    used = list(dict.fromkeys([outcome, exposure, *covariates]))
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ValueError(f"columns not in data: {missing}; available: {list(data.columns)}")
    frame = data[used].dropna()
    y = frame[outcome].to_numpy(dtype=float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"outcome {outcome!r} must be coded 0/1, found values {np.unique(y)[:5]}")
    x1 = frame[exposure].to_numpy(dtype=float)
    if not np.isin(x1, (0.0, 1.0)).all():
        raise ValueError(f"exposure {exposure!r} must be coded 0/1, found values {np.unique(x1)[:5]}")
    cols = [np.ones(len(frame)), x1]
    names = ["intercept", exposure]
    for cov in covariates:
        if cov in (outcome, exposure):
            continue
        col = frame[cov]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col):
            cat = col.astype("category")
            codes = cat.cat.codes.to_numpy()
            present = np.flatnonzero(np.bincount(codes, minlength=len(cat.cat.categories)))
            for code in present[1:]:  # the first level present is the reference
                cols.append((codes == code).astype(float))
                names.append(f"{cov}[{cat.cat.categories[code]}]")
        else:
            cols.append(col.to_numpy(dtype=float))
            names.append(cov)
    return y, np.column_stack(cols), names


def _loglik(y: np.ndarray, eta: np.ndarray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _newton(y: np.ndarray, x: np.ndarray, offset: np.ndarray | float, beta0: np.ndarray
            ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Maximise the logistic log-likelihood with a fixed offset; returns beta, deviance, X'WX, mu.

    Newton steps with step-halving, stopped when the Newton decrement g'H^-1 g (twice the remaining
    log-likelihood gain) is below ``_DECREMENT_TOL``; the last full step is then taken, leaving an
    error of second order in it. Raises StatsError on a singular information matrix or
    non-convergence; whether that (or a converged fit) is separation is for the caller to decide.
    """
    beta = beta0.copy()
    eta = x @ beta + offset
    ll = None  # the log-likelihood is only needed (and computed) while steps may overshoot
    for _ in range(_MAX_NEWTON):
        mu = 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function, without overflow
        info = (x.T * (mu * (1.0 - mu))) @ x
        grad = x.T @ (y - mu)
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError as err:
            raise StatsError("logistic model is not estimable: the design matrix is singular "
                             "(a covariate is constant or collinear in the analysed rows)") from err
        decrement = float(grad @ step)
        if decrement < _DECREMENT_TOL:
            beta = beta + step
            eta = x @ beta + offset
            break
        if decrement < _SAFE_DECREMENT:
            # Close to the optimum of a concave function: the full Newton step cannot overshoot.
            beta = beta + step
            eta = x @ beta + offset
            ll = None
            continue
        if ll is None:
            ll = _loglik(y, eta)
        for _half in range(30):
            new_beta = beta + step
            new_eta = x @ new_beta + offset
            new_ll = _loglik(y, new_eta)
            if new_ll >= ll:
                break
            step = step / 2
        beta, eta, ll = new_beta, new_eta, new_ll
    else:
        raise StatsError(f"logistic model did not converge in {_MAX_NEWTON} Newton iterations")
    return beta, -2.0 * _loglik(y, eta), info, mu


def _separation(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A separating direction of the design, or None when the maximum-likelihood estimate exists.

    The MLE fails to exist exactly when some direction d != 0 has s_i x_i'd >= 0 for every row
    (s_i = +1 for an event, -1 otherwise): moving beta along d never lowers the likelihood. The
    program maximises the margins of the rows not yet known to be separated, over d in the unit box;
    its optimum is 0 unless such a direction exists. Certificates add up, so repeating it until no
    new row appears gives the whole set of perfectly predicted rows (a single optimal vertex may leave
    some of them on its boundary). Working in an orthonormal basis Q of the columns (X = QR: the same
    directions, d_X = R^-1 d_Q) keeps the margins on one scale whatever the units of the covariates.
    Returns (direction in X's coordinates, margin per row: positive where perfectly predicted).
    """
    q, r = np.linalg.qr(x)
    signed = (2.0 * y - 1.0)[:, None] * q
    total = np.zeros(x.shape[1])
    separated = np.zeros(len(y), dtype=bool)
    while not separated.all():
        res = optimize.linprog(-signed[~separated].sum(axis=0), A_ub=-signed, b_ub=np.zeros(len(y)),
                               bounds=[(-1.0, 1.0)] * x.shape[1], method="highs")
        if res.status != 0:
            break  # the program is bounded and feasible (d = 0); a failed solve proves nothing
        margins = signed @ res.x
        new = ~separated & (margins > _SEPARATED_MARGIN)
        if not new.any() or margins.min() < -_VIOLATED_MARGIN:
            break
        total += res.x
        separated |= new
    if not separated.any():
        return None
    return np.linalg.solve(r, total), signed @ total


def _raise_if_separated(y: np.ndarray, x: np.ndarray, names: Sequence[str]) -> None:
    found = _separation(y, x)
    if found is None:
        return
    direction, margins = found
    # A column takes part when its share of the separating index is visible on the data's scale.
    size = np.abs(direction) * np.sqrt(np.einsum("ij,ij->j", x, x))
    involved = [n for n, s in zip(names, size, strict=True) if n != "intercept" and s > 1e-6 * size.max()]
    raise StatsError(f"logistic model shows (quasi-)separation: a combination of {involved} predicts "
                     f"the outcome perfectly for {int((margins > _SEPARATED_MARGIN).sum())} of {len(y)} "
                     "rows (fitted probabilities of 0 or 1), so the odds ratio is not finite")


def _start(y: np.ndarray, p: int) -> np.ndarray:
    beta = np.zeros(p)
    mean = y.mean()
    beta[0] = np.log(mean / (1 - mean))
    return beta


def _fit(y: np.ndarray, x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Unconstrained fit: beta, covariance, deviance; StatsError naming the columns on separation."""
    if len(y) <= x.shape[1]:
        raise StatsError(f"logistic model has {x.shape[1]} parameters but only {len(y)} complete rows")
    scale = np.sqrt(np.einsum("ij,ij->j", x, x))
    if np.any(scale == 0) or np.linalg.matrix_rank((x.T @ x) / np.outer(scale, scale), tol=1e-10) < x.shape[1]:
        raise StatsError("logistic model is not estimable: the design matrix is singular "
                         "(a covariate is constant or collinear in the analysed rows)")
    try:
        beta, dev, info, _ = _newton(y, x, 0.0, _start(y, x.shape[1]))
    except StatsError:
        # The design has full rank, so a singular information matrix or a stalled Newton means
        # weights underflowing towards fitted probabilities of 0 or 1: separation, or a real failure.
        _raise_if_separated(y, x, names)
        raise
    if np.max(np.abs(x @ beta)) > _SUSPECT_ETA:
        _raise_if_separated(y, x, names)
    return beta, np.linalg.inv(info), dev


def _check_events(y: np.ndarray, x1: np.ndarray, outcome: str) -> tuple[int, int]:
    ev_exp, ev_ref = int(y[x1 == 1].sum()), int(y[x1 == 0].sum())
    n_exp, n_ref = int((x1 == 1).sum()), int((x1 == 0).sum())
    if n_exp == 0 or n_ref == 0:
        raise StatsError(f"exposure has a single level in the analysed rows "
                         f"({n_exp} exposed, {n_ref} reference)")
    for label, ev, tot in (("exposed", ev_exp, n_exp), ("reference", ev_ref, n_ref)):
        if ev == 0 or ev == tot:
            raise StatsError(f"separation: {ev} of {tot} {label} rows have {outcome!r}, "
                             "so the odds ratio is not finite")
    return ev_exp, ev_ref


def _profile_bounds(y: np.ndarray, x: np.ndarray, beta: np.ndarray, cov: np.ndarray, dev: float,
                    confidence: float) -> tuple[float, float]:
    """Profile-likelihood interval of beta[1]: where r(t) = sign(t - b) sqrt(D(t) - D) equals +/- z.

    D(t) is the deviance with beta[1] fixed at t (an offset) and the other coefficients refitted.
    The caller has ruled out separation of the full design, and a direction separating the other
    columns would separate the full design too, so every refit has a finite optimum even where its
    fitted probabilities come close to 0 or 1, and D(t) grows without bound on both sides.
    r is nearly linear in t and its derivative is free: dD/dt = -2 x1'(y - mu(t)), so r' = D'/(2r).
    Newton's method on r, safeguarded by bisection inside the bracket, needs 2-4 refits per bound.
    """
    b, se = float(beta[1]), float(np.sqrt(cov[1, 1]))
    x1, xo = x[:, 1], np.delete(x, 1, axis=1)
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    # First-order response of the other coefficients to the fixed one: the warm start of each refit.
    slope = np.delete(cov[:, 1], 1) / cov[1, 1]
    tried: list[tuple[float, np.ndarray]] = [(b, np.delete(beta, 1))]

    def signed_root(t: float) -> tuple[float, float]:
        t0, g0 = min(tried, key=lambda item: abs(item[0] - t))
        gamma, dev_t, _, mu = _newton(y, xo, t * x1, g0 + slope * (t - t0))
        tried.append((t, gamma))
        r = float(np.sign(t - b) * np.sqrt(max(dev_t - dev, 0.0)))
        d_dev = -2.0 * float(x1 @ (y - mu))
        return r, (d_dev / (2.0 * r) if r != 0.0 else 1.0 / se)

    bounds = []
    for sign in (-1.0, 1.0):
        target = sign * z
        inner, outer = b, None  # f(inner) has the sign -sign; f(outer) has the sign `sign`
        t = b + target * se  # the Wald bound
        for _ in range(_MAX_PROFILE_STEPS):
            r, slope_r = signed_root(t)
            f = r - target
            if abs(f) < _PROFILE_TOL:
                break
            if np.sign(f) == sign:
                outer = t
            else:
                inner = t
            t_new = t - f / slope_r if slope_r > 0 else np.nan
            if outer is None:
                if not np.isfinite(t_new) or (t_new - inner) * sign <= 0:
                    t_new = b + 2.0 * (t - b)
            elif not (min(inner, outer) < t_new < max(inner, outer)):
                t_new = 0.5 * (inner + outer)
            t = t_new
        else:
            raise StatsError(f"profile-likelihood bound not found in {_MAX_PROFILE_STEPS} steps "
                             f"(the search stalled at log odds ratio {t:.6g})")
        bounds.append(t)
    return bounds[0], bounds[1]


def logistic_or(data: pd.DataFrame, outcome: str, exposure: str, covariates: Sequence[str] = (),
                ci: str = "profile", confidence: float = 0.95) -> OddsRatio:
    """Odds ratio exp(beta_exposure) of a 0/1 ``exposure`` for a 0/1 ``outcome``, adjusted for covariates.

    Covariates of object/string/category dtype become dummies with their first level as reference;
    rows with a missing value in any used column are dropped. ``ci="profile"`` gives the
    profile-likelihood interval, ``ci="wald"`` the Wald interval; ``p_value`` is the Wald test.
    """
    if ci not in ("profile", "wald"):
        raise ValueError(f"ci must be 'profile' or 'wald', got {ci!r}")
    _check_confidence(confidence)
    y, x, names = _design(data, outcome, exposure, covariates)
    ev_exp, ev_ref = _check_events(y, x[:, 1], outcome)
    beta, cov, dev = _fit(y, x, names)
    b, se = float(beta[1]), float(np.sqrt(cov[1, 1]))
    p_value = float(2 * sps.norm.sf(abs(b / se)))
    if ci == "wald":
        z = sps.norm.ppf(0.5 + confidence / 2)
        lo, hi = b - z * se, b + z * se
    else:
        lo, hi = _profile_bounds(y, x, beta, cov, dev, confidence)
    return OddsRatio(float(np.exp(b)), float(np.exp(lo)), float(np.exp(hi)), p_value, len(y), ev_exp, ev_ref)


def interaction_p(data: pd.DataFrame, outcome: str, exposure: str, by: str,
                  covariates: Sequence[str] = ()) -> Interaction:
    """Wald p of the exposure x ``by`` product term in outcome ~ exposure + by + exposure:by + covariates.

    ``by`` must be numeric (e.g. sex coded 1/0); it is added as a main effect if not among covariates.
    """
    if by not in data.columns:
        raise ValueError(f"column {by!r} not in data")
    if not pd.api.types.is_numeric_dtype(data[by]):
        raise TypeError(f"by column {by!r} must be numeric (e.g. 0/1), got {data[by].dtype}")
    if by in (outcome, exposure):
        raise ValueError(f"by must differ from the outcome and the exposure, got {by!r}")
    covs = [c for c in covariates if c != by]
    y, x, names = _design(data, outcome, exposure, [by, *covs])
    x = np.column_stack([x[:, :2], x[:, 1] * x[:, 2], x[:, 2:]])  # column 2 of the design is `by`
    names = [*names[:2], f"{exposure}:{by}", *names[2:]]
    _check_events(y, x[:, 1], outcome)
    beta, cov, _ = _fit(y, x, names)
    est, se = float(beta[2]), float(np.sqrt(cov[2, 2]))
    return Interaction(est, float(2 * sps.norm.sf(abs(est / se))), len(y))
