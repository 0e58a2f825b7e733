"""The simulated UK Biobank cohort behind ``msmv demo``: seeded, calibrated, in UKB file formats.

No UK Biobank data can ship, so the demo draws a cohort whose published summaries match the study's
(:mod:`engine.demo.cohort.targets`) and writes it as the files real data arrives in: a ukbconv-style phenotype
CSV and a long per-structure metrics file. Those go through the same importers as real data.

The generating model, per participant (choices in :mod:`engine.demo.cohort.params`):

* sex (exact study shares), age (truncated normal, whole years), height, weight, BMI;
* ALMI = sex mean + age and BMI slopes + a P/A-tertile shift + a *logistic* residual, so "low muscle
  mass" is exactly a logistic model; DEXA arms/legs split ALM = ALMI x height²;
* the P/A ratio (normal, tertile cuts 0.41 / 0.48 at the analyses' 33rd / 67th percentiles); its sample
  tertile enters every outcome (the middle tertile half the high tertile's effect);
* max grip = sex mean + scale x (age, ALMI and P/A-tertile terms + a logistic residual), so weak grip is
  a logistic model; the P/A effect differs between normal and low muscle mass, which steers the
  sarcopenia (weak grip and low ALMI) OR apart from the weak-grip OR; how much grip follows ALMI is
  solved per sample so sarcopenia has the study's prevalence by sex;
* TMV = ALM x (mean legs share) x exp(age slope + normal noise), the age slope and level solved per
  sample so the age-stratum medians hold and the noise SD so r(TVI, ALMI) holds; the legs share's
  spread is solved so r(TMV, legs lean) holds (:mod:`engine.demo.cohort.solve`); TMV is split into
  25 muscles x 2 sides around the P/A ratio; bones scale with height;
* death and falls: logistic models in age, sex and the P/A tertile;
* AMRA's thigh volumes and fat infiltration (fields 22403-22409, 22435) from the MSMV structures, on a
  random stream of their own (assumptions in :mod:`engine.demo.cohort.amra`).

Per sample (cohorts of at least ``MIN_N_FOR_SAMPLE_FIT``), with every random draw fixed, each P/A effect
(ALMI shift, the two grip effects, death, falls) is root-found so the sample's high-vs-low tertile log
OR, averaged over the analyses' two adjustments (age + sex; age, sex, BMI, activity group), is the
study's: the Associations page then shows the generating ORs on the demo, not only in expectation.
L/R asymmetry (DEXA legs and MRI TMV) is drawn independently of everything and then spread evenly
within every outcome x sex x age-band cell, so its ORs are null in the sample too.
Missing grip / DEXA / falls answers and the activity group are drawn before the solves, so these fit
on the rows the analyses will use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy import stats

from engine.cohort.stats import TERTILE_PERCENTILES
from engine.demo.cohort import params as prm
from engine.demo.cohort import targets as cal
from engine.demo.cohort.amra import AMRA_COLUMNS, simulate_amra
from engine.demo.cohort.solve import (
    MIN_N_FOR_SAMPLE_FIT,
    HighVsLow,
    asymmetry_pct,
    centre_by_sex,
    corr,
    expit,
    grip_for_sarcopenia,
    logit,
    sd_by_sex,
    solve_effect,
    solve_for_r,
    spread_within,
    tmv_by_age,
)
from engine.demo.cohort.structures import structure_table
from store.files import atomic_path

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
COL_ARM_LEFT = "23250-2.0"
COL_ARM_RIGHT = "23254-2.0"
COL_LEG_LEFT = "23267-2.0"
COL_LEG_RIGHT = "23271-2.0"
_DRAWN_COLUMNS: tuple[str, ...] = (
    COL_EID, COL_SEX, COL_AGE, COL_HEIGHT, COL_WEIGHT, COL_BMI, COL_GRIP_LEFT, COL_GRIP_RIGHT, COL_FALLS,
    COL_ACTIVITY, COL_DEATH, COL_VISIT, COL_CENTRE, COL_ARM_LEFT, COL_ARM_RIGHT, COL_LEG_LEFT, COL_LEG_RIGHT,
)  # fmt: skip
# AMRA's columns come last: they are derived from the structure table (engine.demo.cohort.amra).
PHENOTYPE_COLUMNS: tuple[str, ...] = (*_DRAWN_COLUMNS, *AMRA_COLUMNS)
METRIC_COLUMNS: tuple[str, ...] = ("eid", "structure", "side", "volume_cm3", "fat_fraction")

PHENOTYPE_FILE = "ukb_phenotypes_simulated.csv"
METRICS_FILE = "structure_metrics_simulated.parquet"
ROWS_PER_PARTICIPANT = 54  # 27 structures x 2 sides, in eid order
PARTICIPANTS_PER_ROW_GROUP = 20_000  # Parquet row groups hold whole participants (chunked imports)

UKB_EID_RANGE = (1_000_000, 6_100_000)  # 7-digit pseudonymised IDs
GRAMS_PER_KG = 1000.0
# Rounds of the alternating weak-grip / sarcopenia solve; the ORs settle within one flip after two.
GRIP_SOLVE_ROUNDS = 3
ASYM_AGE_BAND_YEARS = 5  # age bands of the cells leg L/R asymmetry is spread evenly within


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
class _Missing:
    """Who has no grip / no DEXA reading, the falls answer code (0 answered, -1, -3), activity group."""

    grip: np.ndarray
    dexa: np.ndarray
    falls_code: np.ndarray
    activity: np.ndarray  # IPAQ group 0/1/2, NaN when not known (drawn here: an analysis covariate)


def _draw_missing(rng: np.random.Generator, n: int) -> _Missing:
    no_grip = rng.random(n) < prm.MISSING_GRIP
    no_dexa = rng.random(n) < prm.MISSING_DEXA
    u = rng.random(n)
    falls_code = np.where(
        u < prm.FALLS_DONT_KNOW, -1, np.where(u < prm.FALLS_DONT_KNOW + prm.FALLS_PREFER_NOT, -3, 0)
    )
    activity = rng.choice(3, size=n, p=prm.ACTIVITY_GROUP_SHARES).astype(float)
    activity[rng.random(n) < prm.MISSING_ACTIVITY] = np.nan
    return _Missing(grip=no_grip, dexa=no_dexa, falls_code=falls_code, activity=activity)


def _outcome(
    u: np.ndarray, base_logit: np.ndarray, exposure: np.ndarray, name: str, adjusted: HighVsLow | None
) -> np.ndarray:
    """``u < expit(base + effect x exposure)``: the effect solved so the sample OR is the target.

    With ``adjusted`` None (a small cohort) the effect is the target log OR itself.
    """
    target = cal.PA_HIGH_VS_LOW_OR[name]

    def outcome(effect: float) -> np.ndarray:
        return u < expit(base_logit + effect * exposure)

    effect = float(np.log(target))
    if adjusted is not None:
        effect = solve_effect(lambda e: adjusted.log_or(outcome(e)), target, effect)
    return outcome(effect)


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
    missing: _Missing
    outcome_cells: np.ndarray  # outcomes x sex x age band: L/R asymmetries are spread evenly within
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
        tmv=people.tmv, pa=people.pa, rng=people.rng, asym_cells=people.outcome_cells,
    )  # fmt: skip
    amra = simulate_amra(metrics, int(seed))  # one row per eid, in the phenotypes' eid order
    phenotypes = pd.concat([phenotypes, amra.drop(columns="eid")], axis=1)[list(PHENOTYPE_COLUMNS)]
    return SimulatedCohort(phenotypes=phenotypes, metrics=metrics, seed=int(seed))


def _sex_value(male: np.ndarray, values: Mapping[str, float]) -> np.ndarray:
    return np.where(male, values["male"], values["female"])


def _logistic(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.logistic(0.0, 1.0, n)


def _draw_people(n: int, seed: int, *, solve_ors: bool = True) -> _People:
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
    c1, c2 = np.percentile(pa_ratio, TERTILE_PERCENTILES)  # the analyses' cut points
    tertile = np.where(pa_ratio < c1, 0, np.where(pa_ratio > c2, 2, 1))
    high = (tertile == 2).astype(float)
    mid = (tertile == 1).astype(float)

    # Missingness is drawn here so the per-sample solves fit on the rows the analyses will have.
    missing = _draw_missing(rng, n)
    solve = solve_ors and n >= MIN_N_FOR_SAMPLE_FIT  # off: the tuned defaults (engine.demo.cohort.tune)
    high_or_low = tertile != 1

    sex01 = male.astype(float)
    activity = [np.where(np.isnan(missing.activity), np.nan, missing.activity == level) for level in (1, 2)]
    adjustments = ([age, sex01], [age, sex01, np.round(bmi, 4), *activity])  # the analyses' two defaults

    def adjusted(*known: np.ndarray) -> HighVsLow:
        rows = high_or_low.copy()
        for k in known:
            rows &= k
        return HighVsLow(rows, high, adjustments)

    # ALMI with a logistic residual; every term centred per sex so the sex means are the targets.
    almi_scale = _sex_value(male, prm.ALMI_LOGISTIC_SCALE)
    almi_base = (
        _sex_value(male, prm.ALMI_PER_YEAR) * age_c
        + prm.ALMI_PER_BMI * centre_by_sex(bmi, male)
        + almi_scale * _logistic(rng, n)
    )
    low_almi_cut = _sex_value(male, cal.LOW_ALMI_BELOW)

    def almi_for(shift: float) -> np.ndarray:
        terms = almi_base - almi_scale * shift * (high + 0.5 * mid)
        return _sex_value(male, cal.ALMI) + centre_by_sex(terms, male)

    almi_shift = prm.ALMI_PA_HIGH_SHIFT
    if solve:
        low_mass_or = adjusted(~missing.dexa)
        almi_shift = solve_effect(
            lambda e: low_mass_or.log_or(almi_for(e) < low_almi_cut),
            cal.PA_HIGH_VS_LOW_OR["low_muscle_mass"], almi_shift,
        )  # fmt: skip
    almi = almi_for(almi_shift)
    low_mass = almi < low_almi_cut

    alm = almi * (height / 100.0) ** 2
    legs_share_mean = _sex_value(male, prm.LEGS_SHARE_OF_ALM)
    legs_share_z = rng.standard_normal(n)
    asym_key, asym_jitter = rng.random(n), rng.random(n)
    asym_sign = rng.choice([-1.0, 1.0], size=n)
    arm_asym = prm.ARM_ASYM_SD * rng.standard_normal(n)

    # Max grip: logistic residual, so weak grip (a cut on grip) is a logistic model in these terms.
    almi_z = centre_by_sex(almi, male) / sd_by_sex(almi, male)
    grip_base = -prm.GRIP_AGE_PER_YEAR * age_c + _logistic(rng, n)
    weak_cut = _sex_value(male, cal.WEAK_GRIP_BELOW_KG)

    def grip_for(effect: float, effect_low_mass: float) -> np.ndarray:
        units = grip_base - np.where(low_mass, effect_low_mass, effect) * (high + 0.5 * mid)
        out = np.empty(n)
        for sex, group in (("male", male), ("female", ~male)):
            out[group] = grip_for_sarcopenia(sex, units[group], almi_z[group], low_mass[group])
        return out

    grip_effect, grip_effect_low_mass = prm.GRIP_PA_HIGH, prm.GRIP_PA_HIGH_LOW_MASS
    if solve:
        # Weak grip's OR follows mostly the effect in normal muscle mass, sarcopenia's the effect in low
        # muscle mass (grip-on-ALMI re-solved inside for the prevalence by sex): alternate the two.
        weak_or = adjusted(~missing.grip)
        sarcopenia_or = adjusted(~missing.grip, ~missing.dexa)
        for _ in range(GRIP_SOLVE_ROUNDS):
            in_low_mass = grip_effect_low_mass
            grip_effect = solve_effect(
                lambda e, c=in_low_mass: weak_or.log_or(grip_for(e, c) < weak_cut),
                cal.PA_HIGH_VS_LOW_OR["weak_grip"], grip_effect,
            )  # fmt: skip
            in_normal_mass = grip_effect
            grip_effect_low_mass = solve_effect(
                lambda e, b=in_normal_mass: sarcopenia_or.log_or((grip_for(b, e) < weak_cut) & low_mass),
                cal.PA_HIGH_VS_LOW_OR["sarcopenia"], grip_effect_low_mass,
            )  # fmt: skip
    grip_max = grip_for(grip_effect, grip_effect_low_mass)
    grip_other = np.round(grip_max * (1.0 - np.abs(prm.GRIP_OTHER_HAND_SD * rng.standard_normal(n))))
    right_is_max = rng.random(n) < prm.GRIP_RIGHT_IS_MAX

    # TMV follows ALM scaled to the legs (so legs-share noise lowers r(TMV, legs) but not r(TVI, ALMI)).
    tmv_z = rng.standard_normal(n)
    tmv_base = alm * legs_share_mean

    def tmv_for(sd: float) -> np.ndarray:
        return tmv_by_age(tmv_base, age_exact, age, male, sd * tmv_z)

    def legs_for(sd: float) -> np.ndarray:
        return alm * (legs_share_mean + sd * legs_share_z)

    tmv_sd = solve_for_r(lambda sd: corr(tmv_for(sd) / height**2, almi), cal.R_TVI_ALMI, prm.TMV_LOG_SD, n)
    tmv = tmv_for(tmv_sd)
    legs_sd = solve_for_r(lambda sd: corr(tmv, legs_for(sd)), cal.R_TMV_LEGS_LEAN, prm.LEGS_SHARE_SD, n)
    legs_kg = legs_for(legs_sd)
    arms_kg = alm - legs_kg

    died = _outcome(
        rng.random(n),
        logit(prm.DIED_BASE_RISK) + prm.DIED_PER_YEAR * age_c + prm.DIED_MALE * male,
        high + 0.5 * mid, "died", adjusted() if solve else None,
    )  # fmt: skip
    fell = _outcome(
        rng.random(n),
        logit(prm.FALLS_BASE_RISK) + prm.FALLS_PER_YEAR * age_c + prm.FALLS_MALE * male,
        high + 0.5 * mid, "falls", adjusted(missing.falls_code == 0) if solve else None,
    )  # fmt: skip
    # L/R asymmetry has no association: spread evenly over every outcome x sex x age-band cell.
    cells = (
        male.astype(np.int64)
        + 2 * (grip_max < weak_cut) + 4 * low_mass + 8 * died + 16 * fell
        + 32 * np.floor_divide(age, ASYM_AGE_BAND_YEARS).astype(np.int64)
    )  # fmt: skip
    leg_asym_pct = asymmetry_pct(spread_within(cells, asym_key, asym_jitter)) * asym_sign
    return _People(
        eid=eid, male=male, age_exact=age_exact, age=age, height=height, weight=weight, bmi=bmi, almi=almi,
        legs_kg=legs_kg, arms_kg=arms_kg, leg_asym_pct=leg_asym_pct, arm_asym=arm_asym, grip_max=grip_max,
        grip_other=grip_other, right_is_max=right_is_max, pa=pa_ratio, tertile=tertile, tmv=tmv, died=died,
        fell=fell, missing=missing, outcome_cells=cells, rng=rng,
    )  # fmt: skip


def _phenotype_frame(p: _People) -> pd.DataFrame:
    """UKB-style phenotype rows with realistic missingness (missing at random, seeded)."""
    rng = p.rng
    n = len(p.eid)
    grip_left = np.where(p.right_is_max, p.grip_other, p.grip_max)
    grip_right = np.where(p.right_is_max, p.grip_max, p.grip_other)
    no_grip = p.missing.grip
    grip_left = np.where(no_grip, np.nan, grip_left)
    grip_right = np.where(no_grip, np.nan, grip_right)

    half = p.leg_asym_pct / 200.0
    leg_left = p.legs_kg / 2.0 * (1.0 + half) * GRAMS_PER_KG
    leg_right = p.legs_kg / 2.0 * (1.0 - half) * GRAMS_PER_KG
    arm_left = p.arms_kg / 2.0 * (1.0 + p.arm_asym) * GRAMS_PER_KG
    arm_right = p.arms_kg / 2.0 * (1.0 - p.arm_asym) * GRAMS_PER_KG
    no_dexa = p.missing.dexa
    dexa = [np.where(no_dexa, np.nan, np.round(x)) for x in (arm_left, arm_right, leg_left, leg_right)]

    falls = np.where(p.fell, np.where(rng.random(n) < prm.FALLS_MORE_THAN_ONE, 3, 2), 1)
    falls = np.where(p.missing.falls_code != 0, p.missing.falls_code, falls)
    activity = p.missing.activity

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
        columns=list(_DRAWN_COLUMNS),
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
    with atomic_path(csv_path) as tmp_csv:
        pacsv.write_csv(table, tmp_csv, write_options=pacsv.WriteOptions(quoting_style="none"))

    metrics = pa.Table.from_pandas(cohort.metrics, preserve_index=False)
    with atomic_path(parquet_path) as tmp_parquet:
        pq.write_table(
            metrics,
            tmp_parquet,
            compression="zstd",
            row_group_size=ROWS_PER_PARTICIPANT * PARTICIPANTS_PER_ROW_GROUP,
        )
    return csv_path, parquet_path
