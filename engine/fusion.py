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
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numba
import numpy as np

import engine
from engine.dicom import CONTRASTS, Package, Station
from engine.errors import FusionError
from engine.volume import Volume, write_nrrd

#: Largest allowed difference between two stations' direction-cosine matrices (per element).
ORIENTATION_ATOL = 1e-3
#: A sample this close (in station voxel units) outside a station's voxel-centre box still counts as
#: inside: it absorbs floating-point error in the affine, nothing more.
COVERAGE_EPS = 1e-4
#: Relative tolerance on the extent / spacing ratio before flooring the voxel count.
_EXTENT_RTOL = 1e-6
#: Fat fraction is left 0 where water + fat is below this (background noise, arbitrary units).
FF_MIN_SIGNAL = 1e-3


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


@numba.njit(parallel=True, cache=True)
def _resample_kernel(maps: np.ndarray, shapes: np.ndarray, offsets: np.ndarray, k_bounds: np.ndarray,
                     data: np.ndarray, out: np.ndarray, eps: float) -> None:  # pragma: no cover - numba
    """Trilinear resampling of every station onto the grid, averaging overlaps.

    maps[s] (3x4): output voxel index → station s voxel index; shapes[s] = (ni, nj, nk); station s's
    voxels lie in data[c, offsets[s] + (k * nj + j) * ni + i]; k_bounds[s] = output slices it may
    touch; out[c, k, j, i] receives the average (0 where no station covers).
    """
    n_contrasts, nz, ny, nx = out.shape
    n_stations = maps.shape[0]
    for k in numba.prange(nz):
        for j in range(ny):
            for i in range(nx):
                weight = 0.0
                for s in range(n_stations):
                    if k < k_bounds[s, 0] or k > k_bounds[s, 1]:
                        continue
                    m = maps[s]
                    x = m[0, 0] * i + m[0, 1] * j + m[0, 2] * k + m[0, 3]
                    y = m[1, 0] * i + m[1, 1] * j + m[1, 2] * k + m[1, 3]
                    z = m[2, 0] * i + m[2, 1] * j + m[2, 2] * k + m[2, 3]
                    ni, nj, nk = shapes[s, 0], shapes[s, 1], shapes[s, 2]
                    if x < -eps or y < -eps or z < -eps or x > ni - 1 + eps or y > nj - 1 + eps or z > nk - 1 + eps:
                        continue
                    x = min(max(x, 0.0), ni - 1.0)
                    y = min(max(y, 0.0), nj - 1.0)
                    z = min(max(z, 0.0), nk - 1.0)
                    i0 = min(int(x), max(ni - 2, 0))
                    j0 = min(int(y), max(nj - 2, 0))
                    k0 = min(int(z), max(nk - 2, 0))
                    fx, fy, fz = x - i0, y - j0, z - k0
                    di = 1 if ni > 1 else 0
                    dj = ni if nj > 1 else 0
                    dk = ni * nj if nk > 1 else 0
                    base = offsets[s] + (k0 * nj + j0) * ni + i0
                    w000 = (1 - fx) * (1 - fy) * (1 - fz)
                    w100 = fx * (1 - fy) * (1 - fz)
                    w010 = (1 - fx) * fy * (1 - fz)
                    w110 = fx * fy * (1 - fz)
                    w001 = (1 - fx) * (1 - fy) * fz
                    w101 = fx * (1 - fy) * fz
                    w011 = (1 - fx) * fy * fz
                    w111 = fx * fy * fz
                    for c in range(n_contrasts):
                        d = data[c]
                        v = (w000 * d[base] + w100 * d[base + di] + w010 * d[base + dj] + w110 * d[base + di + dj]
                             + w001 * d[base + dk] + w101 * d[base + di + dk] + w011 * d[base + dj + dk]
                             + w111 * d[base + di + dj + dk])
                        out[c, k, j, i] += v
                    weight += 1.0
                if weight > 1.0:
                    for c in range(n_contrasts):
                        out[c, k, j, i] /= weight


