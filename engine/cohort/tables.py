"""Cohort and association tables of the study, built on :mod:`engine.cohort.stats`.

Pure functions over the wide per-participant DataFrame (columns as in :mod:`store.metrics`: ``sex``
1 male / 0 female, ``age``, ``almi``, ``tmv_cm3``, ``tvi``, ``pa_ratio``, the 0/1 outcomes,
``activity_group``, ``centre``, ``age_stratum``, ``vol_<key>_cm3`` per structure ...).
They return DataFrames ready to show or plot; a model that cannot be fitted in some subgroup yields a
row with NaN numbers and the reason in ``error`` instead of failing the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from engine.cohort.frames import require_columns
from engine.cohort.stats import (
    bland_altman,
    cochran_armitage,
    decline_per_decade,
    interaction_p,
    logistic_or,
    pearson,
    tertiles,
)
from engine.errors import StatsError
from store.metrics import AGE_STRATA, BY_NAME, LOW_ALMI_KG_M2
from store.structures import STRUCTURES
from store.vocabulary import FEMALE, MALE, SEX_LABELS, volume_column

__all__ = [
    "OUTCOMES",
    "COVARIATES",
    "DEFAULT_COVARIATES",
    "CI_METHODS",
    "TREND_METRICS",
    "table1",
    "age_trends",
    "below_cutoff_table",
    "below_cutoff_tests",
    "below_cutoff_trend",
    "CONCORDANCE_PAIRS",
    "DEXA_PAIRS",
    "AMRA_PAIRS",
    "agreement",
    "agreement_applies",
    "concordance",
    "exposure_options",
    "exposure_series",
    "exposure_columns",
    "forest_table",
    "sex_stratified",
]


def _labels(columns: Sequence[str]) -> dict[str, str]:
    """Column -> short label (store.vocabulary), for lists of choices."""
    return {c: BY_NAME[c].label for c in columns}


def _titles(columns: Sequence[str]) -> dict[str, str]:
    """Column -> label with unit, for axes and table rows."""
    return {c: BY_NAME[c].title for c in columns}


# The study's five outcomes (docs/architecture.md, "Metric definitions"), in the order of its Figure 5.
OUTCOMES: dict[str, str] = _labels(("low_muscle_mass", "weak_grip", "sarcopenia", "died", "falls"))
COVARIATES: dict[str, str] = _labels(("age", "sex", "bmi", "activity_group", "height_cm", "centre"))
# The study's adjustment set: age, sex, BMI and physical activity level.
DEFAULT_COVARIATES: tuple[str, ...] = ("age", "sex", "bmi", "activity_group")
# Coded as numbers in the store but nominal: entered as dummies (first level = reference).
_CATEGORICAL: frozenset[str] = frozenset({"activity_group", "centre"})
CI_METHODS: dict[str, str] = {"profile": "Profile likelihood", "wald": "Wald"}

_EXPOSURES: dict[str, str] = _titles(("pa_ratio", "lr_asym_dexa_pct", "lr_asym_mri_pct", "tvi", "muscle_strength"))
SHARE_PREFIX = "share:"

TREND_METRICS: dict[str, str] = _titles(("almi", "tmv_cm3", "tvi"))

# Table 1's continuous rows, in the study's order.
_CONTINUOUS: dict[str, str] = _titles((
    "age", "height_cm", "weight_kg", "bmi", "grip_max_kg", "alm_kg", "almi", "legs_lean_kg", "tmv_cm3", "tvi",
    "pa_ratio", "lr_asym_dexa_pct", "muscle_strength",
))
_FOREST_COLUMNS = ["outcome", "outcome_label", "cut_low", "cut_high", "odds_ratio", "ci_low", "ci_high",
                   "p_value", "n", "events_high", "events_low", "adjusted_for", "error"]


# ------------------------------------------------------------------------ Table 1


def table1(df: pd.DataFrame, *, min_count: int = 1) -> pd.DataFrame:
    """Characteristics by sex: n, mean ± SD (Welch t p) or count (%) (Pearson χ² p, no continuity correction).

    Columns: variable, label, men, women, p_value (variables absent from ``df`` are skipped). A count
    (and its share) below ``min_count`` is shown as ``"<min_count"``: small-count suppression.
    """
    require_columns(df, ["sex"])
    men, women = df[df["sex"] == MALE], df[df["sex"] == FEMALE]
    rows = [{"variable": "n", "label": "Participants", "men": f"{len(men):,}", "women": f"{len(women):,}",
             "p_value": np.nan}]
    for col, label in _CONTINUOUS.items():
        if col not in df.columns:
            continue
        a, b = men[col].dropna().astype(float), women[col].dropna().astype(float)
        p = float(sps.ttest_ind(a, b, equal_var=False).pvalue) if len(a) > 1 and len(b) > 1 else np.nan
        rows.append({"variable": col, "label": label, "men": _mean_sd(a), "women": _mean_sd(b), "p_value": p})
    for col, label in OUTCOMES.items():
        if col not in df.columns:
            continue
        a, b = men[col].dropna(), women[col].dropna()
        table = np.array([[(a == 1).sum(), (a == 0).sum()], [(b == 1).sum(), (b == 0).sum()]])
        p = np.nan
        if (table.sum(axis=0) > 0).all() and (table.sum(axis=1) > 0).all():
            p = float(sps.chi2_contingency(table, correction=False).pvalue)
        rows.append({"variable": col, "label": label, "men": _count_pct(a, min_count),
                     "women": _count_pct(b, min_count), "p_value": p})
    return pd.DataFrame(rows, columns=["variable", "label", "men", "women", "p_value"])


def _mean_sd(x: pd.Series) -> str:
    if len(x) == 0:
        return "–"
    sd = x.std(ddof=1) if len(x) > 1 else float("nan")
    return f"{x.mean():.4g} ± {sd:.3g}"


def _count_pct(x: pd.Series, min_count: int = 1) -> str:
    if len(x) == 0:
        return "–"
    k = int((x == 1).sum())
    if k < min_count:  # the share would give the count away too
        return f"<{min_count}"
    return f"{k:,} ({100.0 * k / len(x):.1f} %)"


# ------------------------------------------------------------------------ age trends


def age_trends(df: pd.DataFrame, metrics: Sequence[str] = tuple(TREND_METRICS)) -> pd.DataFrame:
    """Decline per decade (10·β₁ of metric ~ age) by sex with 95 % CI.

    Columns: metric, label, sex (1/0), sex_label, n, estimate, ci_low, ci_high, error.
    """
    require_columns(df, ["sex", "age", *metrics])
    rows = []
    for metric in metrics:
        for sex, sex_label in SEX_LABELS.items():
            part = df.loc[df["sex"] == sex, ["age", metric]].dropna()
            row = {"metric": metric, "label": TREND_METRICS.get(metric, metric), "sex": sex,
                   "sex_label": sex_label, "n": len(part), "estimate": np.nan, "ci_low": np.nan,
                   "ci_high": np.nan, "error": ""}
            try:
                d = decline_per_decade(part["age"], part[metric])
                row.update(estimate=d.estimate, ci_low=d.ci_low, ci_high=d.ci_high)
            except StatsError as err:
                row["error"] = str(err)
            rows.append(row)
    return pd.DataFrame(rows)


# The trend test uses the study's strata; 40-49 is shown when present but not tested.
_TREND_STRATA: tuple[str, ...] = tuple(name for name, lo, _ in AGE_STRATA if lo >= 50.0)
_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    (SEX_LABELS[MALE], (MALE,)), (SEX_LABELS[FEMALE], (FEMALE,)), ("All", (MALE, FEMALE)),
)


def below_cutoff_table(df: pd.DataFrame) -> pd.DataFrame:
    """Share with ALMI below the EWGSOP2 cut-off (store.metrics.LOW_ALMI_KG_M2) per sex x age stratum.

    Columns: sex (1/0), sex_label, age_stratum, n (with ALMI known), n_below, share_pct.
    """
    require_columns(df, ["sex", "almi", "age_stratum"])
    known = df[df["almi"].notna() & df["sex"].isin(list(SEX_LABELS)) & df["age_stratum"].notna()]
    below = (known["almi"].astype(float) < known["sex"].map(LOW_ALMI_KG_M2).astype(float)).astype(int)
    rows = []
    for sex, sex_label in SEX_LABELS.items():
        for stratum, _, _ in AGE_STRATA:
            mask = (known["sex"] == sex) & (known["age_stratum"] == stratum)
            n = int(mask.sum())
            if n:
                k = int(below[mask].sum())
                rows.append({"sex": sex, "sex_label": sex_label, "age_stratum": stratum, "n": n,
                             "n_below": k, "share_pct": 100.0 * k / n})
    return pd.DataFrame(rows, columns=["sex", "sex_label", "age_stratum", "n", "n_below", "share_pct"])


def below_cutoff_tests(df: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cochran-Armitage trend of the below-cut-off share across the study's age strata (scores 1-4).

    Columns: group ("Men", "Women", "All"), z (> 0: the share rises with age), p_value, n, strata, error.
    """
    table = below_cutoff_table(df) if table is None else table
    rows = []
    for group, sexes in _GROUPS:
        sub = table[table["sex"].isin(sexes) & table["age_stratum"].isin(_TREND_STRATA)]
        per = sub.groupby("age_stratum")[["n", "n_below"]].sum()
        per = per.loc[[s for s in _TREND_STRATA if s in per.index]]
        row = {"group": group, "z": np.nan, "p_value": np.nan, "n": int(per["n"].sum()),
               "strata": ", ".join(per.index), "error": ""}
        try:
            scores = [_TREND_STRATA.index(s) + 1 for s in per.index]
            res = cochran_armitage(per["n_below"].to_numpy(), per["n"].to_numpy(), scores)
            row.update(z=res.z, p_value=res.p_value)
        except (StatsError, ValueError) as err:
            row["error"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows, columns=["group", "z", "p_value", "n", "strata", "error"])


