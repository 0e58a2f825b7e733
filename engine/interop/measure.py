"""Volumes and fat fractions of converted labels: sided labels keep their side, unsided ones split at the midline.

Volume = voxel count × voxel volume from the label grid's affine (:attr:`Volume.voxel_volume_mm3`); the
midline is :func:`engine.imaging.measure.midline_x` of the converted structure map, and LPS ``x`` grows
towards the patient's left. Fat fraction uses :func:`engine.imaging.measure.fat_fraction` (eroded mask)
on water and fat images resampled onto the label grid when they lie on another. Only what the source
can hold is reported: a structure it lacks has no row ("not measured"), never a 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from engine.imaging.measure import MM3_PER_CM3, fat_fraction, midline_x, world_x
from engine.imaging.volume import Volume
from engine.interop.convert import GRID_ATOL_MM, SIDE_CODES, Converted
from store.structures import BY_LABEL, COMPARTMENTS, SIDES, STRUCTURES


@dataclass
class Measured:
    """Rows for :meth:`store.writer.Writer.commit_subject` and what the report says about them."""

    metrics: list[dict[str, Any]]  # structure, side, volume_cm3, fat_fraction
    compartments: list[dict[str, Any]]  # compartment, side, volume_cm3, fat_fraction
    not_measured: list[str]  # "sartorius right", ... (structure key and side)
    midline_x_mm: float
    midline_source: str


def resample_onto(image: Volume, grid: Volume) -> Volume:
    """``image`` trilinearly resampled onto ``grid``'s voxels (0 outside ``image``), one slice at a time."""
    if image.shape == grid.shape and np.allclose(image.affine, grid.affine, atol=GRID_ATOL_MM):
        return image
    to_image = np.linalg.inv(image.affine) @ grid.affine  # grid voxel index -> image voxel index
    nx, ny, nz = grid.shape
    ii, jj = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64), indexing="ij")
    src = np.asarray(image.data, dtype=np.float32)
    out = np.empty(grid.shape, np.float32)
    for k in range(nz):
        ijk = np.stack([ii, jj, np.full_like(ii, k), np.ones_like(ii)]).reshape(4, -1)
        coords = (to_image @ ijk)[:3]
        out[:, :, k] = ndimage.map_coordinates(src, coords, order=1, mode="constant", cval=0.0).reshape(nx, ny)
    return grid.with_data(out)


def _ff(mask: np.ndarray, water: np.ndarray | None, fat: np.ndarray | None) -> float | None:
    if water is None or fat is None or not mask.any():
        return None
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    pad = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    value = fat_fraction(mask[pad], water[pad], fat[pad])
    return None if value != value else value  # NaN: no signal inside the mask


def left_side(conv: Converted, midline_x_mm: float) -> np.ndarray:
    """True on the patient's left: where the source label said left, or, for unsided labels and background,
    where the voxel lies left of the midline (LPS ``x`` above ``midline_x_mm``)."""
    left_of_mid = world_x(conv.labels) > midline_x_mm
    return (conv.sides == SIDE_CODES["left"]) | ((conv.sides == SIDE_CODES[None]) & left_of_mid)


def measure_converted(conv: Converted, *, water: Volume | None = None, fat: Volume | None = None) -> Measured:
    """Per-structure and per-compartment volumes (and fat fractions) of what the source holds."""
    if (water is None) != (fat is None):
        raise ValueError("fat fraction needs both water and fat images; got only one")
    w = f = None
    if water is not None and fat is not None:
        w = np.asarray(resample_onto(water, conv.grid).data)
        f = np.asarray(resample_onto(fat, conv.grid).data)
    labels = conv.labels
    mid, source = midline_x(labels)
    on_left = left_side(conv, mid)
    side_mask = {"left": on_left, "right": ~on_left}
    cm3 = labels.voxel_volume_mm3 / MM3_PER_CM3
    n = len(STRUCTURES) + 1
    flat = conv.structures.ravel()
    counts = {"left": np.bincount(flat[on_left.ravel()], minlength=n),
              "right": np.bincount(flat[~on_left.ravel()], minlength=n)}
    metrics = []
    for label, side in sorted(conv.measured):
        ff = _ff((conv.structures == label) & side_mask[side], w, f) if w is not None else None
        metrics.append({"structure": label, "side": side, "volume_cm3": float(counts[side][label]) * cm3,
                        "fat_fraction": ff})
    compartments = []
    for comp, side in sorted(conv.measured_compartments, key=lambda cs: (COMPARTMENTS.index(cs[0]), cs[1])):
        # the compartment's own voxels plus those of its structures the source measured one by one
        # (TotalSegmentator: anterior = quadriceps_femoris + sartorius)
        members = [lab for lab, s in conv.measured if s == side and BY_LABEL[lab].compartment == comp]
        mask = ((conv.compartments == 1 + COMPARTMENTS.index(comp)) | np.isin(conv.structures, members)) & side_mask[side]
        compartments.append({"compartment": comp, "side": side, "volume_cm3": float(np.count_nonzero(mask)) * cm3,
                             "fat_fraction": _ff(mask, w, f) if w is not None else None})
    not_measured = [f"{s.key} {side}" for s in STRUCTURES for side in SIDES if (s.label, side) not in conv.measured]
    return Measured(metrics, compartments, not_measured, float(mid), source)
