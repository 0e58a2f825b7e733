"""Other tools' labels → MSMV's: a structure map (values 1-27), a side map and a compartment map.

A voxel of the result holds one MSMV structure (or 0) with the side its source label named (or none:
split at the midline later), or, for a source label covering a whole compartment (TotalSegmentator's
thigh classes), that compartment. What the source holds that the mapping does not map is counted and
listed, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.imaging.volume import Volume
from engine.interop.mapping import Mapping, Target, normalise_key
from engine.interop.read import LabelFileError, LabelImage
from store.structures import COMPARTMENTS, SIDES

#: Side codes of :attr:`Converted.sides`: 0 = the source label named no side (split at the midline).
SIDE_CODES: dict[str | None, int] = {None: 0, "left": 1, "right": 2}
#: Geometry of the masks of one TotalSegmentator folder must agree to this many mm.
GRID_ATOL_MM = 1e-3


@dataclass
class Converted:
    """One subject's labels in MSMV's terms, plus what was ignored and what overlapped."""

    grid: Volume  # geometry of the label grid (its data is the structure map)
    structures: np.ndarray  # uint8, 0 or an MSMV label 1-27
    sides: np.ndarray  # uint8, SIDE_CODES
    compartments: np.ndarray  # uint8, 0 or 1 + index into store.structures.COMPARTMENTS
    measured: set[tuple[int, str]]  # (structure label, side) the source can hold
    measured_compartments: set[tuple[str, str]]  # (compartment, side) the source holds as a whole
    ignored: dict[str, int | None] = field(default_factory=dict)  # "name (key)" -> voxels (None: not read)
    absent: list[str] = field(default_factory=list)  # mapped keys the source could hold but does not
    overlaps: list[str] = field(default_factory=list)  # sentences: voxels, which masks, which wins

    @property
    def labels(self) -> Volume:
        return self.grid.with_data(self.structures)


def _sides(t: Target) -> tuple[str, ...]:
    return (t.side,) if t.side else SIDES


def _measured(targets: Sequence[Target]) -> tuple[set[tuple[int, str]], set[tuple[str, str]]]:
    structures = {(t.structure, s) for t in targets if t.structure is not None for s in _sides(t)}
    compartments = {(t.compartment, s) for t in targets if t.compartment is not None for s in _sides(t)}
    return structures, compartments


def _codes(t: Target) -> tuple[int, int, int]:
    comp = 0 if t.compartment is None else 1 + COMPARTMENTS.index(t.compartment)
    return t.structure or 0, SIDE_CODES[t.side], comp


def _describe(key: str, mapping: Mapping) -> str:
    t = mapping.entries.get(key)
    name = (t.name if t else "") or mapping.ignored.get(key, "")
    return f"{name} ({key})" if name and name != key else key


def convert_multilabel(image: LabelImage, mapping: Mapping, *, version: str | None,
                       class_map: dict[int, str] | None = None) -> Converted:
    """Convert one multi-label image. Keys are label values, or names via the file's own label table
    (``image.names``) or ``class_map`` (value → class name) when the mapping is keyed by name."""
    data = np.asarray(image.volume.data)
    names = {**(class_map or {}), **image.names}  # the file's own table wins over a version's class map
    by_name = {normalise_key(n): v for v, n in names.items()}
    key_of: dict[int, str] = {}  # label value -> mapping key
    for key in (*mapping.entries, *mapping.ignored):
        if key.isdigit():
            key_of.setdefault(int(key), key)
        elif key in by_name:
            key_of[by_name[key]] = key
    # what the file can hold: the tool version's label values, and the names its label table gives
    held = {k for k in mapping.label_set(version) if k.isdigit() or k in by_name}
    if not held & set(mapping.entries):
        raise LabelFileError(f"{image.path}: the mapping names segments ({', '.join(sorted(mapping.entries)[:5])} ...) "
                             "that this file's label table does not have" if names else
                             f"{image.path}: the mapping is keyed by segment name but the file carries no names; "
                             "key it by label value instead")
    structures = np.zeros(data.shape, np.uint8)
    sides = np.zeros(data.shape, np.uint8)
    comps = np.zeros(data.shape, np.uint8)
    present, counts = np.unique(data, return_counts=True)
    ignored: dict[str, int | None] = {}
    for value, count in zip(present.tolist(), counts.tolist(), strict=True):
        if value == 0:
            continue
        key = key_of.get(value, str(value))
        target = mapping.entries.get(key)
        if target is None:
            name = mapping.ignored.get(key) or names.get(value, "")
            ignored[f"{name} ({value})" if name else str(value)] = int(count)
            continue
        s, side, c = _codes(target)
        mask = data == value
        structures[mask], sides[mask], comps[mask] = s, side, c
    measured, measured_c = _measured([t for k, t in mapping.entries.items() if k in held])
    values = set(present.tolist())
    absent = sorted(_describe(k, mapping) for k in mapping.entries
                    if k in held and (int(k) if k.isdigit() else by_name[k]) not in values)
    return Converted(image.volume, structures, sides, comps, measured, measured_c, ignored, absent)


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=GRID_ATOL_MM)


def convert_masks(masks: dict[str, Path], mapping: Mapping, read: object) -> Converted:
    """Convert a folder of binary masks (TotalSegmentator: one file per class, named by class).

    ``masks``: class name → file; ``read``: :func:`engine.interop.read.read_labels`. Where masks overlap,
    the class listed first in the mapping wins; each overlap is reported with its voxel count.
    """
    order = {k: i for i, k in enumerate(mapping.entries)}
    mapped = sorted((k for k in masks if normalise_key(k) in mapping.entries), key=lambda k: order[normalise_key(k)])
    ignored: dict[str, int | None] = {_describe(normalise_key(k), mapping): None for k in masks if normalise_key(k) not in mapping.entries}
    if not mapped:
        raise LabelFileError(f"{next(iter(masks.values())).parent}: none of its {len(masks)} masks is mapped onto "
                             "an MSMV structure (expected files such as gluteus_maximus_left.nii.gz)")
    grid: Volume | None = None
    owner = np.zeros(0, np.int16)
    structures = sides = comps = owner
    overlaps: list[str] = []
    absent: list[str] = []
    for i, name in enumerate(mapped, start=1):
        image = read(masks[name], binary=True)  # type: ignore[operator]
        vol = image.volume
        if grid is None:
            grid = vol
            structures = np.zeros(vol.shape, np.uint8)
            sides = np.zeros(vol.shape, np.uint8)
            comps = np.zeros(vol.shape, np.uint8)
            owner = np.zeros(vol.shape, np.int16)
        elif not _same_grid(grid, vol):
            raise LabelFileError(f"{masks[name]}: its grid {vol.shape} differs from {masks[mapped[0]].name}'s "
                                 f"{grid.shape} (or its affine does); the masks of one subject share one grid")
        mask = np.asarray(vol.data) > 0
        if not mask.any():
            absent.append(name)
            continue
        taken = mask & (owner > 0)
        if taken.any():
            winners, n = np.unique(owner[taken], return_counts=True)
            for w, count in zip(winners.tolist(), n.tolist(), strict=True):
                overlaps.append(f"{count} voxels are in both {mapped[w - 1]} and {name}: kept as {mapped[w - 1]} "
                                "(listed first in the mapping)")
            mask &= ~taken
        s, side, c = _codes(mapping.entries[normalise_key(name)])
        structures[mask], sides[mask], comps[mask], owner[mask] = s, side, c, i
    assert grid is not None
    measured, measured_c = _measured([mapping.entries[normalise_key(k)] for k in mapped])
    return Converted(grid, structures, sides, comps, measured, measured_c, ignored, absent, overlaps)
