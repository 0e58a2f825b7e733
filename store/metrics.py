"""Every column of the per-participant wide table, defined once (docs/architecture.md, "Metric definitions").

Each :class:`Metric` carries its exact column name, unit, definition text, source UK Biobank
field(s) and the DuckDB expression that computes it. The same list generates the SQL that
materialises the wide table (:func:`wide_select_sql`) and the user-facing data dictionary
(:func:`data_dictionary`), so the two cannot drift apart.

Expressions are evaluated over a ``base`` relation whose columns are the imported phenotypes
(prefixed ``p_``), the per-structure values unpacked from the long table (``_vl_<key>``,
``_vr_<key>`` = left/right volume in cm³; ``_fl_<key>``, ``_fr_<key>`` = left/right fat fraction) and the
whole-compartment volumes of the same metric set (``_cl_<compartment>``, ``_cr_<compartment>``, cm³:
:mod:`store.compartments`, NULL unless the source labels that thigh compartment as one region).
An expression may also use the name of any metric listed before it (computed in an earlier
layer, see :func:`_layers`). Outcomes are 0/1 and NULL (empty) whenever an input they need is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store import compartments, settings
from store.fields import VARIABLES, FieldSpec, load_mapping
from store.sources import source_fields
from store.structures import SIDES, STRUCTURES, labels_in
from store.vocabulary import (
    DISPLAYED_UNITS,
    FEMALE,
    MALE,
    METRIC_LABELS,
    SEX_CODING,
    SOURCE_KIND_LABELS,
    SOURCE_KINDS,
    fat_fraction_column,
    volume_column,
)

if TYPE_CHECKING:
    import pandas as pd

# EWGSOP2 cut-offs: Cruz-Jentoft AJ et al., "Sarcopenia: revised European consensus on definition and
# diagnosis", Age Ageing 2019;48:16-31, Table 3 (grip strength; ALM/height²). Keyed by the store's sex code.
WEAK_GRIP_KG: dict[int, float] = {MALE: 27.0, FEMALE: 16.0}
LOW_ALMI_KG_M2: dict[int, float] = {MALE: 7.0, FEMALE: 5.5}
# UK Biobank field 2296 "Falls in the last year": 1 no falls, 2 only one fall, 3 more than one fall.
FALLS_CODE_NO_FALLS = 1
FALLS_CODE_FELL = 2
# Age strata of the study (40-49 only for display when present); lower bounds in years.
AGE_STRATA: tuple[tuple[str, float, float], ...] = (
    ("40-49", 40.0, 50.0),
    ("50-59", 50.0, 60.0),
    ("60-69", 60.0, 70.0),
    ("70-79", 70.0, 80.0),
    ("80+", 80.0, float("inf")),
)
CM3_PER_LITRE = 1000.0
CM_PER_M = 100.0

WIDE_TABLE = "participant_wide"


@dataclass(frozen=True)
class Metric:
    """One column of the wide table and its data-dictionary entry."""

    name: str  # exact column name
    unit: str
    definition: str
    source_field: str  # UK Biobank field id(s), "MSMV" for our own measurements, "" for bookkeeping
    sql: str  # DuckDB expression over ``base`` and earlier metrics
    dtype: str  # DuckDB column type

    @property
    def label(self) -> str:
        """Short display name, e.g. "ALMI" (:data:`store.vocabulary.METRIC_LABELS`)."""
        return METRIC_LABELS[self.name]

    @property
    def title(self) -> str:
        """Axis or row title: the label with its unit when that is a measurement unit, e.g. "ALMI (kg/m²)"."""
        return f"{self.label} ({self.unit})" if self.unit in DISPLAYED_UNITS else self.label


def _sum(terms: list[str]) -> str:
    """SQL sum that is NULL when any term is NULL (a missing structure makes a total unknown)."""
    return "(" + " + ".join(terms) + ")"


def _sided(keys: list[str], side: str) -> str:
    prefix = "_vl_" if side == "left" else "_vr_"
    return _sum([f"{prefix}{k}" for k in keys])


def _keys(labels: tuple[int, ...]) -> list[str]:
    return [s.key for s in STRUCTURES if s.label in labels]


def _asym(left: str, right: str) -> str:
    return f"abs({left} - {right}) / nullif(({left} + {right}) / 2.0, 0) * 100.0"


def _flag(condition: str, *inputs: str) -> str:
    """0/1 outcome; NULL when any input is NULL."""
    unknown = " OR ".join(f"{i} IS NULL" for i in inputs)
    return f"CASE WHEN {unknown} THEN NULL WHEN {condition} THEN 1 ELSE 0 END"


_MUSCLES = [s.key for s in STRUCTURES if s.is_muscle]


def _compartment_side(compartment: str, side: str) -> str:
    """SQL: one side of a thigh compartment's volume: the sum of its structures when the source measured
    them all, else the source's whole-compartment volume (``_cl_``/``_cr_``; NULL when it has neither)."""
    return f"coalesce({_sided(_keys(labels_in(compartment)), side)}, _c{side[0]}_{compartment})"


