"""Label mappings: which label of another tool becomes which MSMV structure (or compartment), and side.

A mapping is a TOML file (the shipped defaults live in ``engine/interop/mappings/``; users edit copies):

- ``[map]``: source key (a label value such as ``"7141"`` or a class/segment name such as
  ``"gluteus_maximus_left"``) = ``{ structure = "sartorius", side = "left" }``, or
  ``{ compartment = "anterior", side = "left" }`` for a source label that covers a whole compartment, or a
  bare structure name (unsided: split at the midline). Optional ``name`` (the source's own name, for
  reports) and ``note`` (recorded with the import, e.g. what a merged label holds). The value
  ``"ignore"`` drops a default entry when laid over a default mapping.
- ``[ignore]``: source key = the reason or name: labels that have no counterpart, listed as ignored.
- ``[versions]``: version = list of keys that version of the tool added (older files lack them).
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from store.structures import COMPARTMENTS, SIDES, structure

MAPPINGS_DIR = Path(__file__).with_name("mappings")
#: The formats with a shipped default mapping (``labelmap`` needs the user's).
DEFAULT_MAPPINGS: dict[str, Path] = {
    "musclemap": MAPPINGS_DIR / "musclemap.toml",
    "totalsegmentator": MAPPINGS_DIR / "totalsegmentator.toml",
}
TS_CLASS_MAPS = MAPPINGS_DIR / "totalsegmentator_classes.toml"
#: Bound on a mapping file's size: a full tool table is ~10 kB; this keeps a wrong file from being parsed.
MAX_MAPPING_BYTES = 1024**2
_DROP = "ignore"


class MappingError(EngineError, ValueError):
    """A mapping file is unreadable or names an unknown structure, compartment or side."""


@dataclass(frozen=True)
class Target:
    """What one source label becomes: a structure (label 1-27) or a compartment, with a side or none."""

    structure: int | None
    compartment: str | None
    side: str | None  # None: unsided, split at the midline
    name: str = ""
    note: str = ""


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping; keys are normalised (:func:`normalise_key`)."""

    tool: str
    entries: dict[str, Target]
    ignored: dict[str, str] = field(default_factory=dict)
    versions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = ""  # where it came from, recorded with the import
    sha256: str = ""  # of the file(s) it was read from

    def label_set(self, version: str | None) -> set[str]:
        """Keys a file written by ``version`` of the tool can hold (every key when version is None)."""
        keys = set(self.entries) | set(self.ignored)
        if version is None:
            return keys
        later = {k for v, added in self.versions.items() if version_tuple(v) > version_tuple(version) for k in added}
        return keys - later

    def merges(self) -> list[str]:
        """Lines saying where several source labels make one MSMV value, and the notes of merged labels."""
        groups: dict[tuple[Any, ...], list[str]] = {}
        for key, t in self.entries.items():
            groups.setdefault((t.structure, t.compartment, t.side), []).append(t.name or key)
        out = []
        for (lab, comp, side), names in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if len(names) > 1:
                what = structure(lab).key if lab is not None else f"{comp} compartment"
                out.append(f"{what}{' ' + side if side else ''} = {' + '.join(sorted(names))}")
        out += sorted({f"{t.name or k}: {t.note}" for k, t in self.entries.items() if t.note})
        return out

    def structure_notes(self) -> dict[str, str]:
        """What an MSMV structure (key) or compartment (``"<name> compartment"``) holds under this mapping, where
        that is not simply the source's one label of it: the source labels merged into it (sides folded), and the
        mapping's notes, e.g. ``{"iliopsoas": "psoas major + iliacus"}``. Recorded with each import; the data
        dictionary quotes it for the imported source."""
        members: dict[str, list[str]] = {}
        notes: dict[str, list[str]] = {}
        for key, t in self.entries.items():
            what = structure(t.structure).key if t.structure is not None else f"{t.compartment} compartment"
            members.setdefault(what, [])
            if (name := _unsided(t.name or key)) not in members[what]:
                members[what].append(name)
            if t.note and t.note not in notes.setdefault(what, []):
                notes[what].append(t.note)
        return {what: " + ".join(names) + (f" ({'; '.join(notes[what])})" if notes.get(what) else "")
                for what, names in members.items() if len(names) > 1 or notes.get(what)}


_SIDE_WORD = re.compile(r"[\s_-]+(left|right|l|r)$", re.IGNORECASE)


def _unsided(name: str) -> str:
    """A source label's name without its side: ``psoas major left`` -> ``psoas major``."""
    return _SIDE_WORD.sub("", name).replace("_", " ").strip()


def normalise_key(key: object) -> str:
    """Label values as plain integers in text (``"07141"`` → ``"7141"``), names lower-case with underscores."""
    text = str(key).strip()
    if text.lstrip("-").isdigit():
        return str(int(text))
    return text.lower().replace(" ", "_").replace("-", "_")


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in str(version).strip().lstrip("vV").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise MappingError(f"tool version must look like 1.2 or v2.5.0, found {version!r}")
    return tuple(parts)


def version_at_least(version: str, minimum: str) -> bool:
    """True when ``version`` (e.g. ``"v2.5.1"``) is ``minimum`` or later."""
    return version_tuple(version) >= version_tuple(minimum)


