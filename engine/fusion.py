"""Multi-station fusion: one global grid spanning every kept station, trilinear resampling, overlap average.

The grid rule (:func:`global_grid`) is public because phantoms render ground-truth labels on exactly
this grid:

- orientation: the stations' common orientation (all must agree within ``atol``; else FusionError);
- in-plane spacing: the stations' in-plane spacing (the finest one per axis when they differ);
- through-plane spacing: the finest station slice spacing, so no station is down-sampled along the
  body axis (UKB trunk and leg stations differ in slice spacing);
- extent: the union of the stations' voxel-centre bounding boxes, starting at its low corner; the
  voxel count per axis is ``floor(extent / spacing) + 1`` so every grid voxel lies inside the union.

Resampling maps every output voxel into every station's voxel space through the inverse affine and
interpolates trilinearly (a numba kernel, parallel over output slices; a ``numba.cuda`` kernel when a
GPU is present). Where stations overlap the values are averaged; voxels covered by no station are 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.errors import FusionError
from engine.volume import Volume

#: Largest allowed difference between two stations' direction-cosine matrices (per element).
ORIENTATION_ATOL = 1e-3
#: A sample this close (in station voxel units) outside a station's voxel-centre box still counts as
#: inside: it absorbs floating-point error in the affine, nothing more.
COVERAGE_EPS = 1e-4
#: Relative tolerance on the extent / spacing ratio before flooring the voxel count.
_EXTENT_RTOL = 1e-6

CONTRASTS: tuple[str, ...] = ("water", "fat", "in_phase", "opposed_phase")


def _corners(vol: Volume) -> np.ndarray:
    """World coordinates of the 8 voxel-centre corners of ``vol`` (8, 3)."""
    n = np.asarray(vol.shape, dtype=float) - 1.0
    idx = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
    return vol.world(idx)


def check_orientations(geometries: Sequence[Volume], *, atol: float = ORIENTATION_ATOL) -> np.ndarray:
    """Return the stations' common direction matrix, or raise FusionError naming the odd one out."""
    if len(geometries) == 0:
        raise FusionError("cannot fuse: expected at least one station, found none")
    ref = geometries[0].direction
    for n, vol in enumerate(geometries[1:], start=1):
        diff = float(np.max(np.abs(vol.direction - ref)))
        if diff > atol:
            raise FusionError(
                f"station {n} has a different orientation from station 0 (largest direction-cosine "
                f"difference {diff:.4g} > {atol:g}): expected\n{np.round(ref, 4)}\nfound\n"
                f"{np.round(vol.direction, 4)}"
            )
    return ref


def global_grid(geometries: Sequence[Volume], *, atol: float = ORIENTATION_ATOL) -> Volume:
    """The fused grid of ``geometries`` as an empty float32 Volume (see the module docstring for the rule)."""
    for vol in geometries:
        if not isinstance(vol, Volume):
            raise TypeError(f"global_grid expects Volume objects, found {type(vol).__name__}")
    direction = check_orientations(geometries, atol=atol)
    spacing_all = np.array([v.spacing for v in geometries], dtype=float)
    spacing = spacing_all.min(axis=0)
    # station corners in the grid frame: coordinates along the common axes
    frame = np.concatenate([_corners(v) for v in geometries]) @ direction
    low, high = frame.min(axis=0), frame.max(axis=0)
    shape = tuple(int(math.floor((hi - lo) / sp * (1 + _EXTENT_RTOL) + _EXTENT_RTOL)) + 1
                  for lo, hi, sp in zip(low, high, spacing, strict=True))
    origin = direction @ low
    return Volume(np.zeros(shape, dtype=np.float32), tuple(spacing), tuple(origin), direction.copy())