def _compartment_volume(compartment: str) -> str:
    return " + ".join(_compartment_side(compartment, side) for side in SIDES)


def _compartment_level() -> str:
    """SQL: true when any thigh compartment volume comes from a whole-compartment region (NULL without imaging)."""
    whole = " OR ".join(f"({_sided(_keys(labels_in(c)), side)} IS NULL AND _c{side[0]}_{c} IS NOT NULL)"
                        for c in compartments.THIGH_COMPARTMENTS for side in SIDES)
    return f"CASE WHEN m_source IS NULL THEN NULL ELSE {whole} END"


def _whole(example: str) -> str:
    """How a source without a compartment's muscles still has its volume (``example``: TotalSegmentator's region)."""
    return ("; for a source that labels the compartment as one region and lacks its muscles one by one (a "
            f"TotalSegmentator import: {example}), that region's volume, per side, from the same source; "
            "compartment_level says so")
_age_cases = " ".join(
    f"WHEN age >= {lo} AND age < {hi} THEN '{name}'" if hi != float("inf") else f"WHEN age >= {lo} THEN '{name}'"
    for name, lo, hi in AGE_STRATA
)


def _core_metrics() -> list[Metric]:
    m, f = WEAK_GRIP_KG, LOW_ALMI_KG_M2
    grip_cut = f"CASE WHEN sex = {MALE} THEN {m[MALE]} ELSE {m[FEMALE]} END"
    almi_cut = f"CASE WHEN sex = {MALE} THEN {f[MALE]} ELSE {f[FEMALE]} END"
    return [
        Metric("eid", "", "UK Biobank participant ID (pseudonymised per application)", "eid", "_eid", "BIGINT"),
        Metric("sex", SEX_CODING, "Sex", "31", "p_sex", "INTEGER"),
        Metric("age", "years", "Age when attended the imaging visit", "21003", "p_age", "DOUBLE"),
        Metric("height_cm", "cm", "Standing height (values < 3 are read as metres and converted)", "50",
               "p_height_cm", "DOUBLE"),
        Metric("weight_kg", "kg", "Body weight", "21002", "p_weight_kg", "DOUBLE"),
        Metric("bmi", "kg/m²", "Body mass index; computed as weight / height[m]² when the field is missing",
               "21001 (else 21002, 50)",
               f"coalesce(p_bmi, p_weight_kg / ((p_height_cm / {CM_PER_M}) ^ 2))", "DOUBLE"),
        Metric("grip_left_kg", "kg", "Hand grip strength, left", "46", "p_grip_left_kg", "DOUBLE"),
        Metric("grip_right_kg", "kg", "Hand grip strength, right", "47", "p_grip_right_kg", "DOUBLE"),
        Metric("grip_max_kg", "kg", "Maximum grip strength of both hands (the one measured hand if only one is known)",
               "46, 47", "greatest(p_grip_left_kg, p_grip_right_kg)", "DOUBLE"),
        Metric("arm_lean_left_kg", "kg", "DEXA lean mass, left arm (grams > 300 converted to kg)", "23250",
               "p_arm_lean_left_kg", "DOUBLE"),
        Metric("arm_lean_right_kg", "kg", "DEXA lean mass, right arm", "23254", "p_arm_lean_right_kg", "DOUBLE"),
        Metric("leg_lean_left_kg", "kg", "DEXA lean mass, left leg (whole lower limb)", "23267",
               "p_leg_lean_left_kg", "DOUBLE"),
        Metric("leg_lean_right_kg", "kg", "DEXA lean mass, right leg (whole lower limb)", "23271",
               "p_leg_lean_right_kg", "DOUBLE"),
        Metric("alm_kg", "kg", "Appendicular lean mass (ALM): DEXA lean mass of both arms and both legs",
               "23250, 23254, 23267, 23271", "arm_lean_left_kg + arm_lean_right_kg + leg_lean_left_kg + leg_lean_right_kg",
               "DOUBLE"),
        Metric("almi", "kg/m²", "Appendicular lean mass index: ALM / height[m]²", "23250, 23254, 23267, 23271, 50",
               f"alm_kg / ((height_cm / {CM_PER_M}) ^ 2)", "DOUBLE"),
        Metric("legs_lean_kg", "kg", "DEXA lean mass of both legs (whole lower limb, not thigh only)",
               "23267, 23271", "leg_lean_left_kg + leg_lean_right_kg", "DOUBLE"),
        # UK Biobank's own DEXA totals, kept beside the limb sums the analyses use: the import reports
        # rows where the two disagree by more than 2 %.
        Metric("dexa_arms_lean_kg", "kg", "DEXA lean mass of both arms as UK Biobank reports it (the import "
               "cross-checks it against left + right)", "23258", "p_dexa_arms_lean_kg", "DOUBLE"),
        Metric("dexa_legs_lean_kg", "kg", "DEXA lean mass of both legs as UK Biobank reports it (the import "
               "cross-checks it against left + right)", "23275", "p_dexa_legs_lean_kg", "DOUBLE"),
        Metric("dexa_total_lean_kg", "kg", "DEXA whole-body lean mass (trunk and head included)", "23280",
               "p_dexa_total_lean_kg", "DOUBLE"),
        Metric("tmv_left_cm3", "cm³", "Total muscle volume, left side (25 muscle structures, bones excluded)",
               "MSMV", _sided(_MUSCLES, "left"), "DOUBLE"),
        Metric("tmv_right_cm3", "cm³", "Total muscle volume, right side", "MSMV", _sided(_MUSCLES, "right"),
               "DOUBLE"),
        Metric("tmv_cm3", "cm³", "Total muscle volume (TMV): sum of the 25 muscle structures (labels 1-25, "
               "bones excluded), both sides", "MSMV", "tmv_left_cm3 + tmv_right_cm3", "DOUBLE"),
        Metric("tvi", "cm³/cm²", "Thigh volume index (TVI): TMV [cm³] / height [cm]². The study prints cm³/m² "
               "but its values (about 0.38 men, 0.30 women) only fit cm³/cm², so the unit is cm³/cm²",
               "MSMV, 50", "tmv_cm3 / (height_cm ^ 2)", "DOUBLE"),
        Metric("anterior_cm3", "cm³", "Anterior thigh compartment volume: sartorius + rectus femoris + vasti "
               f"(labels 1-5), both sides{_whole('quadriceps_femoris + sartorius')}", "MSMV",
               _compartment_volume("anterior"), "DOUBLE"),
        Metric("medial_cm3", "cm³", "Medial thigh compartment volume: adductor magnus, longus and brevis + "
               "gracilis + quadratus femoris (labels 14-18), both sides"
               f"{_whole('thigh_medial_compartment, by its own definition')}", "MSMV", _compartment_volume("medial"),
               "DOUBLE"),
        Metric("posterior_cm3", "cm³", "Posterior thigh compartment volume: semimembranosus + semitendinosus + "
               f"biceps femoris (labels 19-21), both sides{_whole('thigh_posterior_compartment')}",
               "MSMV", _compartment_volume("posterior"), "DOUBLE"),
        Metric("compartment_level", "true/false", "True when a thigh compartment volume (anterior, medial, "
               "posterior, hence the P/A ratio) is a whole-compartment region of the metric source rather than "
               "the sum of its structures, which that source did not measure (empty without imaging). TMV is never "
               "formed from such regions: it is the sum of the 25 muscle structures, so it (and TVI, "
               "muscle-specific strength, the MRI asymmetry) stays empty unless the source measured all 25; "
               "TotalSegmentator has no piriformis, obturators, pectineus, tensor fasciae latae, multifidus or "
               "abdominal muscles",
               "MSMV", _compartment_level(), "BOOLEAN"),
        Metric("pa_ratio", "ratio", "Posterior / anterior compartment volume: (semimembranosus + "
               "semitendinosus + biceps femoris) / (sartorius + rectus femoris + vasti), both sides; for a source "
               "that labels the thigh compartments as regions, those regions' volumes (compartment_level)",
               "MSMV", "posterior_cm3 / nullif(anterior_cm3, 0)", "DOUBLE"),
        Metric("lr_asym_dexa_pct", "%", "Left/right asymmetry of DEXA leg lean mass: |L - R| / mean(L, R) x 100",
               "23267, 23271", _asym("leg_lean_left_kg", "leg_lean_right_kg"), "DOUBLE"),
        Metric("lr_asym_mri_pct", "%", "Left/right asymmetry of MRI total muscle volume: |L - R| / mean(L, R) "
               "x 100 (MSMV's own, beyond the study)", "MSMV", _asym("tmv_left_cm3", "tmv_right_cm3"), "DOUBLE"),
        Metric("muscle_strength", "kg/L", "Muscle-specific strength: max grip [kg] / TMV [L]", "46, 47, MSMV",
               f"grip_max_kg / nullif(tmv_cm3 / {CM3_PER_LITRE}, 0)", "DOUBLE"),
        Metric("weak_grip", "0/1", f"EWGSOP2 weak grip: max grip < {m[MALE]:g} kg (men), < {m[FEMALE]:g} kg "
               "(women)", "46, 47, 31", _flag(f"grip_max_kg < {grip_cut}", "grip_max_kg", "sex"), "INTEGER"),
        Metric("low_muscle_mass", "0/1", f"EWGSOP2 low muscle mass: ALMI < {f[MALE]:g} kg/m² (men), < {f[FEMALE]:g} "
               "kg/m² (women)", "23250, 23254, 23267, 23271, 50, 31",
               _flag(f"almi < {almi_cut}", "almi", "sex"), "INTEGER"),
        Metric("sarcopenia", "0/1", "EWGSOP2 sarcopenia: weak grip and low muscle mass", "derived",
               _flag("weak_grip = 1 AND low_muscle_mass = 1", "weak_grip", "low_muscle_mass"), "INTEGER"),
        Metric("probable_sarcopenia", "0/1", "EWGSOP2 probable sarcopenia: weak grip without low muscle mass",
               "derived", _flag("weak_grip = 1 AND low_muscle_mass = 0", "weak_grip", "low_muscle_mass"),
               "INTEGER"),
        Metric("died", "0/1", "All-cause mortality: 1 if a date of death after the imaging visit is recorded, "
               "else 0 (empty when the visit date is unknown)", "40000, 53",
               "CASE WHEN p_visit_date IS NULL THEN NULL WHEN p_death_date > p_visit_date THEN 1 ELSE 0 END",
               "INTEGER"),
        Metric("falls", "0/1", f"Falls in the last year: 1 if field 2296 >= {FALLS_CODE_FELL}, 0 if "
               f"{FALLS_CODE_NO_FALLS} (no falls), empty if missing", "2296",
               f"CASE WHEN p_falls_code >= {FALLS_CODE_FELL} THEN 1 WHEN p_falls_code = {FALLS_CODE_NO_FALLS} "
               "THEN 0 ELSE NULL END", "INTEGER"),
        Metric("activity_group", "0 low, 1 moderate, 2 high", "IPAQ activity group", "22032",
               "p_activity_group", "INTEGER"),
        Metric("activity_group_instance", "UKB instance", "The assessment instance the IPAQ activity group came "
               "from: 2 the imaging visit, 0 baseline where the imaging visit has no answer (empty when "
               "the group is unknown)", "22032",
               "CASE WHEN p_activity_group IS NOT NULL THEN p_activity_group_instance END", "INTEGER"),
        Metric("centre", "code", "UK Biobank assessment centre of the imaging visit", "54", "p_centre", "VARCHAR"),
        Metric("visit_date", "date", "Date of the imaging visit", "53", "p_visit_date", "DATE"),
        Metric("death_date", "date", "Date of death (empty if none recorded)", "40000", "p_death_date", "DATE"),
        Metric("age_stratum", "years", "Age stratum at the imaging visit (40-49 only for display)", "21003",
               f"CASE {_age_cases} ELSE NULL END", "VARCHAR"),
        Metric("source", "", "Where the participant's data came from: ukb, simulated, msmv, ...", "",
               "coalesce(p_source, m_source)", "VARCHAR"),
        Metric("simulated", "true/false", "True for simulated (demo) data, never real UK Biobank data", "",
               "coalesce(p_simulated, false) OR coalesce(m_simulated, false)", "BOOLEAN"),
        Metric("has_imaging", "true/false", "True when MRI structure volumes are stored for the participant",
               "MSMV", "m_source IS NOT NULL", "BOOLEAN"),
        Metric("metric_source", "", "The source the participant's MRI values come from (its free-text name: msmv, "
               "musclemap, simulated, ...): by default the first stored source in the MSMV_SOURCE_PREFERENCE "
               "order of kinds, the latest written within a kind; every other source stays stored", "",
               "m_source", "VARCHAR"),
        Metric("metric_source_kind", "", "The kind of that source: "
               + ", ".join(f"{k} ({v})" for k, v in SOURCE_KIND_LABELS.items()), "", "m_source_kind", "VARCHAR"),
        Metric("imaging_instance", "UKB instance", "The imaging visit the MRI values come from: 2 the first "
               "imaging visit, 3 the repeat one (the MSMV_COHORT_VISIT setting chooses; by default each "
               "participant's first visit with results)", "20201", "m_instance", "INTEGER"),
    ]


