"""Benchmark: one forest-plot refresh of the Associations page against a naive statsmodels profile.

One refresh = ``engine.cohort.tables.forest_table``: P/A tertiles, five outcomes, four covariates (age,
sex, BMI, activity group), profile-likelihood CIs, on a seeded ~25,000-row cohort. The naive
reference fits each outcome with statsmodels and finds each profile bound with brentq over repeated
statsmodels GLM fits that carry the exposure as an offset. Prints JSON lines (seconds = median of
``--repeats`` runs); the goal for ours is <= 0.5 s on the development machine.

    .venv/bin/python benchmarks/stats.py [--rows 25000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.cohort.tables import OUTCOMES, forest_table  # noqa: E402

COVARIATES = ("age", "sex", "bmi", "activity_group")
GOAL_S = 0.5
# The study's P/A ORs (Figure 5a), used as generating values.
TRUE_OR = {"low_muscle_mass": 1.02, "weak_grip": 1.60, "sarcopenia": 1.42, "died": 1.49, "falls": 1.12}
BASE_RISK = {"low_muscle_mass": 0.09, "weak_grip": 0.06, "sarcopenia": 0.012, "died": 0.018, "falls": 0.2}


def cohort(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    age = rng.uniform(45, 84, n)
    bmi = rng.normal(26.5, 4.2, n)
    pa = rng.normal(0.45, 0.05, n)
    c1, c2 = np.quantile(pa, [0.33, 0.67])
    df = pd.DataFrame({"sex": sex, "age": age, "bmi": bmi, "activity_group": rng.integers(0, 3, n),
                       "pa_ratio": pa})
    for outcome, odds_ratio in TRUE_OR.items():
        base = np.log(BASE_RISK[outcome] / (1 - BASE_RISK[outcome]))
        logit = base + 0.04 * (age - 65) + 0.02 * (bmi - 26.5) + np.where(pa > c2, np.log(odds_ratio), 0.0)
        df[outcome] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return df


def naive_forest(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The same table by repeated statsmodels fits (independent of engine.cohort.stats)."""
    c1, c2 = np.percentile(df.pa_ratio, [33, 67])
    part = df[(df.pa_ratio < c1) | (df.pa_ratio > c2)]
    high = (part.pa_ratio > c2).astype(float).rename("high")
    design = pd.get_dummies(part[list(COVARIATES)], columns=["activity_group"], drop_first=True, dtype=float)
    xo = sm.add_constant(design)
    crit = sps.chi2.ppf(confidence, 1)
    rows = []
    for outcome in OUTCOMES:
        y = part[outcome]
        full = sm.GLM(y, pd.concat([high, xo], axis=1), family=sm.families.Binomial()).fit(tol=1e-10)
        b, se, dev = full.params["high"], full.bse["high"], full.deviance

        def excess(t: float, y: pd.Series = y, dev: float = dev) -> float:
            fit = sm.GLM(y, xo, family=sm.families.Binomial(), offset=t * high).fit(tol=1e-10)
            return fit.deviance - dev - crit

        lo = optimize.brentq(excess, b - 4 * se, b, xtol=1e-8)
        hi = optimize.brentq(excess, b, b + 4 * se, xtol=1e-8)
        rows.append({"outcome": outcome, "odds_ratio": np.exp(b), "ci_low": np.exp(lo), "ci_high": np.exp(hi)})
    return pd.DataFrame(rows)


def _time(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds (CPU time is less sensitive to other processes on a shared machine)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    df = cohort(args.rows)
    forest_table(df, "pa_ratio", covariates=COVARIATES)  # warm-up (imports, caches)
    ours_s, ours_cpu, ours = _time(lambda: forest_table(df, "pa_ratio", covariates=COVARIATES), args.repeats)
    naive_s, naive_cpu, naive = _time(lambda: naive_forest(df), max(1, args.repeats // 2))
    rel = max(float(np.max(np.abs(ours[c].to_numpy() / naive[c].to_numpy() - 1)))
              for c in ("odds_ratio", "ci_low", "ci_high"))
    print(json.dumps({"benchmark": "forest_refresh", "impl": "engine.cohort.tables.forest_table (profile)",
                      "rows": args.rows, "outcomes": len(OUTCOMES), "covariates": list(COVARIATES),
                      "seconds": round(ours_s, 4), "cpu_seconds": round(ours_cpu, 4), "goal_s": GOAL_S,
                      "meets_goal": ours_s <= GOAL_S, "load_avg_1min": os.getloadavg()[0],
                      "cpus": os.cpu_count()}))
    print(json.dumps({"benchmark": "forest_refresh", "impl": "naive statsmodels GLM-offset profile",
                      "rows": args.rows, "seconds": round(naive_s, 4), "cpu_seconds": round(naive_cpu, 4)}))
    print(json.dumps({"benchmark": "forest_refresh", "speedup_naive_over_ours": round(naive_s / ours_s, 1),
                      "cpu_speedup": round(naive_cpu / ours_cpu, 1),
                      "max_relative_difference_or_ci": float(f"{rel:.2e}")}))
    print(json.dumps({"benchmark": "forest_refresh", "ours": ours[["outcome", "odds_ratio", "ci_low", "ci_high",
                                                                  "events_high", "events_low"]]
                      .round(4).to_dict(orient="records")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
