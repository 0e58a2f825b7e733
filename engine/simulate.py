"""The simulated UK Biobank cohort behind ``msmv demo``: seeded, calibrated, in UKB file formats.

No UK Biobank data can ship, so the demo draws a cohort whose published summaries match the study's
(:mod:`engine.calibration`) and writes it as the files real data arrives in: a ukbconv-style phenotype
CSV and a long per-structure metrics file. Those go through the same importers as real data.

The generating model, per participant (choices in :mod:`engine.simulate_params`):

* sex (exact study shares), age (truncated normal, whole years), height, weight, BMI;
* ALMI = sex mean + age and BMI slopes + a *logistic* residual, so "low muscle mass" is exactly a
  logistic model; DEXA arms/legs split ALM = ALMI x height²; leg L/R asymmetry drawn from the study's
  quartiles, independent of everything (L/R asymmetry has no association by construction);
* the P/A ratio (normal, tertile cuts 0.41 / 0.48); its sample tertile enters every outcome;
* max grip = sex mean + scale x (age, ALMI and P/A-tertile terms + a logistic residual), so weak grip is
  a logistic model whose high-vs-low tertile log-odds is the tuned target;
* TMV = legs lean x exp(age slope + normal noise), the slope solved per sample so the age-stratum
  medians hold; TMV is split into 25 muscles x 2 sides around the P/A ratio; bones scale with height;
* death and falls: logistic models with the target log-odds for the high P/A tertile.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy import optimize, stats

from engine import calibration as cal
from engine import simulate_params as prm
from engine.simulate_structures import structure_table

# UK Biobank field-instance columns written to the phenotype CSV (ukbconv style).
COL_EID = "eid"
COL_SEX = "31-0.0"
COL_AGE = "21003-2.0"
COL_HEIGHT = "50-2.0"
COL_WEIGHT = "21002-2.0"
COL_BMI = "21001-2.0"
COL_GRIP_LEFT = "46-2.0"
COL_GRIP_RIGHT = "47-2.0"
COL_FALLS = "2296-2.0"
COL_ACTIVITY = "22032-0.0"
COL_DEATH = "40000-0.0"
COL_VISIT = "53-2.0"
COL_CENTRE = "54-2.0"
COL_ARM_LEFT = "23263-2.0"
COL_ARM_RIGHT = "23264-2.0"
COL_LEG_LEFT = "23265-2.0"
COL_LEG_RIGHT = "23266-2.0"
PHENOTYPE_COLUMNS: tuple[str, ...] = (
    COL_EID, COL_SEX, COL_AGE, COL_HEIGHT, COL_WEIGHT, COL_BMI, COL_GRIP_LEFT, COL_GRIP_RIGHT, COL_FALLS,
    COL_ACTIVITY, COL_DEATH, COL_VISIT, COL_CENTRE, COL_ARM_LEFT, COL_ARM_RIGHT, COL_LEG_LEFT, COL_LEG_RIGHT,
)  # fmt: skip
METRIC_COLUMNS: tuple[str, ...] = ("eid", "structure", "side", "volume_cm3", "fat_fraction")

PHENOTYPE_FILE = "ukb_phenotypes_simulated.csv"
METRICS_FILE = "structure_metrics_simulated.parquet"

UKB_EID_RANGE = (1_000_000, 6_100_000)  # 7-digit pseudonymised IDs
GRAMS_PER_KG = 1000.0
MIN_GRIP_KG = 2.0  # the lowest reading a Jamar dynamometer gives
MIN_STRATUM_FOR_FIT = 30  # fewer participants in an age stratum: use the default TMV age slope
# Fallbacks when an age stratum is too small to solve a and g on the sample: the values those solves
# give on 300,000 participants (TMV = ALM x legs share x 1000 x exp(a + g (age - 55) + noise)).
TMV_DEFAULT_LOG_RATIO = {"male": -0.487, "female": -0.489}
TMV_DEFAULT_LOG_PER_YEAR = {"male": -0.00495, "female": -0.00424}


@dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort in UK Biobank file shapes.

    ``phenotypes``: one row per participant, ukbconv columns (:data:`PHENOTYPE_COLUMNS`), UKB units
    (DEXA lean masses in grams, grip in whole kg, age in whole years, missing = empty / negative code).
    ``metrics``: long form, one row per participant x structure x side (:data:`METRIC_COLUMNS`).
    """

    phenotypes: pd.DataFrame
    metrics: pd.DataFrame
    seed: int

    @property
    def n(self) -> int:
        return len(self.phenotypes)