def _structure_metrics() -> list[Metric]:
    out: list[Metric] = []
    for s in STRUCTURES:
        k = s.key
        what = f"{s.name} ({s.compartment}, label {s.label})"
        out += [
            Metric(volume_column(k), "cm³", f"Volume of {what}, left + right", "MSMV", f"_vl_{k} + _vr_{k}",
                   "DOUBLE"),
            *(Metric(volume_column(k, side), "cm³", f"Volume of {what}, {side} side", "MSMV",
                     f"_v{side[0]}_{k}", "DOUBLE") for side in SIDES),
            Metric(fat_fraction_column(k), "fraction 0-1", f"Fat fraction of {what}: fat / (fat + water) in the eroded "
                   "mask, volume-weighted over both sides", "MSMV", (f"(coalesce(_vl_{k} * _fl_{k}, 0) + coalesce(_vr_{k} * _fr_{k}, 0)) / nullif("
                   f"CASE WHEN _fl_{k} IS NULL THEN 0 ELSE _vl_{k} END + "
                   f"CASE WHEN _fr_{k} IS NULL THEN 0 ELSE _vr_{k} END, 0)"), "DOUBLE"),
        ]
    return out


def _amra_metrics() -> list[Metric]:
    """AMRA's body composition of the same scans (UK Biobank returns it in litres), in MSMV's units.

    AMRA's thigh region and its anterior / posterior split follow AMRA's own atlas and exclude
    intramuscular fat; MSMV's TMV also holds the gluteal, hip and core muscles. They are compared (the
    Concordance page's correlation and Bland-Altman plots), never used in one another's place.
    """
    region = ("AMRA's region, not MSMV's: compare, don't equate (fat-free volume, intramuscular fat "
              "excluded). Simulated in the demo store (engine.demo.cohort.amra)")
    out = [
        Metric("amra_thigh_muscle_cm3", "cm³", "AMRA total thigh fat-free muscle volume, both thighs (litres x "
               f"{CM3_PER_LITRE:g}). Not TMV: TMV also includes the gluteal, hip and core muscles. {region}",
               "22409", f"p_amra_thigh_muscle_l * {CM3_PER_LITRE}", "DOUBLE"),
    ]
    for part in ("anterior", "posterior"):
        sides = [f"p_amra_{part}_{side}_l" for side in SIDES]
        out += [
            *(Metric(f"amra_{part}_{side}_cm3", "cm³", f"AMRA {part} thigh fat-free muscle volume, {side} "
                     f"(litres x {CM3_PER_LITRE:g}). {region}", "", f"{column} * {CM3_PER_LITRE}", "DOUBLE")
              for side, column in zip(SIDES, sides, strict=True)),
            Metric(f"amra_{part}_cm3", "cm³", f"AMRA {part} thigh fat-free muscle volume, both sides. {region}", "",
                   " + ".join(f"amra_{part}_{side}_cm3" for side in SIDES), "DOUBLE"),
        ]
    out += [
        Metric("amra_pa_ratio", "ratio", "AMRA posterior / anterior thigh fat-free muscle volume, both sides "
               f"(compare with MSMV's P/A ratio, whose compartments are MSMV's structures). {region}", "",
               "amra_posterior_cm3 / nullif(amra_anterior_cm3, 0)", "DOUBLE"),
        Metric("amra_mfi_pct", "%", f"AMRA muscle fat infiltration of the thigh muscles. {region}", "22435",
               "p_amra_mfi_pct", "DOUBLE"),
    ]
    return out


