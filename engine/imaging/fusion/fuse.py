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
interpolates trilinearly (numba kernels in :mod:`engine.imaging.fusion.kernels`, parallel over output slices,
with a separable fast path for grid-aligned stations; a ``numba.cuda`` kernel when a GPU is present).
Where stations overlap the values are averaged; voxels covered by no station are 0.
"""

from __future__ import annotations

import ctypes.util
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import engine
from engine.errors import FusionError
from engine.imaging.dicom.read import Package, Station
from engine.imaging.fusion import kernels as fusion_kernels
from engine.imaging.fusion.swap import SWAP_PAIR, SwapReport, correct_swaps
from engine.imaging.volume import Volume, write_nifti, write_nrrd
from store.vocabulary import CONTRASTS

#: Largest allowed difference between two stations' direction-cosine matrices (per element).
ORIENTATION_ATOL = 1e-3
#: A sample this close (in station voxel units) outside a station's voxel-centre box still counts as
#: inside: it absorbs floating-point error in the affine, nothing more.
COVERAGE_EPS = 1e-4
#: Relative tolerance on the extent / spacing ratio before flooring the voxel count.
_EXTENT_RTOL = 1e-6
#: Fat fraction is left 0 where water + fat is below this (background noise, arbitrary units).
FF_MIN_SIGNAL = 1e-3
#: File formats :func:`write_fused` writes (``msmv fuse --format``).
FUSED_FORMATS: tuple[str, ...] = ("nrrd", "nifti")


def _corners(vol: Volume) -> np.ndarray:
    """World coordinates of the 8 voxel-centre corners of ``vol`` (8, 3)."""
    n = np.asarray(vol.shape, dtype=float) - 1.0
    idx = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
    return vol.world(idx)


def check_orientations(geometries: Sequence[Volume], *, atol: float = ORIENTATION_ATOL,
                       names: Sequence[str] | None = None) -> np.ndarray:
    """Return the stations' common direction matrix, or raise FusionError naming the odd one out.

    ``names`` label the geometries in messages (default: their positions, 0, 1, ...).
    """
    if len(geometries) == 0:
        raise FusionError("cannot fuse: expected at least one station, found none")
    labels = [str(n) for n in range(len(geometries))] if names is None else [str(n) for n in names]
    ref = geometries[0].direction
    for n, vol in enumerate(geometries[1:], start=1):
        diff = float(np.max(np.abs(vol.direction - ref)))
        if diff > atol:
            raise FusionError(
                f"station {labels[n]} has a different orientation from station {labels[0]} (largest "
                f"direction-cosine difference {diff:.4g} > {atol:g}): expected\n{np.round(ref, 4)}\nfound\n"
                f"{np.round(vol.direction, 4)}"
            )
    return ref


def global_grid(geometries: Sequence[Volume], *, atol: float = ORIENTATION_ATOL,
                names: Sequence[str] | None = None) -> Volume:
    """The fused grid of ``geometries`` as an empty float32 Volume (see the module docstring for the rule)."""
    for vol in geometries:
        if not isinstance(vol, Volume):
            raise TypeError(f"global_grid expects Volume objects, found {type(vol).__name__}")
    direction = check_orientations(geometries, atol=atol, names=names)
    spacing_all = np.array([v.spacing for v in geometries], dtype=float)
    spacing = spacing_all.min(axis=0)
    # station corners in the grid frame: coordinates along the common axes
    frame = np.concatenate([_corners(v) for v in geometries]) @ direction
    low, high = frame.min(axis=0), frame.max(axis=0)
    shape = tuple(int(math.floor((hi - lo) / sp * (1 + _EXTENT_RTOL) + _EXTENT_RTOL)) + 1
                  for lo, hi, sp in zip(low, high, spacing, strict=True))
    origin = direction @ low
    return Volume(np.zeros(shape, dtype=np.float32), tuple(spacing), tuple(origin), direction.copy())


def _station_stack(volumes: Sequence[Volume], number: int) -> Volume:
    ref = volumes[0]
    for vol in volumes[1:]:
        if vol.shape != ref.shape or not np.allclose(vol.affine, ref.affine, atol=1e-6):
            raise FusionError(f"station {number}: its contrasts differ in geometry (shape {vol.shape} vs "
                              f"{ref.shape}, origin {vol.origin} vs {ref.origin}); expected one shared geometry")
    return ref


def _pack(grid: Volume, stations: Sequence[Sequence[Volume]]) -> tuple[np.ndarray, ...]:
    """Kernel inputs: per-station maps (output index → station index), shapes, offsets and the flat data."""
    n_contrasts = len(stations[0])
    maps, shapes, offsets = [], [], []
    total = 0
    for vols in stations:
        if len(vols) != n_contrasts:
            raise FusionError(f"every station needs {n_contrasts} contrasts, found one with {len(vols)}")
        geo = vols[0]
        maps.append((np.linalg.inv(geo.affine) @ grid.affine)[:3])
        shapes.append(geo.shape)
        offsets.append(total)
        total += int(np.prod(geo.shape))
    data = np.empty((n_contrasts, total), dtype=np.float32)
    for vols, off, shape in zip(stations, offsets, shapes, strict=True):
        size = int(np.prod(shape))
        for c, vol in enumerate(vols):
            # (i, j, k) Fortran order == (k, j, i) C order: free when the volume came from DICOM slices
            data[c, off:off + size] = np.asarray(vol.data, dtype=np.float32).transpose(2, 1, 0).ravel()
    return np.asarray(maps, dtype=np.float64), np.asarray(shapes, dtype=np.int64), np.asarray(offsets, dtype=np.int64), data


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
    maps, shapes, offsets, data = _pack(grid, stations)
    nx, ny, nz = grid.shape
    bounds = fusion_kernels.k_bounds(maps, shapes, COVERAGE_EPS)
    if device == "cuda" or (device == "auto" and cuda_available()):
        from engine.imaging.fusion.cuda import resample_cuda  # noqa: PLC0415 - needs a GPU driver

        out = resample_cuda(maps, shapes, offsets, bounds, data, (nz, ny, nx), COVERAGE_EPS)
    else:
        out = np.zeros((data.shape[0], nz, ny, nx), dtype=np.float32)
        tables = fusion_kernels.aligned_tables(maps, shapes, grid.shape, COVERAGE_EPS)
        if tables is not None:
            fusion_kernels.resample_aligned(shapes, offsets, *tables, data, out)
        else:
            fusion_kernels.resample_general(maps, shapes, offsets, bounds, data, out, COVERAGE_EPS)
    return [out[c].transpose(2, 1, 0) for c in range(out.shape[0])]


@functools.cache
def cuda_available() -> bool:
    """True when numba can reach a CUDA GPU (never raises; asked once per process).

    Without a CUDA driver library on the system this answers False without importing numba.cuda
    (~0.4 s); numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) counts as available.
    """
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and ctypes.util.find_library("cuda") is None:
        return False
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


class FusedVolumes(dict[str, Volume]):
    """What :func:`fuse` returns: contrast → fused Volume, plus the fat–water swap check's report."""

    def __init__(self, volumes: Mapping[str, Volume], swaps: SwapReport) -> None:
        super().__init__(volumes)
        self.swaps = swaps

    @property
    def swapped_stations(self) -> tuple[int, ...]:
        """Stations whose water and fat were found exchanged and were exchanged back before fusing."""
        return self.swaps.swapped