@dataclass(frozen=True)
class _People:
    """Per-participant draws (complete, before missingness), shared by the writers and the tuning."""

    eid: np.ndarray
    male: np.ndarray  # bool
    age_exact: np.ndarray
    age: np.ndarray  # whole years, as UKB field 21003
    height: np.ndarray
    weight: np.ndarray
    bmi: np.ndarray
    almi: np.ndarray
    legs_kg: np.ndarray
    arms_kg: np.ndarray
    leg_asym_pct: np.ndarray  # signed (left - right) / mean x 100
    arm_asym: np.ndarray
    grip_max: np.ndarray
    grip_other: np.ndarray
    right_is_max: np.ndarray
    pa: np.ndarray
    tertile: np.ndarray  # 0 low, 1 middle, 2 high
    tmv: np.ndarray
    died: np.ndarray
    fell: np.ndarray
    rng: np.random.Generator  # continues the stream for the later draws


def simulate_cohort(n: int = cal.N_PARTICIPANTS, seed: int = 0) -> SimulatedCohort:
    """Draw a calibrated cohort of ``n`` participants; the same ``(n, seed)`` gives identical frames.

    Raises
    ------
    TypeError
        ``n`` or ``seed`` is not an int.
    ValueError
        ``n`` is below 1 or above the number of available 7-digit UKB-style IDs.
    """
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    max_n = UKB_EID_RANGE[1] - UKB_EID_RANGE[0]
    if not 1 <= n <= max_n:
        raise ValueError(f"n must be between 1 and {max_n:,}, got {n:,}")
    people = _draw_people(int(n), int(seed))
    phenotypes = _phenotype_frame(people)
    metrics = structure_table(
        eid=people.eid, male=people.male, age=people.age_exact, height=people.height,
        tmv=people.tmv, pa=people.pa, rng=people.rng,
    )  # fmt: skip
    return SimulatedCohort(phenotypes=phenotypes, metrics=metrics, seed=int(seed))


def _sex_value(male: np.ndarray, values: dict[str, float] | object) -> np.ndarray:
    return np.where(male, values["male"], values["female"])  # type: ignore[index]


