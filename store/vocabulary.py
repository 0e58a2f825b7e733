"""The domain's words, declared once: sex coding, display labels, contrasts, stations, stages, statuses.

``store`` owns the data model, so every other layer (engine, dashboard, pages) imports these
instead of spelling them again; a copy "for convenience" is how one label came to have three
spellings. The wide table's column names are built by :func:`volume_column` and
:func:`fat_fraction_column`; each column's display label is in :data:`METRIC_LABELS` and reaches
users through :attr:`store.metrics.Metric.label` and :attr:`store.metrics.Metric.title`.
"""

from __future__ import annotations

from store.structures import SIDES, STRUCTURES

# ------------------------------------------------------------------------ sex

# UK Biobank field 31 "Sex" (data coding 9): 0 female, 1 male; the store keeps that coding.
MALE, FEMALE = 1, 0
SEXES: tuple[int, ...] = (MALE, FEMALE)  # display order: men first, as in the study's tables
SEX_LABELS: dict[int, str] = {MALE: "Men", FEMALE: "Women"}  # a group: table columns, legends, filters
SEX_WORDS: dict[int, str] = {MALE: "male", FEMALE: "female"}  # one participant: "Participant 7 · male"
SEX_CODING = f"{MALE} {SEX_WORDS[MALE]}, {FEMALE} {SEX_WORDS[FEMALE]}"  # the unit text of the sex column

# ------------------------------------------------------------------------ imaging

# The four Dixon reconstructions of each UK Biobank body-MRI station.
CONTRASTS: tuple[str, ...] = ("water", "fat", "in_phase", "opposed_phase")
# The body protocol has six stations, 1 most superior; the study's field of view is stations 3-6
# (pelvis, hip, mid-thigh, thigh-to-knee).
UKB_STATION_COUNT = 6
DEFAULT_STATIONS: tuple[int, ...] = (3, 4, 5, 6)
# UK Biobank assessment instances of the imaging visits: 2 is the first (from 2014), 3 the repeat
# imaging visit (from 2019, about 60,000 participants). Field 20201's file names carry the instance
# (``{eid}_20201_{instance}_{array}.zip``); results whose source does not say are the first visit's.
FIRST_IMAGING_INSTANCE = 2
REPEAT_IMAGING_INSTANCE = 3
IMAGING_INSTANCES: tuple[int, ...] = (FIRST_IMAGING_INSTANCE, REPEAT_IMAGING_INSTANCE)

# ------------------------------------------------------------------------ jobs

# The engine's per-subject pipeline, in order; the jobs table records the stage a job reached and
# the seconds each stage took.
PIPELINE_STAGES: tuple[str, ...] = ("ingest", "fuse", "segment", "measure", "mesh")
JOB_STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed")

# ------------------------------------------------------------------------ metric sources

# What produced a participant's per-structure metric set, recorded next to the set's free-text source
# name ("msmv", "musclemap", "ukb", "simulated"): MSMV's own engine, another tool's label map imported
# with `msmv import-labels`, a per-structure metrics file (`msmv import-metrics`), or simulated demo
# values. Every set is kept; the MSMV_SOURCE_PREFERENCE setting orders the kinds to pick each
# participant's default (this order unless it says otherwise), the latest written within a kind.
ENGINE_KIND = "engine"
LABEL_IMPORT_KIND = "label-import"
METRICS_IMPORT_KIND = "metrics-import"
SIMULATED_KIND = "simulated"
SOURCE_KINDS: tuple[str, ...] = (ENGINE_KIND, LABEL_IMPORT_KIND, METRICS_IMPORT_KIND, SIMULATED_KIND)
SOURCE_KIND_LABELS: dict[str, str] = {
    ENGINE_KIND: "MSMV engine",
    LABEL_IMPORT_KIND: "imported label map",
    METRICS_IMPORT_KIND: "imported metrics",
    SIMULATED_KIND: "simulated",
}


def source_kind(kind: str) -> str:
    """``kind`` checked against :data:`SOURCE_KINDS` (ValueError naming them otherwise)."""
    if kind not in SOURCE_KINDS:
        raise ValueError(f"source kind must be one of {', '.join(SOURCE_KINDS)}, found {kind!r}")
    return kind


def kind_of_source(kind: str | None, *, simulated: bool, otherwise: str) -> str:
    """The kind a writer records: ``kind`` checked, or when None ``simulated`` for simulated values, else
    ``otherwise`` (the writer's own kind)."""
    if kind is None:
        return SIMULATED_KIND if simulated else otherwise
    return source_kind(kind)


def source_title(source: str, *kinds: str) -> str:
    """A metric source as users read it: "msmv (MSMV engine)"; a name written under two kinds names both."""
    return f"{source} ({', '.join(SOURCE_KIND_LABELS.get(k, k) for k in kinds) or 'unknown kind'})"


# ------------------------------------------------------------------------ column names