def _station_stack(volumes: Sequence[Volume], number: int) -> Volume:
    ref = volumes[0]
    for vol in volumes[1:]:
        if vol.shape != ref.shape or not np.allclose(vol.affine, ref.affine, atol=1e-6):
            raise FusionError(f"station {number}: its contrasts differ in geometry (shape {vol.shape} vs "
                              f"{ref.shape}, origin {vol.origin} vs {ref.origin}); expected one shared geometry")
    return ref


def _pack(grid: Volume, stations: Sequence[Sequence[Volume]]) -> tuple[np.ndarray, ...]:
    """Kernel inputs: per-station maps, shapes, offsets, output-slice bounds and the flat contrast data."""
    n_contrasts = len(stations[0])
    maps, shapes, offsets, k_bounds = [], [], [], []
    total = 0
    out_inv = np.linalg.inv(grid.affine)
    for vols in stations:
        if len(vols) != n_contrasts:
            raise FusionError(f"every station needs {n_contrasts} contrasts, found one with {len(vols)}")
        geo = vols[0]
        maps.append((np.linalg.inv(geo.affine) @ grid.affine)[:3])
        shapes.append(geo.shape)
        offsets.append(total)
        total += int(np.prod(geo.shape))
        ks = (np.c_[_corners(geo), np.ones(8)] @ out_inv.T)[:, 2]
        k_bounds.append((int(math.floor(ks.min() - COVERAGE_EPS)), int(math.ceil(ks.max() + COVERAGE_EPS))))
    data = np.empty((n_contrasts, total), dtype=np.float32)
    for vols, off, shape in zip(stations, offsets, shapes, strict=True):
        size = int(np.prod(shape))
        for c, vol in enumerate(vols):
            # (i, j, k) Fortran order == (k, j, i) C order: free when the volume came from DICOM slices
            data[c, off:off + size] = np.asarray(vol.data, dtype=np.float32).transpose(2, 1, 0).ravel()
    return (np.asarray(maps, dtype=np.float64), np.asarray(shapes, dtype=np.int64),
            np.asarray(offsets, dtype=np.int64), np.asarray(k_bounds, dtype=np.int64), data)


def resample_onto(grid: Volume, stations: Sequence[Sequence[Volume]], *, device: str = "auto") -> list[np.ndarray]:
    """Resample each station's contrast volumes onto ``grid``; returns one float32 ``[i, j, k]`` array per contrast.

    ``stations[s][c]`` is contrast ``c`` of station ``s``; a station's contrasts share one geometry.
    ``device``: ``"cpu"`` (numba, parallel), ``"cuda"`` (numba.cuda; FusionError when no GPU) or
    ``"auto"`` (CUDA when available).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', found {device!r}")
    if not stations:
        raise FusionError("cannot fuse: expected at least one station, found none")
    for n, vols in enumerate(stations):
        _station_stack(vols, n)
    maps, shapes, offsets, k_bounds, data = _pack(grid, stations)
    nx, ny, nz = grid.shape
    use_cuda = device == "cuda" or (device == "auto" and cuda_available())
    if use_cuda:
        from engine.fusion_cuda import resample_cuda

        out = resample_cuda(maps, shapes, offsets, k_bounds, data, (nz, ny, nx), COVERAGE_EPS)
    else:
        out = np.zeros((data.shape[0], nz, ny, nx), dtype=np.float32)
        _resample_kernel(maps, shapes, offsets, k_bounds, data, out, COVERAGE_EPS)
    return [out[c].transpose(2, 1, 0) for c in range(out.shape[0])]


def cuda_available() -> bool:
    """True when numba can reach a CUDA GPU (never raises)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except (ImportError, OSError, RuntimeError):
        return False


