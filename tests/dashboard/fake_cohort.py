"""A tiny seeded stand-in for ``Reader.participants()``: the wide per-participant table's main columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

STRATA = ("50-59", "60-69", "70-79", "80+")


def _stratum(age: float) -> str:
    if age >= 80:
        return "80+"
    lo = int(age // 10 * 10)
    return f"{lo}-{lo + 9}"


def fake_cohort(n: int = 240, seed: int = 3, simulated: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    age = rng.uniform(50, 88, n).round(1)
    height = np.where(sex == 1, rng.normal(176, 7, n), rng.normal(163, 6, n))
    weight = np.where(sex == 1, rng.normal(84, 12, n), rng.normal(69, 11, n))
    almi = np.where(sex == 1, rng.normal(8.2, 0.9, n), rng.normal(6.5, 0.8, n)) - 0.02 * (age - 50)
    tmv = np.where(sex == 1, rng.normal(11800, 1500, n), rng.normal(8200, 1100, n)) - 30 * (age - 50)
    grip = np.where(sex == 1, rng.normal(39, 8, n), rng.normal(24, 5, n))
    return pd.DataFrame({
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
        "centre": rng.choice(["Cheadle", "Newcastle", "Reading"], n),
        "age_stratum": [_stratum(a) for a in age],
        "source": np.where(simulated, "simulated", "ukb"),
        "simulated": np.full(n, simulated),
    })
