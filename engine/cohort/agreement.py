"""Agreement of two metric sources on the participants both measured (the Agreement page).

Two sources (MSMV's engine, another tool's imported label maps, an imported metrics file, simulated
values) measure the same structures of the same participants; per structure and for TMV and the P/A ratio
this module gives Pearson r, the intraclass correlation ICC(2,1) and the Bland-Altman mean difference
with its 95 % limits of agreement. The inputs are the wide tables of each source
(:meth:`store.reader.Reader.participants` with a ``metric_source``), so TMV and the P/A ratio are the
store's definitions (:mod:`store.metrics`), not computed again here.

ICC(2,1) (Shrout & Fleiss 1979, "Intraclass correlations: uses in assessing rater reliability",
Psychol Bull 86:420-428, case 2: two-way random effects, absolute agreement, single measures; McGraw &
Wong's ICC(A,1)) is ``(MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)`` from the two-way ANOVA
of ``n`` targets by ``k`` raters without replication: MSR between targets, MSC between raters, MSE the
residual. Unlike r it falls when one source is offset from the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from engine.cohort.stats import bland_altman, pearson
from engine.errors import StatsError
from store.metrics import BY_NAME
from store.structures import STRUCTURES
from store.vocabulary import volume_column

#: The compared values, in table order: TMV, the P/A ratio, then each of the 27 structures (both sides).
AGREEMENT_METRICS: tuple[str, ...] = ("tmv_cm3", "pa_ratio", *(volume_column(s.key) for s in STRUCTURES))
#: Wide-table columns a source's frame needs for :func:`paired`.
PAIR_COLUMNS: tuple[str, ...] = ("eid", "sex", "age_stratum", "imaging_instance", "has_imaging", *AGREEMENT_METRICS)
SUFFIXES: tuple[str, str] = ("_a", "_b")
TABLE_COLUMNS: tuple[str, ...] = ("metric", "label", "unit", "n", "r", "icc", "mean_difference", "sd_difference",
                                  "lower_limit", "upper_limit", "error")


@dataclass(frozen=True)
class MeanSquares:
    """The two-way ANOVA (targets x raters, one rating per cell) behind ICC(2,1)."""

    rows: float  # MSR, between targets
    columns: float  # MSC, between raters
    error: float  # MSE, residual
    n: int  # targets
    k: int  # raters


def mean_squares(ratings: npt.ArrayLike) -> MeanSquares:
    """Two-way ANOVA mean squares of an ``n x k`` table (targets in rows, raters in columns).

    Rows with a missing value are dropped; StatsError when fewer than 2 complete rows or 2 raters remain.
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"ratings must be a 2-D table (targets x raters), got {x.ndim} dimension(s)")
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        raise StatsError(f"ICC needs at least 2 complete targets and 2 raters, got {n} and {k}")
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((x - grand) ** 2).sum()) - ss_rows - ss_cols
    return MeanSquares(ss_rows / (n - 1), ss_cols / (k - 1), max(ss_error, 0.0) / ((n - 1) * (k - 1)), n, k)


def icc_2_1(ratings: npt.ArrayLike) -> float:
    """ICC(2,1) of an ``n x k`` table (targets x raters): two-way random, absolute agreement, single measures.

    StatsError when it is undefined (too few rows, or no variation at all).
    """
    ms = mean_squares(ratings)
    denominator = ms.rows + (ms.k - 1) * ms.error + ms.k * (ms.columns - ms.error) / ms.n
    if not denominator > 0:
        raise StatsError("ICC is undefined when the values do not vary")
    return (ms.rows - ms.error) / denominator


def paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The participants both sources measured at the same imaging visit: ``eid``, ``sex``, ``age_stratum``
    and each of :data:`AGREEMENT_METRICS` from ``a`` and ``b`` (suffixed ``_a``, ``_b``)."""
    missing = sorted({c for frame in (a, b) for c in PAIR_COLUMNS if c not in frame.columns})
    if missing:
        raise ValueError(f"a source's frame lacks column(s) {missing}")

    def imaged(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["has_imaging"].fillna(False).astype(bool)]

    left = imaged(a)[list(PAIR_COLUMNS)].drop(columns="has_imaging")
    right = imaged(b)[["eid", "imaging_instance", *AGREEMENT_METRICS]]
    both = left.merge(right, on=["eid", "imaging_instance"], suffixes=SUFFIXES)
    return both.sort_values("eid").reset_index(drop=True)


def agreement_table(pairs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per metric of :data:`AGREEMENT_METRICS`: n complete pairs, Pearson r, ICC(2,1) and the
    Bland-Altman mean difference (second source minus first), SD and 95 % limits; ``error`` says why a
    statistic is missing (too few pairs, constant values, a structure one source does not measure)."""
    rows = []
    for metric in AGREEMENT_METRICS:
        spec = BY_NAME[metric]
        a, b = (pairs[f"{metric}{s}"].to_numpy(float) for s in SUFFIXES)
        row = dict.fromkeys(TABLE_COLUMNS, np.nan)
        complete = np.isfinite(a) & np.isfinite(b)
        row.update(metric=metric, label=spec.label, unit=spec.unit, n=int(complete.sum()), error="")
        errors = []
        try:
            row["r"] = pearson(a, b, confidence=confidence).r
        except StatsError as err:
            errors.append(str(err))
        try:
            row["icc"] = icc_2_1(np.column_stack([a, b]))
        except StatsError as err:
            errors.append(str(err))
        try:
            res = bland_altman(a, b, confidence=confidence)
            row.update(mean_difference=res.mean_difference, sd_difference=res.sd_difference,
                       lower_limit=res.lower_limit, upper_limit=res.upper_limit)
        except StatsError as err:
            errors.append(str(err))
        row["error"] = "; ".join(dict.fromkeys(errors))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
