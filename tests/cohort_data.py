"""The shared synthetic cohort: a tiny seeded stand-in for ``Reader.participants()`` (the wide table).

One generator for the tests that need a wide per-participant table without a store: the main
demographic and derived columns, plus every structure's left, right and total volume and fat fraction.
Tests compute their expected values from the frame they get, so the numbers here carry no meaning
beyond being plausible and reproducible, with one exception: ``outcomes=`` draws binary outcomes from a
stated truth (base risk and odds ratio of the top vs the bottom tertile of an exposure), so association
tests can check that an estimate covers the odds ratio that generated the data.

Options only ever append draws after the default ones, so ``synthetic_cohort(n, seed)`` is the same frame
whatever options other tests use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from store.structures import STRUCTURES

STRATA = ("50-59", "60-69", "70-79", "80+")

# The generated outcomes' log-odds: a common age slope (per year from 65) and a small shift of the middle
# exposure tertile, which the top-vs-bottom contrast drops, so a contrast that kept it would be visibly off.
OUTCOME_AGE_LOG_ODDS_PER_YEAR = 0.03
OUTCOME_AGE_CENTRE = 65.0
MIDDLE_TERTILE_LOG_ODDS = 0.1
# The exposure's tertile cut points, as the forest tables cut them (33rd and 67th percentiles).
TERTILE_QUANTILES = (0.33, 0.67)


class OutcomeTruth(NamedTuple):
    """How one binary outcome is drawn: risk at age 65 in the bottom tertile, odds ratio top vs bottom."""

    base_risk: float
    odds_ratio: float


def _stratum(age: float) -> str:
    if age >= 80:
        return "80+"
    lo = int(age // 10 * 10)
    return f"{lo}-{lo + 9}"


def synthetic_cohort(
    n: int = 240,
    seed: int = 3,
    *,
    simulated: bool = True,
    analysis: bool = False,
    outcomes: Mapping[str, OutcomeTruth] | None = None,
    exposure: str = "pa_ratio",
) -> pd.DataFrame:
    """``n`` participants aged 50-88 (every stratum of :data:`STRATA` filled for n ≳ 100), seeded by ``seed``.

    Parameters
    ----------
    analysis
        Also add the columns the association and concordance analyses read: ``activity_group`` (0-2),
        ``legs_lean_kg`` (TMV / 600 plus noise, so it tracks TMV), ``muscle_strength`` (grip / TMV in
        litres), and ``pa_ratio``, ``lr_asym_dexa_pct`` and ``lr_asym_mri_pct`` drawn independently of
        every other column (so their only association with an outcome is one ``outcomes`` gives them).
    outcomes
        Binary outcome columns (0.0/1.0) drawn from their :class:`OutcomeTruth`: log-odds =
        logit(base_risk) + :data:`OUTCOME_AGE_LOG_ODDS_PER_YEAR` x (age - 65) + log(odds_ratio) in the
        top tertile of ``exposure`` (cut at :data:`TERTILE_QUANTILES`) + :data:`MIDDLE_TERTILE_LOG_ODDS`
        in the middle one. A name already in the frame is replaced (``low_muscle_mass`` then follows the
        given truth, not the ALMI cut-off).
    exposure
        The column whose tertiles ``outcomes`` depend on; it must be in the frame (``pa_ratio`` needs
        ``analysis=True``).
    """
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    age = rng.uniform(50, 88, n).round(1)
    height = np.where(sex == 1, rng.normal(176, 7, n), rng.normal(163, 6, n))
    weight = np.where(sex == 1, rng.normal(84, 12, n), rng.normal(69, 11, n))
    almi = np.where(sex == 1, rng.normal(8.2, 0.9, n), rng.normal(6.5, 0.8, n)) - 0.02 * (age - 50)
    # whole cm³, so a few hundred participants hold ties (percentile ranks must count them half)
    tmv = (np.where(sex == 1, rng.normal(11800, 1500, n), rng.normal(8200, 1100, n)) - 30 * (age - 50)).round(0)
    grip = np.where(sex == 1, rng.normal(39, 8, n), rng.normal(24, 5, n))
    centre = rng.choice(["Cheadle", "Newcastle", "Reading"], n)
    cols: dict[str, object] = {
        "eid": np.arange(1_000_001, 1_000_001 + n),
        "sex": sex,
        "age": age,
        "height_cm": height,
        "weight_kg": weight,
        "bmi": weight / (height / 100) ** 2,
        "grip_max_kg": grip,
        "almi": almi,
        "tmv_cm3": tmv,
        "tvi": tmv / height**2,
        "low_muscle_mass": np.where(sex == 1, almi < 7.0, almi < 5.5),
        "centre": centre,
        "age_stratum": [_stratum(a) for a in age],
        "source": np.where(simulated, "simulated", "ukb"),
        "simulated": np.full(n, simulated),
    }
    for s in STRUCTURES:
        left = rng.gamma(20, 5, n)
        right = left * rng.normal(1, 0.05, n)
        cols[f"vol_{s.key}_left_cm3"] = left
        cols[f"vol_{s.key}_right_cm3"] = right
        cols[f"vol_{s.key}_cm3"] = left + right
        cols[f"ff_{s.key}"] = rng.uniform(0.02, 0.2, n)
    df = pd.DataFrame(cols)
    if analysis:
        df["activity_group"] = rng.integers(0, 3, n)
        df["legs_lean_kg"] = tmv / 600 + rng.normal(0, 1.0, n)
        df["muscle_strength"] = grip / (tmv / 1000)
        df["pa_ratio"] = rng.normal(0.45, 0.05, n)
        df["lr_asym_dexa_pct"] = np.abs(rng.normal(3, 2, n))
        df["lr_asym_mri_pct"] = np.abs(rng.normal(2, 1.5, n))
    if outcomes:
        if exposure not in df.columns:
            raise ValueError(f"outcomes depend on exposure {exposure!r}, which the frame lacks "
                             "(pa_ratio and the other study exposures need analysis=True)")
        x = df[exposure].to_numpy(dtype=float)
        c1, c2 = np.quantile(x, TERTILE_QUANTILES)
        top, middle = x > c2, (x >= c1) & (x <= c2)
        for name, truth in outcomes.items():
            logit = (np.log(truth.base_risk / (1 - truth.base_risk))
                     + OUTCOME_AGE_LOG_ODDS_PER_YEAR * (age - OUTCOME_AGE_CENTRE)
                     + np.where(top, np.log(truth.odds_ratio), 0.0) + np.where(middle, MIDDLE_TERTILE_LOG_ODDS, 0.0))
            df[name] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return df