METRICS: tuple[Metric, ...] = tuple(_core_metrics() + _amra_metrics() + _structure_metrics())
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
COLUMNS: tuple[str, ...] = tuple(m.name for m in METRICS)


def column_title(column: str) -> str:
    """:attr:`Metric.title` of a wide-table column; any other name (a computed value) is shown as it is."""
    metric = BY_NAME.get(column)
    return column if metric is None else metric.title


def data_dictionary(mapping: Mapping[str, FieldSpec] | None = None) -> pd.DataFrame:
    """The data dictionary: one row per wide-table column (column, unit, definition, source_field).

    ``source_field`` names the UK Biobank fields under ``mapping``: pass the one the store's imports
    used (:meth:`store.reader.Reader.field_mapping`); default the shipped ``store/fields.toml``.
    """
    import pandas as pd  # here, not at the top: the metric table itself is read by light callers (the CLI)

    sources = source_fields(METRICS, load_mapping() if mapping is None else mapping)
    return pd.DataFrame(
        [(m.name, m.unit, m.definition, sources[m.name]) for m in METRICS],
        columns=["column", "unit", "definition", "source_field"],
    )


# The participants columns the wide table reads: every mapped variable, the instance the IPAQ value came
# from (store.importers.phenotypes.INSTANCE_COLUMNS) and the bookkeeping.
_PHENOTYPES = (*VARIABLES, "activity_group_instance", "source", "simulated")