def _as_stations(stations: Package | Sequence[Station | Mapping[str, Volume]]) -> list[Station]:
    items = stations.stations if isinstance(stations, Package) else stations
    out: list[Station] = []
    for n, item in enumerate(items):
        if isinstance(item, Station):
            out.append(item)
        elif isinstance(item, Mapping):
            uids = {c: v.meta.get("msmv_series_uid", "") for c, v in item.items()}
            out.append(Station(n + 1, dict(item), uids, ""))
        else:
            raise TypeError(f"fuse expects a Package, Stations or contrast→Volume mappings, found {type(item).__name__}")
    return out


def fuse(
    stations: Package | Sequence[Station | Mapping[str, Volume]],
    *,
    contrasts: Sequence[str] = CONTRASTS,
    device: str = "auto",
) -> dict[str, Volume]:
    """Fuse stations onto :func:`global_grid`: one float32 Volume per contrast, overlaps averaged.

    Metadata on each output: ``msmv_contrast``, ``msmv_stations``, ``msmv_series_uids`` (that
    contrast's source series, station order), ``msmv_station_ranges`` (number:z_low..z_high mm) and
    ``msmv_version``.
    """
    kept = _as_stations(stations)
    if not kept:
        raise FusionError("cannot fuse: expected at least one station, found none")
    for st in kept:
        missing = [c for c in contrasts if c not in st.volumes]
        if missing:
            raise FusionError(f"station {st.number} lacks {', '.join(missing)}; found {', '.join(st.volumes)}")
    stacks = [[st.volumes[c] for c in contrasts] for st in kept]
    for st, vols in zip(kept, stacks, strict=True):
        _station_stack(vols, st.number)
    grid = global_grid([vols[0] for vols in stacks])
    arrays = resample_onto(grid, stacks, device=device)
    ranges = ";".join(f"{st.number}:{lo:.3f}..{hi:.3f}" for st in kept for lo, hi in [st.z_range])
    common = {
        "msmv_stations": ",".join(str(st.number) for st in kept),
        "msmv_station_ranges": ranges,
        "msmv_version": engine.__version__,
    }
    return {
        c: Volume(arr, grid.spacing, grid.origin, grid.direction,
                  {**common, "msmv_contrast": c,
                   "msmv_series_uids": ",".join(st.series_uids.get(c, "") for st in kept)})
        for c, arr in zip(contrasts, arrays, strict=True)
    }


def fat_fraction(water: Volume, fat: Volume, *, min_signal: float = FF_MIN_SIGNAL) -> Volume:
    """fat / (fat + water) voxel-wise on a shared grid; 0 where the summed signal is below ``min_signal``."""
    if water.shape != fat.shape:
        raise ValueError(f"water and fat must share a grid, found shapes {water.shape} and {fat.shape}")
    w = np.asarray(water.data, dtype=np.float32)
    f = np.asarray(fat.data, dtype=np.float32)
    total = w + f
    ff = np.divide(f, total, out=np.zeros_like(total), where=total > min_signal)
    meta = {k: v for k, v in fat.meta.items() if k != "msmv_series_uids"}
    return Volume(np.asfortranarray(ff), water.spacing, water.origin, water.direction,
                  {**meta, "msmv_contrast": "fat_fraction"})


def write_fused(fused: Mapping[str, Volume], out_dir: str | os.PathLike[str], *,
                with_fat_fraction: bool = False) -> dict[str, Path]:
    """Write ``{contrast}.nrrd`` for each fused contrast (and ``fat_fraction.nrrd`` on request)."""
    out = Path(out_dir)
    volumes = dict(fused)
    if with_fat_fraction:
        if "water" not in volumes or "fat" not in volumes:
            raise FusionError(f"fat fraction needs water and fat, found {', '.join(volumes)}")
        volumes["fat_fraction"] = fat_fraction(volumes["water"], volumes["fat"])
    return {name: write_nrrd(out / f"{name}.nrrd", vol) for name, vol in volumes.items()}