def below_cutoff_trend(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`below_cutoff_table` plus each sex's Cochran-Armitage ``trend_z`` and ``trend_p``.

    The trend test covers the strata 50-59 ... 80+; a 40-49 row (display only) has ``in_trend`` False.
    """
    table = below_cutoff_table(df)
    tests = below_cutoff_tests(df, table).set_index("group")
    table["in_trend"] = table["age_stratum"].isin(_TREND_STRATA)
    table["trend_z"] = table["sex_label"].map(tests["z"]).astype(float)
    table["trend_p"] = table["sex_label"].map(tests["p_value"]).astype(float)
    return table


# ------------------------------------------------------------------------ concordance

# MSMV's measure (y) against another method's (x): the study's Figure 3 (DEXA), then AMRA's analysis
# of the same scans. AMRA's thigh region is not TMV's (TMV also holds the gluteal and core muscles) and
# AMRA's compartments are its own: the pairs compare the methods, they do not equate them.
CONCORDANCE_PAIRS: dict[str, tuple[str, str, str]] = {
    "tmv_legs": ("legs_lean_kg", "tmv_cm3", "TMV (MRI) vs DEXA legs lean mass"),
    "tvi_almi": ("almi", "tvi", "TVI (MRI) vs ALMI (DEXA)"),
    "tmv_amra_thigh": ("amra_thigh_muscle_cm3", "tmv_cm3", "TMV (MSMV) vs AMRA thigh muscle volume"),
    "anterior_amra": ("amra_anterior_cm3", "anterior_cm3", "Anterior compartment (MSMV) vs AMRA anterior thigh"),
    "posterior_amra": ("amra_posterior_cm3", "posterior_cm3", "Posterior compartment (MSMV) vs AMRA posterior thigh"),
}
DEXA_PAIRS: tuple[str, ...] = ("tmv_legs", "tvi_almi")
AMRA_PAIRS: tuple[str, ...] = ("tmv_amra_thigh", "anterior_amra", "posterior_amra")
AGREEMENT_COLUMNS = ["group", "n", "mean_difference", "ci_low", "ci_high", "sd_difference", "lower_limit",
                     "upper_limit", "error"]


def agreement_applies(pair: str) -> bool:
    """True when both sides of ``pair`` are in one unit (volumes against volumes), so a difference
    means something and Bland-Altman agreement applies; TMV in cm³ against lean mass in kg does not."""
    x, y, _ = CONCORDANCE_PAIRS[pair]
    return BY_NAME[x].unit == BY_NAME[y].unit


def agreement(df: pd.DataFrame, x: str, y: str, confidence: float = 0.95) -> pd.DataFrame:
    """Bland-Altman agreement of ``y`` with ``x`` (differences ``y - x``), for everyone and by sex.

    Columns: :data:`AGREEMENT_COLUMNS` (group "All", "Men", "Women"; the bias ``mean_difference`` with
    its ``confidence`` interval; the 95 % limits of agreement); raises ``ValueError`` when ``x`` and ``y``
    are not in one unit.
    """
    require_columns(df, ["sex", x, y])
    if BY_NAME[x].unit != BY_NAME[y].unit:
        raise ValueError(f"agreement needs one unit: {x} is in {BY_NAME[x].unit}, {y} in {BY_NAME[y].unit}")
    rows = []
    for group, sexes in (("All", (MALE, FEMALE)), *_GROUPS[:2]):
        part = df[df["sex"].isin(sexes)] if group != "All" else df
        row = dict.fromkeys(AGREEMENT_COLUMNS, np.nan)
        row.update(group=group, n=int((part[x].notna() & part[y].notna()).sum()), error="")
        try:
            res = bland_altman(part[x], part[y], confidence=confidence)
            row.update(mean_difference=res.mean_difference, ci_low=res.ci_low, ci_high=res.ci_high,
                       sd_difference=res.sd_difference, lower_limit=res.lower_limit, upper_limit=res.upper_limit)
        except StatsError as err:
            row["error"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def concordance(df: pd.DataFrame, x: str, y: str, confidence: float = 0.95) -> pd.DataFrame:
    """Pearson r of ``y`` against ``x`` with its Fisher-z CI, for everyone and by sex.

    Columns: group ("All", "Men", "Women"), n, r, ci_low, ci_high, p_value, error.
    """
    require_columns(df, ["sex", x, y])
    rows = []
    for group, sexes in (("All", (MALE, FEMALE)), *_GROUPS[:2]):
        part = df[df["sex"].isin(sexes)] if group != "All" else df
        row = {"group": group, "n": int((part[x].notna() & part[y].notna()).sum()), "r": np.nan,
               "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "error": ""}
        try:
            res = pearson(part[x], part[y], confidence=confidence)
            row.update(r=res.r, ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value)
        except StatsError as err:
            row["error"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows, columns=["group", "n", "r", "ci_low", "ci_high", "p_value", "error"])


# ------------------------------------------------------------------------ exposures


def exposure_options() -> dict[str, str]:
    """Exposure metric id -> label: the study's metrics, then ``share:<key>`` for each muscle (volume / TMV)."""
    opts = dict(_EXPOSURES)
    for s in STRUCTURES:
        if s.is_muscle:
            opts[f"{SHARE_PREFIX}{s.key}"] = f"{s.name} share of TMV (%)"
    return opts


def exposure_series(df: pd.DataFrame, metric: str) -> pd.Series:
    """The exposure values of ``metric`` (an id of :func:`exposure_options`) as a float Series on df's index."""
    if metric not in exposure_options():
        raise ValueError(f"unknown exposure metric {metric!r}; expected one of {list(_EXPOSURES)} "
                         f"or '{SHARE_PREFIX}<muscle key>'")
    if metric.startswith(SHARE_PREFIX):
        col = volume_column(metric[len(SHARE_PREFIX):])
        require_columns(df, [col, "tmv_cm3"])
        tmv = df["tmv_cm3"].astype(float)
        out = 100.0 * df[col].astype(float) / tmv.where(tmv > 0)
    else:
        require_columns(df, [metric])
        out = df[metric].astype(float)
    return out.rename(metric)


def exposure_columns(metric: str) -> list[str]:
    """The wide-table columns :func:`exposure_series` reads for ``metric``."""
    if metric not in exposure_options():
        raise ValueError(f"unknown exposure metric {metric!r}; expected one of {list(_EXPOSURES)} "
                         f"or '{SHARE_PREFIX}<muscle key>'")
    if metric.startswith(SHARE_PREFIX):
        return [volume_column(metric[len(SHARE_PREFIX):]), "tmv_cm3"]
    return [metric]


# ------------------------------------------------------------------------ forest tables


def _model_frame(df: pd.DataFrame, metric: str, outcomes: Sequence[str], covariates: Sequence[str]
                 ) -> tuple[pd.DataFrame, tuple[float, float]]:
    """High- and low-tertile rows: the 0/1 contrast in ``_high``, outcomes and typed covariates.

    Cut points come from every row with the exposure known (the middle tertile is then left out).
    """
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; expected some of {list(OUTCOMES)}")
    bad = [c for c in covariates if c not in COVARIATES]
    if bad:
        raise ValueError(f"unknown covariate(s) {bad}; expected some of {list(COVARIATES)}")
    require_columns(df, [*outcomes, *covariates])
    x = exposure_series(df, metric)
    known = x.notna()
    if known.sum() < 3:
        raise StatsError(f"only {int(known.sum())} participants have {metric!r}; tertiles need at least 3")
    cuts = tertiles(x[known])
    high = pd.Series(cuts.high_vs_low(), index=x[known].index)
    high = high[high.notna()]
    cols = list(dict.fromkeys([*outcomes, *covariates]))
    part = df.loc[high.index, cols]
    frame = pd.DataFrame({"_high": high.to_numpy()}, index=high.index)
    for c in cols:
        frame[c] = part[c].astype("category") if c in _CATEGORICAL else part[c].astype(float)
    return frame, cuts.cuts


def _used_covariates(frame: pd.DataFrame, covariates: Sequence[str]) -> list[str]:
    """Covariates that vary in the contrast rows (e.g. sex is dropped when the cohort is one sex)."""
    return [c for c in covariates if frame[c].nunique(dropna=True) > 1]


def _or_row(frame: pd.DataFrame, outcome: str, used: Sequence[str], ci: str, confidence: float
            ) -> dict[str, object]:
    """One outcome's model on the contrast rows ``frame``, adjusted for the covariates ``used``."""
    row: dict[str, object] = {"outcome": outcome, "outcome_label": OUTCOMES[outcome], "odds_ratio": np.nan,
                              "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": 0,
                              "events_high": 0, "events_low": 0, "adjusted_for": ", ".join(used), "error": ""}
    contrast = frame[[outcome, "_high", *used]].dropna()
    row["n"] = len(contrast)
    row["events_high"] = int(contrast.loc[contrast["_high"] == 1, outcome].sum())
    row["events_low"] = int(contrast.loc[contrast["_high"] == 0, outcome].sum())
    try:
        res = logistic_or(contrast, outcome, "_high", used, ci=ci, confidence=confidence)
        row.update(odds_ratio=res.odds_ratio, ci_low=res.ci_low, ci_high=res.ci_high, p_value=res.p_value)
    except StatsError as err:
        row["error"] = str(err)
    return row


def forest_table(df: pd.DataFrame, metric: str, outcomes: Sequence[str] = tuple(OUTCOMES),
                 covariates: Sequence[str] = DEFAULT_COVARIATES, ci: str = "profile",
                 confidence: float = 0.95) -> pd.DataFrame:
    """High vs low tertile of ``metric``: one adjusted logistic model per outcome.

    Tertile cut points are the 33rd/67th percentiles of the metric among participants in ``df`` with
    it known (one pair for all outcomes). Covariates constant in the analysed rows are left out and
    the ones used are listed in ``adjusted_for``. Columns: outcome, outcome_label, cut_low, cut_high,
    odds_ratio, ci_low, ci_high, p_value, n, events_high, events_low, adjusted_for, error.
    """
    frame, (c1, c2) = _model_frame(df, metric, outcomes, covariates)
    used = _used_covariates(frame, covariates)
    rows = [_or_row(frame, o, used, ci, confidence) for o in outcomes]
    out = pd.DataFrame(rows)
    out.insert(2, "cut_low", c1)
    out.insert(3, "cut_high", c2)
    return out[_FOREST_COLUMNS]


def sex_stratified(df: pd.DataFrame, metric: str, outcomes: Sequence[str] = tuple(OUTCOMES),
                   covariates: Sequence[str] = DEFAULT_COVARIATES, ci: str = "profile",
                   confidence: float = 0.95) -> pd.DataFrame:
    """High vs low tertile ORs in men and in women (cut points of the whole sample), plus the sex x
    exposure interaction p of the pooled model (adjusted for sex and the other covariates).

    Columns: those of :func:`forest_table` plus sex (1/0), sex_label, interaction_p, interaction_error.
    """
    require_columns(df, ["sex"])
    frame, (c1, c2) = _model_frame(df, metric, outcomes, [*dict.fromkeys([*covariates, "sex"])])
    in_strata = [c for c in covariates if c != "sex"]
    used_pooled = _used_covariates(frame, in_strata)
    strata = {sex: frame[frame["sex"] == sex] for sex in SEX_LABELS}
    used_in = {sex: _used_covariates(part, in_strata) for sex, part in strata.items()}
    rows = []
    for outcome in outcomes:
        inter, inter_error = np.nan, ""
        if min(len(part) for part in strata.values()) == 0:
            inter_error = "the sex x exposure interaction needs both sexes in the cohort"
        else:
            try:
                inter = interaction_p(frame, outcome, "_high", "sex", used_pooled).p_value
            except StatsError as err:
                inter_error = str(err)
        for sex, label in SEX_LABELS.items():
            row = _or_row(strata[sex], outcome, used_in[sex], ci, confidence)
            if strata[sex].empty:
                row["error"] = f"no {label.lower()} in the analysed cohort"
            row.update(sex=sex, sex_label=label, interaction_p=inter, interaction_error=inter_error)
            rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(2, "cut_low", c1)
    out.insert(3, "cut_high", c2)
    return out[[*_FOREST_COLUMNS[:2], "sex", "sex_label", *_FOREST_COLUMNS[2:], "interaction_p",
                "interaction_error"]]
