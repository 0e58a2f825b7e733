"""One participant against a reference group: percentiles and z-scores (the Subject page and its report).

The reference group of a participant is everyone else of the same sex whose age is within
``AGE_BAND_YEARS`` of theirs (both ends inclusive), the person themself excluded. For each metric the
group is further restricted to those with a known value, and its size is reported with the result.

- percentile = 100 × (number in the group with a smaller value + ½ × number with an equal value) / n
  (``scipy.stats.percentileofscore(kind="mean")``), so ties split evenly and a median person scores 50;
- z-score = (value − group mean) / group SD (sample SD, ``ddof=1``).

Both are ``nan`` when the value is unknown or the group is too small (no one, or one person for z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from store.structures import SIDES, STRUCTURES
from store.vocabulary import SEX_LABELS, fat_fraction_column, volume_column

AGE_BAND_YEARS = 5.0  # reference group: same sex, age within ±5 years (wide enough for stable percentiles)
# Derived metrics shown against the reference on the Subject page and in the report.
DERIVED_METRICS: tuple[str, ...] = (
    "tmv_cm3", "tvi", "pa_ratio", "lr_asym_mri_pct", "muscle_strength", "grip_max_kg", "almi", "alm_kg",
    "legs_lean_kg", "lr_asym_dexa_pct", "bmi",
)  # fmt: skip
_RESULT_COLUMNS = ["column", "value", "percentile", "z_score", "n_ref", "ref_mean", "ref_sd"]


def percentile_rank(value: float, reference: np.ndarray | pd.Series) -> float:
    """Share (%) of ``reference`` below ``value``, counting ties as half; NaNs in ``reference`` ignored."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[~np.isnan(ref)]
    if value is None or not math.isfinite(float(value)) or ref.size == 0:
        return float("nan")
    v = float(value)
    below = np.count_nonzero(ref < v)
    ties = np.count_nonzero(ref == v)
    return float(100.0 * (below + 0.5 * ties) / ref.size)


def z_score(value: float, reference: np.ndarray | pd.Series) -> float:
    """(value − mean) / sample SD of ``reference`` (NaNs ignored); ``nan`` if fewer than two or SD is 0."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[~np.isnan(ref)]
    if value is None or not math.isfinite(float(value)) or ref.size < 2:
        return float("nan")
    sd = float(ref.std(ddof=1))
    return float((float(value) - ref.mean()) / sd) if sd > 0 else float("nan")


@dataclass(frozen=True)
class ReferenceGroup:
    """Who a participant is compared with."""

    eid: int
    sex: int | None
    age: float | None
    band_years: float
    mask: pd.Series  # over the rows of the frame it was built from

    @property
    def n(self) -> int:
        return int(self.mask.sum())

    @property
    def description(self) -> str:
        if self.sex is None or self.age is None:
            return "no reference group (sex or age unknown)"
        who = SEX_LABELS[self.sex].lower() if self.sex in SEX_LABELS else f"participants of sex {self.sex}"
        lo, hi = self.age - self.band_years, self.age + self.band_years
        return f"{self.n:,} {who} aged {lo:.0f}–{hi:.0f}"


def subject_row(df: pd.DataFrame, eid: int) -> pd.Series:
    """The wide-table row of ``eid``; ``ValueError`` when it is not in ``df``."""
    if "eid" not in df.columns:
        raise ValueError(f"the participant table needs an 'eid' column, found {list(df.columns)[:8]}")
    rows = df.loc[df["eid"] == int(eid)]
    if rows.empty:
        raise ValueError(f"participant {eid} is not in the store")
    return rows.iloc[0]


def reference_group(df: pd.DataFrame, eid: int, *, band_years: float = AGE_BAND_YEARS) -> ReferenceGroup:
    """Same sex, age within ±``band_years``, ``eid`` excluded (an empty group if sex or age is unknown)."""
    if not band_years >= 0:
        raise ValueError(f"band_years must be >= 0, found {band_years!r}")
    missing = [c for c in ("eid", "sex", "age") if c not in df.columns]
    if missing:
        raise ValueError(f"the participant table lacks {missing}")
    row = subject_row(df, eid)
    sex = None if pd.isna(row["sex"]) else int(row["sex"])
    age = None if pd.isna(row["age"]) else float(row["age"])
    if sex is None or age is None:
        return ReferenceGroup(int(eid), sex, age, band_years, pd.Series(False, index=df.index))
    mask = (df["sex"] == sex) & (df["age"] - age).abs().le(band_years) & (df["eid"] != int(eid))
    return ReferenceGroup(int(eid), sex, age, band_years, mask.fillna(False).astype(bool))


def compare(df: pd.DataFrame, eid: int, columns: list[str] | tuple[str, ...], *,
            band_years: float = AGE_BAND_YEARS) -> pd.DataFrame:
    """Per column: the person's value, percentile, z-score, the group's size, mean and SD."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"cannot compare unknown column(s) {missing}")
    group = reference_group(df, eid, band_years=band_years)
    row = subject_row(df, eid)
    ref = df.loc[group.mask]
    out = []
    for col in columns:
        value = pd.to_numeric(pd.Series([row[col]]), errors="coerce").iloc[0]
        values = pd.to_numeric(ref[col], errors="coerce").to_numpy(dtype=np.float64)
        known = values[~np.isnan(values)]
        out.append((col, float(value), percentile_rank(value, known), z_score(value, known), int(known.size),
                    float(known.mean()) if known.size else float("nan"),
                    float(known.std(ddof=1)) if known.size > 1 else float("nan")))
    return pd.DataFrame(out, columns=_RESULT_COLUMNS)