def _unpack_columns() -> str:
    """Per-structure columns from the per-eid lists: slot = 2 x (label - 1) + (1 if right)."""
    parts = []
    for s in STRUCTURES:
        left, right = 2 * (s.label - 1), 2 * (s.label - 1) + 1
        parts += [f"vs[list_position(slots, {left})] AS _vl_{s.key}", f"vs[list_position(slots, {right})] AS _vr_{s.key}",
                  f"fs[list_position(slots, {left})] AS _fl_{s.key}", f"fs[list_position(slots, {right})] AS _fr_{s.key}"]  # fmt: skip
    return ", ".join(parts)


def _compartment_columns() -> str:
    """``_cl_<compartment>``, ``_cr_<compartment>`` per thigh compartment from the grouped compartment rows
    (declared names, safe to inline)."""
    return ", ".join(f"max(c.volume_cm3) FILTER (WHERE c.compartment = '{comp}' AND c.side = '{side}') "
                     f"AS _c{side[0]}_{comp}" for comp in compartments.THIGH_COMPARTMENTS for side in SIDES)


def source_preference() -> tuple[str, ...]:
    """Every source kind, most preferred first: the MSMV_SOURCE_PREFERENCE setting, then the kinds it
    leaves out in :data:`store.vocabulary.SOURCE_KINDS` order."""
    named = [k for k in str(settings.get("MSMV_SOURCE_PREFERENCE")).split(",") if k]
    return (*named, *(k for k in SOURCE_KINDS if k not in named))