def _target(where: str, key: str, raw: object) -> Target | None:
    if isinstance(raw, str):
        if raw.strip().lower() == _DROP:
            return None
        raw = {"structure": raw}
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: [map] {key!r} must be a structure name or a table "
                           f"{{ structure = ..., side = ... }}, found {raw!r}")
    unknown = sorted(set(raw) - {"structure", "compartment", "side", "name", "note"})
    if unknown:
        raise MappingError(f"{where}: [map] {key!r} has unknown field(s) {unknown}; expected structure or "
                           "compartment, and optionally side, name, note")
    if ("structure" in raw) == ("compartment" in raw):
        raise MappingError(f"{where}: [map] {key!r} needs exactly one of structure or compartment")
    label = comp = None
    if "structure" in raw:
        try:
            label = structure(str(raw["structure"])).label
        except ValueError as err:
            raise MappingError(f"{where}: [map] {key!r} names an unknown structure {raw['structure']!r}; "
                               "expected one of the 27 in store/structures.py (e.g. sartorius, iliac_bone)") from err
    else:
        comp = str(raw["compartment"]).strip().lower()
        if comp not in COMPARTMENTS:
            raise MappingError(f"{where}: [map] {key!r} names an unknown compartment {comp!r}; "
                               f"expected one of {', '.join(COMPARTMENTS)}")
    side = raw.get("side")
    if side is not None:
        side = {"l": "left", "r": "right"}.get(str(side).strip().lower(), str(side).strip().lower())
        if side not in SIDES:
            raise MappingError(f"{where}: [map] {key!r}: side must be left or right, found {raw['side']!r}")
    return Target(label, comp, side, str(raw.get("name", "")), str(raw.get("note", "")))


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    if not path.is_file():
        raise FileNotFoundError(f"no mapping file at {path}")
    size = path.stat().st_size
    if size > MAX_MAPPING_BYTES:
        raise MappingError(f"{path}: a mapping file is at most {MAX_MAPPING_BYTES:,} bytes, found {size:,}")
    data = path.read_bytes()
    try:
        return tomllib.loads(data.decode("utf-8")), hashlib.sha256(data).hexdigest()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise MappingError(f"{path}: not a readable TOML mapping: {err}") from err


def _parse(raw: dict[str, Any], where: str, base: Mapping | None = None) -> Mapping:
    unknown = sorted(set(raw) - {"tool", "map", "ignore", "versions"})
    if unknown:
        raise MappingError(f"{where}: unknown table(s) {unknown}; expected tool, [map], [ignore], [versions]")
    entries = dict(base.entries) if base else {}
    ignored = dict(base.ignored) if base else {}
    for key, value in dict(raw.get("map", {})).items():
        k = normalise_key(key)
        target = _target(where, str(key), value)
        if target is None:
            entries.pop(k, None)
            ignored.setdefault(k, "dropped by the user's mapping")
        else:
            entries[k] = target
            ignored.pop(k, None)  # opting in to a class the default ignores
    for key, why in dict(raw.get("ignore", {})).items():
        k = normalise_key(key)
        entries.pop(k, None)
        ignored[k] = str(why)
    versions = dict(base.versions) if base else {}
    for version, keys in dict(raw.get("versions", {})).items():
        version_tuple(version)
        versions[str(version)] = tuple(normalise_key(k) for k in keys)
    tool = str(raw.get("tool") or (base.tool if base else "labelmap"))
    return Mapping(tool, entries, ignored, versions)


@cache
def default_mapping(fmt: str) -> Mapping:
    """The shipped mapping of ``fmt`` (parsed once)."""
    path = DEFAULT_MAPPINGS[fmt]
    raw, sha = _read_toml(path)
    m = _parse(raw, str(path))
    return Mapping(m.tool, m.entries, m.ignored, m.versions, f"default {path.name}", sha)


def load_mapping(fmt: str, path: str | os.PathLike[str] | None = None) -> Mapping:
    """The mapping for ``fmt``: the default, with the user's file laid over it (``labelmap``: the user's file alone)."""
    if fmt not in DEFAULT_MAPPINGS and fmt != "labelmap":
        raise MappingError(f"unknown format {fmt!r}; expected musclemap, totalsegmentator or labelmap")
    if path is None:
        if fmt == "labelmap":
            raise MappingError("--format labelmap needs --mapping MAP.toml: which label value or segment name "
                               "is which structure (see engine/interop/mapping.py)")
        return default_mapping(fmt)
    p = Path(path)
    raw, sha = _read_toml(p)
    base = default_mapping(fmt) if fmt in DEFAULT_MAPPINGS else None
    m = _parse(raw, str(p), base)
    if not m.entries:
        raise MappingError(f"{p}: the mapping maps no label onto a structure or compartment ([map] is empty)")
    origin = f"{base.origin} + {p}" if base else str(p)
    return Mapping(m.tool, m.entries, m.ignored, m.versions, origin, sha if base is None else f"{base.sha256}+{sha}")


@cache
def ts_class_maps() -> dict[str, dict[str, dict[int, str]]]:
    """TotalSegmentator's multi-label class maps: ``{task: {range: {value: class name}}}`` (parsed once)."""
    raw, _ = _read_toml(TS_CLASS_MAPS)
    return {task: {rng: {int(v): str(n) for v, n in table.items()} for rng, table in ranges.items()}
            for task, ranges in raw.items()}


def ts_class_map(version: str | None, task: str = "total_mr") -> dict[int, str]:
    """The class map a TotalSegmentator ``version`` used for ``task`` multi-label files."""
    if version is None:
        raise MappingError("this TotalSegmentator multi-label file carries no label table: give --tool-version "
                           "(its class order changed in 2.5), or import the folder of binary masks instead")
    maps = ts_class_maps()[task]
    return maps["since_2_5" if version_at_least(version, "2.5") else "before_2_5"]
