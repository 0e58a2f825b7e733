"""The user-editable phenotype field mapping (``store/fields.toml``) and UKB column-name parsing.

UK Biobank exports name a column by field, instance and array index, in one of two styles:
ukbconv ``50-2.0`` or RAP ``p50_i2`` / ``p50_i2_a0`` (optionally prefixed ``participant.``).
Fields with a single instance appear in RAP style without ``_i`` (``p31``), read as instance 0.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FIELDS_FILE = Path(__file__).with_name("fields.toml")
UNITS: tuple[str, ...] = ("number", "code", "cm", "kg", "g", "auto_kg", "date", "text")
# Store variables the mapping may fill (the phenotype columns of the participants table).
VARIABLES: tuple[str, ...] = (
    "sex", "age", "height_cm", "weight_kg", "bmi", "grip_left_kg", "grip_right_kg", "falls_code",
    "activity_group", "death_date", "visit_date", "centre", "arm_lean_left_kg", "arm_lean_right_kg",
    "leg_lean_left_kg", "leg_lean_right_kg",
)  # fmt: skip
# When the mapped instance is absent, try these in order (2 = first imaging visit).
INSTANCE_FALLBACK: tuple[int, ...] = (2, 0, 1, 3)

_UKBCONV = re.compile(r"^(\d+)-(\d+)\.(\d+)$")
_RAP = re.compile(r"^p(\d+)(?:_i(\d+))?(?:_a(\d+))?$")
_EID_NAMES = ("eid", "participant.eid", "participant_id")


@dataclass(frozen=True)
class FieldSpec:
    """Where one store variable comes from."""

    variable: str
    field: int
    instance: int
    unit: str


@dataclass(frozen=True)
class ColumnRef:
    field: int
    instance: int
    array: int


def parse_column(name: str) -> ColumnRef | None:
    """Parse a UKB column header; None if it is not a field-instance column."""
    bare = name.strip()
    if bare.startswith("participant."):
        bare = bare[len("participant.") :]
    if m := _UKBCONV.match(bare):
        return ColumnRef(int(m[1]), int(m[2]), int(m[3]))
    if m := _RAP.match(bare):
        return ColumnRef(int(m[1]), int(m[2] or 0), int(m[3] or 0))
    return None


def is_eid_column(name: str) -> bool:
    return name.strip().lower() in _EID_NAMES


def load_mapping(source: str | os.PathLike[str] | dict | None = None) -> dict[str, FieldSpec]:
    """Read a field mapping from a TOML file, a dict shaped like it, or the shipped default.

    Raises ``ValueError`` naming the variable and key when an entry is malformed.
    """
    if source is None:
        source = DEFAULT_FIELDS_FILE
    if isinstance(source, dict):
        raw = source
        where = "mapping"
    else:
        path = Path(source)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"field mapping {path} is not valid TOML: {err}") from err
        where = str(path)
    out: dict[str, FieldSpec] = {}
    for variable, entry in raw.items():
        if variable not in VARIABLES:
            raise ValueError(f"{where}: unknown variable {variable!r}; expected one of {', '.join(VARIABLES)}")
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: [{variable}] must be a table with field, instance and unit")
        field, instance, unit = entry.get("field"), entry.get("instance", 2), entry.get("unit", "number")
        if not isinstance(field, int) or isinstance(field, bool) or field <= 0:
            raise ValueError(f"{where}: [{variable}] field must be a positive integer, found {field!r}")
        if not isinstance(instance, int) or isinstance(instance, bool) or instance < 0:
            raise ValueError(f"{where}: [{variable}] instance must be an integer >= 0, found {instance!r}")
        if unit not in UNITS:
            raise ValueError(f"{where}: [{variable}] unit must be one of {', '.join(UNITS)}, found {unit!r}")
        out[variable] = FieldSpec(variable, field, instance, unit)
    return out


def resolve_columns(
    header: list[str], mapping: dict[str, FieldSpec]
) -> tuple[dict[str, str], list[str]]:
    """Choose the file column for each mapped variable.

    Returns ``({variable: column}, notes)``. The mapped instance wins; when it is absent the other
    instances are tried in :data:`INSTANCE_FALLBACK` order and a note says which was used. The
    lowest array index is used.
    """
    by_ref: dict[tuple[int, int], tuple[int, str]] = {}
    for col in header:
        ref = parse_column(col)
        if ref is None:
            continue
        key = (ref.field, ref.instance)
        if key not in by_ref or ref.array < by_ref[key][0]:
            by_ref[key] = (ref.array, col)
    chosen: dict[str, str] = {}
    notes: list[str] = []
    for variable, spec in mapping.items():
        if (spec.field, spec.instance) in by_ref:
            chosen[variable] = by_ref[(spec.field, spec.instance)][1]
            continue
        for inst in INSTANCE_FALLBACK:
            if inst != spec.instance and (spec.field, inst) in by_ref:
                col = by_ref[(spec.field, inst)][1]
                chosen[variable] = col
                notes.append(
                    f"{variable}: field {spec.field} instance {spec.instance} not in the file; "
                    f"used instance {inst} (column {col})"
                )
                break
        else:
            notes.append(f"{variable}: field {spec.field} not in the file; left unchanged")
    return chosen, notes
