"""A station's contrasts cropped to their common extent when their matrices differ slightly.

Now and then a UK Biobank station's water and fat series differ by a row, a column or a slice (or a
small shift of the field of view). They still sample one grid: same orientation, same spacing,
origins a whole number of voxels apart. Such contrasts are cropped to the voxels they all cover,
and the crop is recorded; contrasts on different grids are still refused.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.errors import DicomError
from engine.imaging.volume import Volume

#: Origins must be this close (in voxels) to a whole-voxel shift of each other to share a grid.
GRID_ATOL_VOXELS = 1e-2


def crop_to_common(volumes: Mapping[str, Volume], *, station: int, direction_atol: float,
                   spacing_rtol: float) -> tuple[dict[str, Volume], str | None]:
    """``volumes`` cropped to their common voxels, and a note saying what was cropped (None when nothing).

    ``direction_atol`` and ``spacing_rtol``: how far orientations and spacings may differ on one grid.

    Raises DicomError naming the station and contrast when the contrasts do not share one grid, or
    have no voxel in common.
    """
    names = list(volumes)
    ref = volumes[names[0]]
    step = ref.direction * np.asarray(ref.spacing)
    offsets: dict[str, np.ndarray] = {}
    for c, vol in volumes.items():
        if np.max(np.abs(vol.direction - ref.direction)) > direction_atol or \
                not np.allclose(vol.spacing, ref.spacing, rtol=spacing_rtol):
            raise DicomError(f"station {station}: {c} has a different orientation or spacing from {names[0]} "
                             f"(spacing {vol.spacing} vs {ref.spacing}); expected one grid")
        shift = np.linalg.solve(step, np.asarray(vol.origin) - np.asarray(ref.origin))
        if np.max(np.abs(shift - np.round(shift))) > GRID_ATOL_VOXELS:
            raise DicomError(f"station {station}: {c} is offset {np.round(shift, 3).tolist()} voxels from "
                             f"{names[0]} (origin {vol.origin} vs {ref.origin}); expected a whole-voxel shift")
        offsets[c] = np.round(shift).astype(int)
    if all(vol.shape == ref.shape and not offsets[c].any() for c, vol in volumes.items()):
        return dict(volumes), None
    lo = np.max([offsets[c] for c in names], axis=0)
    hi = np.min([offsets[c] + np.asarray(volumes[c].shape) for c in names], axis=0)
    if np.any(hi <= lo):
        raise DicomError(f"station {station}: its contrasts share no voxel (shapes "
                         f"{[volumes[c].shape for c in names]}, origins {[volumes[c].origin for c in names]})")
    origin = tuple(np.asarray(ref.origin) + step @ lo)
    out: dict[str, Volume] = {}
    for c, vol in volumes.items():
        a, b = lo - offsets[c], hi - offsets[c]
        data = np.asarray(vol.data)[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        out[c] = Volume(data, ref.spacing, origin, ref.direction, dict(vol.meta))
    shapes = ", ".join(f"{c} {'x'.join(map(str, volumes[c].shape))}" for c in names)
    return out, f"station {station}: contrasts cropped to their common {'x'.join(map(str, hi - lo))} voxels ({shapes})"
