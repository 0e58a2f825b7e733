"""The user-editable phenotype field mapping (``store/fields.toml``) and UKB column-name parsing.

UK Biobank exports name a column by field, instance and array index, in one of two styles:
ukbconv ``50-2.0`` or RAP ``p50_i2`` / ``p50_i2_a0`` (optionally prefixed ``participant.``).
Fields with a single instance appear in RAP style without ``_i`` (``p31``), read as instance 0.

Each entry may declare a plausible ``range`` (values outside it are stored as missing) and a
per-participant ``fallback`` list of instances used where the mapped instance's cell is missing.
A user's mapping that omits ``range`` inherits the shipped one; ``fallback`` is never inherited
from anywhere but the file that declares it, because a fallback to an earlier visit changes what a
value means for measures that change with age.
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
    "leg_lean_left_kg", "leg_lean_right_kg", "dexa_arms_lean_kg", "dexa_legs_lean_kg", "dexa_total_lean_kg",
    "amra_thigh_muscle_l", "amra_anterior_right_l", "amra_posterior_right_l", "amra_anterior_left_l",
    "amra_posterior_left_l", "amra_mfi_pct",
)  # fmt: skip
_ENTRY_KEYS = ("field", "instance", "unit", "range", "fallback")

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
    range: tuple[float, float] | None = None  # plausible [low, high] after unit normalisation
    fallback: tuple[int, ...] = ()  # instances tried per participant where ``instance`` is missing

    def as_toml_entry(self) -> dict[str, object]:
        """The entry as a plain dict, as written in ``fields.toml`` (for recording with an import)."""
        entry: dict[str, object] = {"field": self.field, "instance": self.instance, "unit": self.unit}
        if self.range is not None:
            entry["range"] = list(self.range)
        if self.fallback:
            entry["fallback"] = list(self.fallback)
        return entry


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

    Entries without a ``range`` take the shipped mapping's range for that variable. Raises
    ``ValueError`` naming the variable and key when an entry is malformed.
    """
    shipped = _load(DEFAULT_FIELDS_FILE, None)
    if source is None:
        return shipped
    return _load(source, shipped)


def mapping_origin(source: str | os.PathLike[str] | dict | None) -> str:
    """Where a mapping passed to :func:`load_mapping` comes from, in words recorded with an import."""
    if source is None:
        return f"shipped {DEFAULT_FIELDS_FILE.parent.name}/{DEFAULT_FIELDS_FILE.name}"
    if isinstance(source, dict):
        return "mapping given in code"
    return str(Path(source).resolve())


def _load(source: str | os.PathLike[str] | dict, shipped: dict[str, FieldSpec] | None) -> dict[str, FieldSpec]:
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
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise ValueError(f"{where}: [{variable}] unknown key(s) {unknown}; expected {', '.join(_ENTRY_KEYS)}")
        field, instance, unit = entry.get("field"), entry.get("instance", 2), entry.get("unit", "number")
        if not _is_int(field) or field <= 0:
            raise ValueError(f"{where}: [{variable}] field must be a positive integer, found {field!r}")
        if not _is_int(instance) or instance < 0:
            raise ValueError(f"{where}: [{variable}] instance must be an integer >= 0, found {instance!r}")
        if unit not in UNITS:
            raise ValueError(f"{where}: [{variable}] unit must be one of {', '.join(UNITS)}, found {unit!r}")
        if "range" in entry:
            if unit in ("date", "text"):
                raise ValueError(f"{where}: [{variable}] range applies to numbers, not unit {unit!r}")
            bounds = _range(entry["range"], f"{where}: [{variable}]")
        else:
            inherited = shipped.get(variable) if shipped else None
            bounds = inherited.range if inherited else None
        fallback = _fallback(entry.get("fallback", []), instance, f"{where}: [{variable}]")
        out[variable] = FieldSpec(variable, field, instance, unit, bounds, fallback)
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _range(raw: object, where: str) -> tuple[float, float]:
    ok = (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        and raw[0] <= raw[1]
    )
    if not ok:
        raise ValueError(f"{where} range must be [low, high] with low <= high, found {raw!r}")
    return (float(raw[0]), float(raw[1]))


def _fallback(raw: object, instance: int, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(_is_int(x) and x >= 0 for x in raw):
        raise ValueError(f"{where} fallback must be a list of instances >= 0, found {raw!r}")
    if instance in raw or len(set(raw)) != len(raw):
        raise ValueError(f"{where} fallback must list other instances than {instance}, once each; found {raw!r}")
    return tuple(raw)


def resolve_columns(
    header: list[str], mapping: dict[str, FieldSpec]
) -> tuple[dict[str, list[tuple[int, str]]], list[str]]:
    """Choose the file columns for each mapped variable.

    Returns ``({variable: [(instance, column), ...]}, notes)``: the mapped instance first, then the
    mapping's fallback instances present in the file, in the mapping's order; the importer takes, per
    participant, the first of them that holds a value. A variable none of whose instances is in the
    file is left out (its stored values are kept) and a note says which instances the file has. The
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
    chosen: dict[str, list[tuple[int, str]]] = {}
    notes: list[str] = []
    for variable, spec in mapping.items():
        wanted = (spec.instance, *spec.fallback)
        found = [(inst, by_ref[(spec.field, inst)][1]) for inst in wanted if (spec.field, inst) in by_ref]
        if found:
            chosen[variable] = found
            if found[0][0] != spec.instance:
                notes.append(
                    f"{variable}: field {spec.field} instance {spec.instance} not in the file; "
                    f"fallback instance(s) {', '.join(str(i) for i, _ in found)} used per participant (recorded)"
                )
            continue
        others = sorted(inst for field, inst in by_ref if field == spec.field)
        if others:
            notes.append(
                f"{variable}: field {spec.field} instance {spec.instance} not in the file (it has instance(s) "
                f"{', '.join(map(str, others))}); not imported: a value from another visit is not the same "
                "measurement. Add `fallback = [...]` to the mapping to use them, recorded per participant"
            )
        else:
            notes.append(f"{variable}: field {spec.field} not in the file; left unchanged")
    return chosen, notes