def volume_column(key: str, side: str | None = None) -> str:
    """Wide-table column of a structure's volume in cm³: both sides, or ``side`` "left"/"right"."""
    if side is None:
        return f"vol_{key}_cm3"
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} or None, got {side!r}")
    return f"vol_{key}_{side}_cm3"


def fat_fraction_column(key: str) -> str:
    """Wide-table column of a structure's fat fraction (both sides, volume-weighted)."""
    return f"ff_{key}"


# ------------------------------------------------------------------------ display labels

# Short display names of the wide table's columns; :attr:`store.metrics.Metric.title` adds the unit.
_CORE_LABELS: dict[str, str] = {
    "eid": "Participant ID",
    "sex": "Sex",
    "age": "Age",
    "height_cm": "Height",
    "weight_kg": "Weight",
    "bmi": "BMI",
    "grip_left_kg": "Grip, left",
    "grip_right_kg": "Grip, right",
    "grip_max_kg": "Max grip",
    "arm_lean_left_kg": "DEXA arm lean mass, left",
    "arm_lean_right_kg": "DEXA arm lean mass, right",
    "leg_lean_left_kg": "DEXA leg lean mass, left",
    "leg_lean_right_kg": "DEXA leg lean mass, right",
    "alm_kg": "ALM",
    "almi": "ALMI",
    "legs_lean_kg": "DEXA legs lean mass",
    "dexa_arms_lean_kg": "DEXA arms lean mass (UKB total)",
    "dexa_legs_lean_kg": "DEXA legs lean mass (UKB total)",
    "dexa_total_lean_kg": "DEXA total lean mass",
    "tmv_left_cm3": "TMV, left",
    "tmv_right_cm3": "TMV, right",
    "tmv_cm3": "TMV",
    "tvi": "TVI",
    "anterior_cm3": "Anterior compartment",
    "medial_cm3": "Medial compartment",
    "posterior_cm3": "Posterior compartment",
    "compartment_level": "Compartment-level volumes",
    "pa_ratio": "P/A ratio",
    "amra_thigh_muscle_cm3": "AMRA thigh muscle volume",
    "amra_anterior_left_cm3": "AMRA anterior thigh, left",
    "amra_anterior_right_cm3": "AMRA anterior thigh, right",
    "amra_anterior_cm3": "AMRA anterior thigh",
    "amra_posterior_left_cm3": "AMRA posterior thigh, left",
    "amra_posterior_right_cm3": "AMRA posterior thigh, right",
    "amra_posterior_cm3": "AMRA posterior thigh",
    "amra_pa_ratio": "AMRA P/A ratio",
    "amra_mfi_pct": "AMRA muscle fat infiltration",
    "lr_asym_dexa_pct": "L/R asymmetry, DEXA legs",
    "lr_asym_mri_pct": "L/R asymmetry, MRI TMV",
    "muscle_strength": "Muscle-specific strength",
    "weak_grip": "Weak grip",
    "low_muscle_mass": "Low muscle mass",
    "sarcopenia": "Sarcopenia",
    "probable_sarcopenia": "Probable sarcopenia",
    "died": "All-cause mortality",
    "falls": "Falls (last year)",
    "activity_group": "Activity group",
    "activity_group_instance": "Activity group instance",
    "centre": "Assessment centre",
    "visit_date": "Imaging visit date",
    "death_date": "Date of death",
    "age_stratum": "Age stratum",
    "source": "Source",
    "metric_source": "Metric source",
    "metric_source_kind": "Metric source kind",
    "simulated": "Simulated",
    "has_imaging": "Has imaging",
    "imaging_instance": "Imaging visit",
}


def _structure_labels() -> dict[str, str]:
    out: dict[str, str] = {}
    for s in STRUCTURES:
        out[volume_column(s.key)] = f"{s.name} volume"
        out.update({volume_column(s.key, side): f"{s.name} volume, {side}" for side in SIDES})
        out[fat_fraction_column(s.key)] = f"{s.name} fat fraction"
    return out


METRIC_LABELS: dict[str, str] = {**_CORE_LABELS, **_structure_labels()}

# Units written after a label in axis titles and table rows; the others are codings or kinds
# ("0/1", "ratio", "date", ...) that say nothing a reader of "Weak grip" or "P/A ratio" needs.
DISPLAYED_UNITS: frozenset[str] = frozenset({"years", "cm", "kg", "kg/m²", "cm³", "cm³/cm²", "%", "kg/L"})


# Participant IDs. UK Biobank eids are 7-digit positive integers (one per participant and application);
# 12 digits leave room for other cohorts' IDs while keeping far inside the store's BIGINT.
EID_MAX_DIGITS = 12


def parse_eid(text: str) -> int | None:
    """The participant ID written in ``text`` (ASCII digits only, surrounding spaces ignored), else None.

    ``str.isdigit`` accepts superscripts and other scripts' digits that ``int`` then refuses or reads
    differently, so only 0-9 count.
    """
    text = text.strip()
    if not 0 < len(text) <= EID_MAX_DIGITS or not all("0" <= c <= "9" for c in text):
        return None
    eid = int(text)
    return eid if eid > 0 else None