def kind_rank(column: str = "source_kind") -> str:
    """SQL: the place of the kind in ``column`` in :func:`source_preference` (0 most preferred)."""
    ranks = " ".join(f"WHEN '{kind}' THEN {i}" for i, kind in enumerate(source_preference()))  # declared words
    return f"CASE {column} {ranks} ELSE {len(SOURCE_KINDS)} END"


def current_set_order(alias: str = "") -> str:
    """SQL ORDER BY terms ranking one eid's (and visit's) metric sets, the default first: the kind's place
    in :func:`source_preference`, then the latest written, then the source name (ties stay stable)."""
    a = f"{alias}." if alias else ""
    return f"{kind_rank(a + 'source_kind')}, {a}written_at DESC, {a}source"


def wide_select_sql(eid_table: str | None = None, *, one_source: bool = False) -> str:
    """SELECT statement producing the wide table, for every participant or those in ``eid_table``.

    ``eid_table`` names a table with an ``eid`` column (an internal temporary table, never user
    input). An eid's metric set is the first in :func:`current_set_order` (the preferred kind, then the
    latest written). ``one_source`` shows only the metric sets of one source, whose name is the
    statement's one ``?`` parameter (participants without it have no MRI values).
    """
    only = f"WHERE eid IN (SELECT eid FROM {eid_table})" if eid_table else ""
    visit = int(settings.get("MSMV_COHORT_VISIT"))  # an int, checked by store.settings: safe to inline
    chosen = " AND ".join(filter(None, [f"eid IN (SELECT eid FROM {eid_table})" if eid_table else "",
                                        f"instance = {visit}" if visit else "",
                                        "source = ?" if one_source else ""]))
    phen = ", ".join(f"p.{c} AS p_{c}" for c in _PHENOTYPES)
    layers = "".join(
        f",\nl{i + 1} AS (SELECT l{i}.*, {', '.join(f'CAST({m.sql} AS {m.dtype}) AS {m.name}' for m in layer)} "
        f"FROM l{i})"
        for i, layer in enumerate(_layers())
    )
    final = ", ".join(m.name for m in METRICS)
    return f"""
WITH sets AS (
    -- one imaging visit per eid (the earliest, or the one the setting names), its preferred metric set
    SELECT eid, instance, source, source_kind, simulated FROM metric_sets {"WHERE " + chosen if chosen else ""}
    QUALIFY row_number() OVER (PARTITION BY eid ORDER BY instance, {current_set_order()}) = 1
), current_rows AS (
    SELECT m.eid, 2 * (m.label - 1) + CAST(m.side = 'right' AS INTEGER) AS idx, m.volume_cm3 AS v, m.fat_fraction AS f
    FROM structure_metrics m JOIN sets s ON m.eid = s.eid AND m.instance = s.instance AND m.source = s.source
), lists AS (
    -- One unsorted list per eid, unpacked by slot position: 3x faster than PIVOT at 27M rows.
    SELECT eid, list(v) AS vs, list(f) AS fs, list(idx) AS slots FROM current_rows GROUP BY eid
), sm AS (
    SELECT eid, {_unpack_columns()} FROM lists
), comp AS (
    -- the same sets' whole-compartment volumes (store.compartments): label imports only, a few rows
    SELECT c.eid, {_compartment_columns()}
    FROM {compartments.TABLE} c JOIN sets s ON c.eid = s.eid AND c.instance = s.instance AND c.source = s.source
    GROUP BY c.eid
), ids AS (
    SELECT eid FROM participants {only} UNION SELECT eid FROM metric_sets {only}  -- imaged at another visit too
), l0 AS (
    SELECT ids.eid AS _eid, {phen}, s.source AS m_source, s.source_kind AS m_source_kind,
        s.simulated AS m_simulated, s.instance AS m_instance,
        sm.* EXCLUDE (eid), comp.* EXCLUDE (eid)
    FROM ids LEFT JOIN participants p ON p.eid = ids.eid
    LEFT JOIN sets s ON s.eid = ids.eid
    LEFT JOIN sm ON sm.eid = ids.eid
    LEFT JOIN comp ON comp.eid = ids.eid
){layers}
SELECT {final} FROM l{len(_layers())}
"""


def _layers() -> list[list[Metric]]:
    """Metrics grouped so each group only uses base columns and metrics of earlier groups.

    Computing layer by layer (one CTE each) keeps every expression small; letting DuckDB resolve
    select-list aliases instead inlines them recursively and made the wide table 100x slower.
    """
    level: dict[str, int] = {}
    for m in METRICS:
        refs = [level[name] for name in level if re.search(rf"\b{name}\b", m.sql)]
        level[m.name] = 1 + max(refs, default=-1)
    depth = max(level.values()) + 1
    return [[m for m in METRICS if level[m.name] == d] for d in range(depth)]
