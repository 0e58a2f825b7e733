"""The shared synthetic cohort: a tiny seeded stand-in for ``Reader.participants()`` (the wide table).

One generator for the tests that need a wide per-participant table without a store: the main
demographic and derived columns, plus every structure's left, right and total volume and fat fraction.
Tests compute their expected values from the frame they get, so the numbers here carry no meaning
beyond being plausible and reproducible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from store.structures import STRUCTURES

STRATA = ("50-59", "60-69", "70-79", "80+")


def _stratum(age: float) -> str:
    if age >= 80:
        return "80+"
    lo = int(age // 10 * 10)
    return f"{lo}-{lo + 9}"


def synthetic_cohort(n: int = 240, seed: int = 3, *, simulated: bool = True) -> pd.DataFrame:
    """``n`` participants aged 50-88 (every stratum of :data:`STRATA` filled for n ≳ 100), seeded by ``seed``."""
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
    return pd.DataFrame(cols)