def _asymmetry_pct(left: float, right: float) -> float:
    mean = (left + right) / 2.0
    return float(abs(left - right) / mean * 100.0) if mean > 0 else float("nan")


def structure_table(df: pd.DataFrame, eid: int, *, band_years: float = AGE_BAND_YEARS) -> pd.DataFrame:
    """One row per structure: volumes L/R/total, asymmetry, fat fraction, percentiles and z-score.

    ``percentile`` and ``z_score`` refer to the total (left + right) volume; ``percentile_left`` and
    ``percentile_right`` to each side's volume (the muscle map colours sides separately); ``n_ref``
    is the group size with a known total volume.
    """
    cols = [volume_column(s.key, side) for s in STRUCTURES for side in (None, *SIDES)]
    cmp = compare(df, eid, cols, band_years=band_years).set_index("column")
    row = subject_row(df, eid)
    rows = []
    for s in STRUCTURES:
        total, left, right = (cmp.loc[volume_column(s.key, side)] for side in (None, *SIDES))
        ff_col = fat_fraction_column(s.key)
        ff = float(row[ff_col]) if ff_col in row.index and pd.notna(row[ff_col]) else float("nan")
        rows.append({
            "label": s.label, "key": s.key, "name": s.name, "compartment": s.compartment,
            "left_cm3": left["value"], "right_cm3": right["value"], "volume_cm3": total["value"],
            "asymmetry_pct": _asymmetry_pct(left["value"], right["value"]), "fat_fraction": ff,
            "percentile": total["percentile"], "z_score": total["z_score"],
            "percentile_left": left["percentile"], "percentile_right": right["percentile"],
            "n_ref": int(total["n_ref"]),
        })
    return pd.DataFrame(rows)


def ewgsop2_status(row: pd.Series) -> str:
    """EWGSOP2 category from the wide-table flags: sarcopenia, probable sarcopenia, no sarcopenia or unknown."""
    def flag(name: str) -> int | None:
        v = row.get(name)
        return None if v is None or pd.isna(v) else int(v)

    weak, low = flag("weak_grip"), flag("low_muscle_mass")
    if weak is None:
        return "unknown (grip strength missing)"
    if weak == 0:
        return "no sarcopenia (normal grip strength)"
    if low is None:
        return "probable sarcopenia (weak grip; muscle mass unknown)"
    return "sarcopenia (weak grip and low muscle mass)" if low == 1 else "probable sarcopenia (weak grip only)"


def band_z_scores(df: pd.DataFrame, columns: list[str] | tuple[str, ...], *,
                  band_years: float = AGE_BAND_YEARS) -> pd.DataFrame:
    """Every participant's :func:`compare` z-score of each column at once (same index and columns as asked).

    The same reference group as :func:`reference_group` (same sex, age within ±``band_years``, the
    person excluded, only known values), from running sums over the age-sorted rows of each sex, so a
    whole cohort costs O(n log n) per column instead of one pass over it per participant. ``nan`` where
    the value, sex or age is unknown, or the group has fewer than two values or no spread.
    """
    missing = [c for c in ("sex", "age", *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"the participant table lacks {missing}")
    if not band_years >= 0:
        raise ValueError(f"band_years must be >= 0, found {band_years!r}")
    out = pd.DataFrame(np.nan, index=df.index, columns=list(columns), dtype=np.float64)
    sex = pd.to_numeric(df["sex"], errors="coerce").to_numpy(dtype=np.float64)
    age = pd.to_numeric(df["age"], errors="coerce").to_numpy(dtype=np.float64)
    values = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns}
    for s in np.unique(sex[~np.isnan(sex)]):
        rows = np.flatnonzero((sex == s) & ~np.isnan(age))
        rows = rows[np.argsort(age[rows], kind="stable")]
        a = age[rows]
        lo = np.searchsorted(a, a - band_years, side="left")
        hi = np.searchsorted(a, a + band_years, side="right")
        for c, x_all in values.items():
            x = x_all[rows]
            known = ~np.isnan(x)
            centre = float(np.nanmean(x)) if known.any() else 0.0  # centred sums keep the variance exact
            d = np.where(known, x - centre, 0.0)
            count, total, squares = (np.concatenate([[0.0], np.cumsum(v)]) for v in (known.astype(float), d, d * d))
            n = count[hi] - count[lo] - known
            s1 = total[hi] - total[lo] - d
            s2 = squares[hi] - squares[lo] - d * d
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = s1 / n
                var = (s2 - s1 * mean) / (n - 1)
                z = (d - mean) / np.sqrt(var)
            ok = known & (n >= 2) & (var > 0)
            out.iloc[rows[ok], out.columns.get_loc(c)] = z[ok]
    return out