def fuse(
    stations: Package | Sequence[Station | Mapping[str, Volume]],
    *,
    contrasts: Sequence[str] = CONTRASTS,
    device: str = "auto",
    fix_swaps: bool = True,
) -> FusedVolumes:
    """Fuse stations onto :func:`global_grid`: one float32 Volume per contrast, overlaps averaged.

    With ``fix_swaps`` (default), stations whose water and fat are exchanged are found and exchanged
    back first (:mod:`engine.imaging.fusion.swap`; whole-station swaps only, partial swaps are out of
    scope); this needs each station's water and fat, whichever ``contrasts`` are fused.

    Metadata on each output: ``msmv_contrast``, ``msmv_stations``, ``msmv_series_uids`` (that
    contrast's source series, station order), ``msmv_station_ranges`` (number:z_low..z_high mm),
    ``msmv_swapped_stations`` (comma-separated, empty when none) and ``msmv_version``.
    """
    kept = _as_stations(stations)
    if not kept:
        raise FusionError("cannot fuse: expected at least one station, found none")
    for st in kept:
        missing = [c for c in contrasts if c not in st.volumes]
        if missing:
            raise FusionError(f"station {st.number} lacks {', '.join(missing)}; found {', '.join(st.volumes)}")
        # the swap check reads water and fat even when only other contrasts are fused
        checked = dict.fromkeys([*contrasts, *(c for c in SWAP_PAIR if fix_swaps and c in st.volumes)])
        _station_stack([st.volumes[c] for c in checked], st.number)
    if fix_swaps:
        kept, swaps = correct_swaps(kept)
    else:
        swaps = SwapReport(checked=False)
    stacks = [[st.volumes[c] for c in contrasts] for st in kept]
    grid = global_grid([vols[0] for vols in stacks], names=[str(st.number) for st in kept])
    arrays = resample_onto(grid, stacks, device=device)
    ranges = ";".join(f"{st.number}:{lo:.3f}..{hi:.3f}" for st in kept for lo, hi in [st.z_range])
    common = {
        "msmv_stations": ",".join(str(st.number) for st in kept),
        "msmv_station_ranges": ranges,
        "msmv_swapped_stations": swaps.header_value,
        "msmv_version": engine.__version__,
    }
    return FusedVolumes({
        c: Volume(arr, grid.spacing, grid.origin, grid.direction,
                  {**common, "msmv_contrast": c,
                   "msmv_series_uids": ",".join(st.series_uids.get(c, "") for st in kept)})
        for c, arr in zip(contrasts, arrays, strict=True)
    }, swaps)


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
                with_fat_fraction: bool = False, compress: bool = False, fmt: str = "nrrd") -> dict[str, Path]:
    """Write ``{contrast}.nrrd`` for each fused contrast (and ``fat_fraction.nrrd`` on request).

    Files are raw (uncompressed) NRRD by default: a fused UKB subject is ~45 MB per contrast, and gzip
    of noisy float32 MR data costs ~1.5 CPU-seconds per contrast for a ~1.3x saving, more than the
    whole rest of the fusion (benchmarks/fusion.py). ``compress=True`` writes gzip NRRD instead.
    ``fmt="nifti"`` writes ``{contrast}.nii`` (``.nii.gz`` with ``compress``) on the same grid, RAS
    affine, with the header metadata in a JSON sidecar each (:func:`engine.imaging.volume.write_nifti`).
    """
    if fmt not in FUSED_FORMATS:
        raise FusionError(f"fused volumes are written as {' or '.join(FUSED_FORMATS)}, found {fmt!r}")
    out = Path(out_dir)
    volumes: dict[str, Volume | Callable[[], Volume]] = dict(fused)
    if with_fat_fraction:
        if "water" not in fused or "fat" not in fused:
            raise FusionError(f"fat fraction needs water and fat, found {', '.join(fused)}")
        volumes["fat_fraction"] = functools.partial(fat_fraction, fused["water"], fused["fat"])
    header = {"encoding": "gzip" if compress else "raw"}
    suffix = (".nii.gz" if compress else ".nii") if fmt == "nifti" else ".nrrd"

    def write(name: str, vol: Volume | Callable[[], Volume]) -> Path:
        vol = vol if isinstance(vol, Volume) else vol()  # the fat fraction is computed in its writer's thread
        if fmt == "nifti":
            return write_nifti(out / f"{name}{suffix}", vol)
        return write_nrrd(out / f"{name}{suffix}", vol, extra_header=header)

    # numpy, zlib and file writes release the GIL: one thread per file keeps every core busy
    workers = max(1, min(len(volumes), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(write, name, vol) for name, vol in volumes.items()}
        return {name: future.result() for name, future in futures.items()}