def _logistic(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.logistic(0.0, 1.0, n)


def _draw_people(n: int, seed: int) -> _People:
    rng = np.random.default_rng(seed)
    eid = np.sort(rng.choice(UKB_EID_RANGE[1] - UKB_EID_RANGE[0], size=n, replace=False)) + UKB_EID_RANGE[0]
    n_men = round(n * cal.MALE_SHARE)
    male = np.zeros(n, dtype=bool)
    male[rng.choice(n, size=n_men, replace=False)] = True

    lo = (cal.AGE_MIN - prm.AGE_TRUNCNORM_LOC) / prm.AGE_TRUNCNORM_SCALE
    hi = (prm.AGE_UPPER - prm.AGE_TRUNCNORM_LOC) / prm.AGE_TRUNCNORM_SCALE
    age_exact = stats.truncnorm.rvs(
        lo, hi, loc=prm.AGE_TRUNCNORM_LOC, scale=prm.AGE_TRUNCNORM_SCALE, size=n, random_state=rng
    )
    age_exact = np.minimum(age_exact, np.nextafter(prm.AGE_UPPER, 0.0))
    age = np.floor(age_exact)
    age_c = age_exact - (cal.AGE_MEAN + 0.5)  # centred on the continuous mean

    height = (
        _sex_value(male, cal.HEIGHT_CM)
        + prm.HEIGHT_PER_YEAR_CM * age_c
        + rng.standard_normal(n) * _sex_value(male, prm.HEIGHT_SD_CM)
    )
    height_dev = height - _sex_value(male, cal.HEIGHT_CM)
    weight = (
        _sex_value(male, cal.WEIGHT_KG)
        + _sex_value(male, prm.WEIGHT_PER_HEIGHT_CM) * height_dev
        + rng.standard_normal(n) * _sex_value(male, prm.WEIGHT_SD_KG)
    )
    weight = np.maximum(weight, 38.0)  # clip a rare far tail; moves the mean by < 0.01 kg
    height = np.round(height, 1)
    weight = np.round(weight, 1)
    bmi = weight / (height / 100.0) ** 2

    pa_ratio = (
        prm.PA_MEAN
        + prm.PA_PER_YEAR * age_c
        + rng.standard_normal(n) * np.sqrt(prm.PA_SD**2 - (prm.PA_PER_YEAR * cal.AGE_SD) ** 2)
    )
    c1, c2 = np.quantile(pa_ratio, [1 / 3, 2 / 3])
    tertile = np.where(pa_ratio < c1, 0, np.where(pa_ratio > c2, 2, 1))
    high = (tertile == 2).astype(float)
    mid = (tertile == 1).astype(float)

    # ALMI with a logistic residual; every term centred per sex so the sex means are the targets.
    almi_scale = _sex_value(male, prm.ALMI_LOGISTIC_SCALE)
    almi_terms = (
        _sex_value(male, prm.ALMI_PER_YEAR) * age_c
        + prm.ALMI_PER_BMI * _centre_by_sex(bmi, male)
        - almi_scale * prm.ALMI_PA_HIGH_SHIFT * (high + 0.5 * mid)
        + almi_scale * _logistic(rng, n)
    )
    almi = _sex_value(male, cal.ALMI) + _centre_by_sex(almi_terms, male)
    low_mass = almi < _sex_value(male, cal.LOW_ALMI_BELOW)

    alm = almi * (height / 100.0) ** 2
    legs_share_mean = _sex_value(male, prm.LEGS_SHARE_OF_ALM)
    legs_share_z = rng.standard_normal(n)
    leg_asym_pct = _asymmetry_pct(rng, n) * rng.choice([-1.0, 1.0], size=n)
    arm_asym = prm.ARM_ASYM_SD * rng.standard_normal(n)

    # Max grip: logistic residual, so weak grip (a cut on grip) is a logistic model in these terms.
    almi_z = _centre_by_sex(almi, male) / _sd_by_sex(almi, male)
    pa_effect = np.where(low_mass, prm.GRIP_PA_HIGH_LOW_MASS, prm.GRIP_PA_HIGH)
    grip_units = -prm.GRIP_AGE_PER_YEAR * age_c - pa_effect * (high + 0.5 * mid) + _logistic(rng, n)
    grip_max = np.empty(n)
    for sex, group in (("male", male), ("female", ~male)):
        grip_max[group] = _grip_for_sarcopenia(sex, grip_units[group], almi_z[group], low_mass[group])
    grip_other = np.round(grip_max * (1.0 - np.abs(prm.GRIP_OTHER_HAND_SD * rng.standard_normal(n))))
    right_is_max = rng.random(n) < prm.GRIP_RIGHT_IS_MAX

    # TMV follows ALM scaled to the legs (so legs-share noise lowers r(TMV, legs) but not r(TVI, ALMI)).
    tmv_z = rng.standard_normal(n)
    tmv_base = alm * legs_share_mean

    def tmv_for(sd: float) -> np.ndarray:
        return _tmv(tmv_base, age_exact, age, male, sd * tmv_z)

    def legs_for(sd: float) -> np.ndarray:
        return alm * (legs_share_mean + sd * legs_share_z)

    tmv_sd = _solve_for_r(lambda sd: _r(tmv_for(sd) / height**2, almi), cal.R_TVI_ALMI, prm.TMV_LOG_SD, n)
    tmv = tmv_for(tmv_sd)
    legs_sd = _solve_for_r(lambda sd: _r(tmv, legs_for(sd)), cal.R_TMV_LEGS_LEAN, prm.LEGS_SHARE_SD, n)
    legs_kg = legs_for(legs_sd)
    arms_kg = alm - legs_kg

    died = rng.random(n) < _expit(
        _logit(prm.DIED_BASE_RISK)
        + prm.DIED_PER_YEAR * age_c
        + prm.DIED_MALE * male
        + np.log(cal.PA_HIGH_VS_LOW_OR["died"]) * (high + 0.5 * mid)
    )
    fell = rng.random(n) < _expit(
        _logit(prm.FALLS_BASE_RISK)
        + prm.FALLS_PER_YEAR * age_c
        + prm.FALLS_MALE * male
        + np.log(cal.PA_HIGH_VS_LOW_OR["falls"]) * (high + 0.5 * mid)
    )
    return _People(
        eid=eid, male=male, age_exact=age_exact, age=age, height=height, weight=weight, bmi=bmi, almi=almi,
        legs_kg=legs_kg, arms_kg=arms_kg, leg_asym_pct=leg_asym_pct, arm_asym=arm_asym, grip_max=grip_max,
        grip_other=grip_other, right_is_max=right_is_max, pa=pa_ratio, tertile=tertile, tmv=tmv, died=died,
        fell=fell, rng=rng,
    )  # fmt: skip


MIN_N_FOR_SAMPLE_FIT = 2_000  # smaller cohorts use the tuned defaults instead of per-sample solves


def _r(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def _solve_for_r(r_of: Callable[[float], float], target: float, default: float, n: int) -> float:
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


def _grip_for_sarcopenia(sex: str, units: np.ndarray, almi_z: np.ndarray, low_mass: np.ndarray) -> np.ndarray:
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


def _centre_by_sex(x: np.ndarray, male: np.ndarray) -> np.ndarray:
    out = np.asarray(x, dtype=float).copy()
    for group in (male, ~male):
        if group.any():
            out[group] -= out[group].mean()
    return out


def _sd_by_sex(x: np.ndarray, male: np.ndarray) -> np.ndarray:
    sd = np.ones_like(x, dtype=float)
    for group in (male, ~male):
        if group.sum() > 1:
            sd[group] = max(float(x[group].std()), 1e-12)
    return sd


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _asymmetry_pct(rng: np.random.Generator, n: int) -> np.ndarray:
    """|L - R| / mean x 100 from a monotone quantile function through the study's quartiles."""
    q1, q3 = cal.LR_ASYM_IQR_PCT
    probs = np.array([0.0, 0.25, 0.5, 0.75, 0.95, 0.999, 1.0])
    # Tail knots continue the upper quartile's spacing; they are not published figures.
    values = np.array([0.0, q1, cal.LR_ASYM_MEDIAN_PCT, q3, 8.2, 14.0, 18.0])
    from scipy.interpolate import PchipInterpolator

    return PchipInterpolator(probs, values)(rng.random(n))


def _tmv(
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


def _phenotype_frame(p: _People) -> pd.DataFrame:
    """UKB-style phenotype rows with realistic missingness (missing at random, seeded)."""
    rng = p.rng
    n = len(p.eid)
    grip_left = np.where(p.right_is_max, p.grip_other, p.grip_max)
    grip_right = np.where(p.right_is_max, p.grip_max, p.grip_other)
    no_grip = rng.random(n) < prm.MISSING_GRIP
    grip_left = np.where(no_grip, np.nan, grip_left)
    grip_right = np.where(no_grip, np.nan, grip_right)

    half = p.leg_asym_pct / 200.0
    leg_left = p.legs_kg / 2.0 * (1.0 + half) * GRAMS_PER_KG
    leg_right = p.legs_kg / 2.0 * (1.0 - half) * GRAMS_PER_KG
    arm_left = p.arms_kg / 2.0 * (1.0 + p.arm_asym) * GRAMS_PER_KG
    arm_right = p.arms_kg / 2.0 * (1.0 - p.arm_asym) * GRAMS_PER_KG
    no_dexa = rng.random(n) < prm.MISSING_DEXA
    dexa = [np.where(no_dexa, np.nan, np.round(x)) for x in (arm_left, arm_right, leg_left, leg_right)]

    falls = np.where(p.fell, np.where(rng.random(n) < prm.FALLS_MORE_THAN_ONE, 3, 2), 1)
    u = rng.random(n)
    falls = np.where(
        u < prm.FALLS_DONT_KNOW, -1, np.where(u < prm.FALLS_DONT_KNOW + prm.FALLS_PREFER_NOT, -3, falls)
    )
    activity = rng.choice(3, size=n, p=prm.ACTIVITY_GROUP_SHARES).astype(float)
    activity[rng.random(n) < prm.MISSING_ACTIVITY] = np.nan

    first, last = np.datetime64(prm.VISIT_FIRST), np.datetime64(prm.VISIT_LAST)
    visit = first + rng.integers(0, int((last - first).astype(int)) + 1, size=n).astype("timedelta64[D]")
    end = np.datetime64(prm.DEATH_FOLLOW_UP_END)
    span = (end - visit).astype(int)
    death = visit + np.maximum(1, np.floor(rng.random(n) * span)).astype(int).astype("timedelta64[D]")
    death_text = np.where(p.died, np.datetime_as_string(death, unit="D"), "")
    centres = np.array(list(prm.CENTRES))
    centre = rng.choice(centres, size=n, p=np.array(list(prm.CENTRES.values())))

    return pd.DataFrame(
        {
            COL_EID: p.eid.astype(np.int64),
            COL_SEX: p.male.astype(np.int64),
            COL_AGE: p.age.astype(np.int64),
            COL_HEIGHT: p.height,
            COL_WEIGHT: p.weight,
            COL_BMI: np.round(p.bmi, 4),
            COL_GRIP_LEFT: pd.array(grip_left, dtype="Int64"),
            COL_GRIP_RIGHT: pd.array(grip_right, dtype="Int64"),
            COL_FALLS: falls.astype(np.int64),
            COL_ACTIVITY: pd.array(activity, dtype="Int64"),
            COL_DEATH: death_text,
            COL_VISIT: np.datetime_as_string(visit, unit="D"),
            COL_CENTRE: centre.astype(np.int64),
            COL_ARM_LEFT: pd.array(dexa[0], dtype="Int64"),
            COL_ARM_RIGHT: pd.array(dexa[1], dtype="Int64"),
            COL_LEG_LEFT: pd.array(dexa[2], dtype="Int64"),
            COL_LEG_RIGHT: pd.array(dexa[3], dtype="Int64"),
        },
        columns=list(PHENOTYPE_COLUMNS),
    )


def write_demo_files(cohort: SimulatedCohort, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``cohort`` as a ukbconv-style phenotype CSV and a Parquet metrics file in ``folder``.

    Returns ``(phenotype_csv_path, metrics_parquet_path)``. Files are written to a temporary name and
    renamed, so a reader never sees half a file. The same cohort gives byte-identical files.
    """
    if not isinstance(cohort, SimulatedCohort):
        raise TypeError(f"cohort must be a SimulatedCohort, got {type(cohort).__name__}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / PHENOTYPE_FILE
    parquet_path = out / METRICS_FILE

    table = pa.Table.from_pandas(cohort.phenotypes, preserve_index=False)
    tmp_csv = csv_path.with_name(csv_path.name + ".part")
    pacsv.write_csv(table, tmp_csv, write_options=pacsv.WriteOptions(quoting_style="none"))
    os.replace(tmp_csv, csv_path)

    metrics = pa.Table.from_pandas(cohort.metrics, preserve_index=False)
    tmp_parquet = parquet_path.with_name(parquet_path.name + ".part")
    pq.write_table(metrics, tmp_parquet, compression="zstd", row_group_size=1_048_576)
    os.replace(tmp_parquet, parquet_path)
    return csv_path, parquet_path
