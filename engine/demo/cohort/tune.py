"""How the *tuned* values in :mod:`engine.demo.cohort.params` were found (rerun after changing the model).

Cohorts of at least ``engine.demo.cohort.solve.MIN_N_FOR_SAMPLE_FIT`` solve the P/A effects on their own
sample (:mod:`engine.demo.cohort.draw`); the tuned values are what smaller cohorts use, so tuning draws with
the per-sample OR solves switched off.

``tune()`` iterates: draw a large cohort, measure sarcopenia prevalence by sex and the age- and
sex-adjusted high-vs-low P/A tertile ORs (statsmodels ``Logit``), and move each parameter by the gap
to its target on the log-odds scale. It prints one line per iteration and returns the final values;
copy them into :mod:`engine.demo.cohort.params`. Not used at run time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from engine.demo.cohort import draw as sim
from engine.demo.cohort import params as prm
from engine.demo.cohort import targets as cal

SARCOPENIA_STEP = 1.3  # sarcopenia OR moves less than one-for-one with its grip parameter


def _measure(n: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    p = sim._draw_people(n, seed, solve_ors=False)
    male = p.male
    almi = (p.legs_kg + p.arms_kg) / (p.height / 100.0) ** 2
    weak = p.grip_max < np.where(male, cal.WEAK_GRIP_BELOW_KG["male"], cal.WEAK_GRIP_BELOW_KG["female"])
    low = almi < np.where(male, cal.LOW_ALMI_BELOW["male"], cal.LOW_ALMI_BELOW["female"])
    sarc = weak & low
    prevalence = {"male": float(sarc[male].mean()), "female": float(sarc[~male].mean())}
    frame = pd.DataFrame(
        {"high": (p.tertile == 2).astype(float), "age": p.age, "sex": male.astype(float),
         "weak_grip": weak, "sarcopenia": sarc, "low_muscle_mass": low}
    )[p.tertile != 1]  # fmt: skip
    x = sm.add_constant(frame[["high", "age", "sex"]]).to_numpy()
    log_or = {
        o: float(sm.Logit(frame[o].to_numpy(float), x).fit(disp=0).params[1])
        for o in ("weak_grip", "sarcopenia", "low_muscle_mass")
    }
    return prevalence, log_or


def tune(n: int = 1_000_000, seed: int = 7, iterations: int = 6) -> dict[str, float]:
    """Fixed-point tuning of the grip/ALMI P/A effects; mutates :mod:`engine.demo.cohort.params`."""
    for it in range(iterations):
        prevalence, log_or = _measure(n, seed)
        print(it, prevalence, {k: round(float(np.exp(v)), 3) for k, v in log_or.items()}, flush=True)
        prm.GRIP_PA_HIGH += np.log(cal.PA_HIGH_VS_LOW_OR["weak_grip"]) - log_or["weak_grip"]
        prm.GRIP_PA_HIGH_LOW_MASS += SARCOPENIA_STEP * (
            np.log(cal.PA_HIGH_VS_LOW_OR["sarcopenia"]) - log_or["sarcopenia"]
        )
        prm.ALMI_PA_HIGH_SHIFT += np.log(cal.PA_HIGH_VS_LOW_OR["low_muscle_mass"]) - log_or["low_muscle_mass"]
    return {
        "GRIP_PA_HIGH": prm.GRIP_PA_HIGH,
        "GRIP_PA_HIGH_LOW_MASS": prm.GRIP_PA_HIGH_LOW_MASS,
        "ALMI_PA_HIGH_SHIFT": prm.ALMI_PA_HIGH_SHIFT,
    }


if __name__ == "__main__":
    print(tune())
