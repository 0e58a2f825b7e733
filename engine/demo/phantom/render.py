"""Rendering a phantom anatomy on a grid: truth labels/sides and the four Dixon contrasts.

Shapes are continuous, evaluated at voxel centres, so every grid samples the same anatomy: truth on
the fused grid, training volumes at the model spacing. All muscles share one tissue signal, so
structures differ by position and shape (and the fat planes between them), never by brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.demo.phantom.anatomy import (
    FUSED_STATIONS,
    LABEL_OF,
    SIDE_OF,
    Anatomy,
    Signal,
    body_layout,
    sample_anatomy,
)
from engine.demo.phantom.kernel import AIR, CORTEX, FAT, MARROW, classify, extents, slice_params
from engine.demo.phantom.template import MUSCLE, VISCERA
from engine.imaging.volume import Volume
from store.structures import STRUCTURES

DEFAULT_SPACING = (1.5, 1.5, 2.0)  # the study's model spacing (docs/architecture.md "Segmentation")
BODY_MARGIN_MM = 10.0


@dataclass(frozen=True)
class Phantom:
    """A rendered subject: truth labels, sides and the four Dixon contrasts on one grid."""

    labels: Volume  # uint8 0-27
    sides: Volume  # uint8: 0 background/unlabelled, 1 left, 2 right
    water: Volume
    fat: Volume
    in_phase: Volume
    opposed_phase: Volume
    anatomy: Anatomy


def _axes(grid: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(grid, Volume):
        raise TypeError(f"grid must be an engine.imaging.volume.Volume, found {type(grid).__name__}")
    if not np.allclose(grid.direction, np.eye(3), atol=1e-6):
        raise ValueError(f"phantoms render on axis-aligned grids (identity direction), found\n{grid.direction}")
    return tuple(o + s * np.arange(n) for o, s, n in zip(grid.origin, grid.spacing, grid.shape, strict=True))


def _classify(anatomy: Anatomy, grid: Volume) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, zs = _axes(grid)
    hulls, fat_mm = body_layout(anatomy, zs)
    return classify(anatomy.prims, anatomy.scale, xs, ys, zs, hulls, fat_mm)


def tissue_signals(signal: Signal) -> tuple[np.ndarray, np.ndarray]:
    """Water and fat signal per tissue code (lookup tables of length 8).

    One muscle signal for every muscle; fat tissue fat-dominant; marrow fatty; cortex dark.
    """
    water = np.zeros(8, dtype=np.float32)
    fat = np.zeros(8, dtype=np.float32)
    mw, ff, f = signal.muscle_water, signal.muscle_fat_fraction, signal.fat
    water[MUSCLE], fat[MUSCLE] = mw, mw * ff / (1 - ff)
    water[FAT], fat[FAT] = 0.08 * mw, f
    water[MARROW], fat[MARROW] = 0.12 * mw, 0.85 * f
    water[CORTEX], fat[CORTEX] = 6.0, 6.0
    water[VISCERA], fat[VISCERA] = 0.75 * mw, 0.12 * f
    water[AIR] = fat[AIR] = 0.0
    return water, fat


def bias_field(rng: np.random.Generator, grid: Volume, amplitude: float) -> np.ndarray:
    """A smooth multiplicative field exp(Σ terms) on the grid, |log| ≲ amplitude (coil sensitivity)."""
    xs, ys, zs = _axes(grid)
    log_b = np.zeros(grid.shape, dtype=np.float32)
    n_terms = 4
    for _ in range(n_terms):
        k = 2 * np.pi / rng.uniform(350.0, 900.0, size=3)  # wavelengths in mm: smooth over a station
        ph = rng.uniform(0, 2 * np.pi, size=3)
        c = rng.uniform(-1, 1) * amplitude / np.sqrt(n_terms)
        fx, fy, fz = (np.cos(kk * v + p).astype(np.float32) for kk, v, p in zip(k, (xs, ys, zs), ph, strict=True))
        log_b += np.float32(c) * fx[:, None, None] * fy[None, :, None] * fz[None, None, :]
    return np.exp(log_b)


def _rician(rng: np.random.Generator, s: np.ndarray, sd: float) -> np.ndarray:
    """|s + n1 + i·n2| with n1, n2 ~ N(0, sd²): magnitude-image noise (Rayleigh where s = 0). In place."""
    out = rng.standard_normal(s.shape, dtype=np.float32)
    out *= np.float32(sd)
    out += s
    np.square(out, out=out)
    n2 = rng.standard_normal(s.shape, dtype=np.float32)
    n2 *= np.float32(sd)
    np.square(n2, out=n2)
    out += n2
    return np.sqrt(out, out=out)


def render(anatomy: Anatomy, grid: Volume, *, noise_rng: np.random.Generator | None = None) -> Phantom:
    """Sample ``anatomy`` at the voxel centres of ``grid`` (axis-aligned; only its geometry is used).

    Without ``noise_rng`` the contrasts are noiseless: in = W + F and opp = |W − F| exactly. With it, a
    smooth bias field multiplies water and fat, and each contrast gets Rician noise.
    """
    ident, tissue = _classify(anatomy, grid)
    labels = LABEL_OF[ident]
    sides = np.where(labels > 0, SIDE_OF[ident], 0).astype(np.uint8)
    w_lut, f_lut = tissue_signals(anatomy.signal)
    water, fat = w_lut[tissue], f_lut[tissue]
    if noise_rng is not None:
        b = bias_field(noise_rng, grid, anatomy.signal.bias_amplitude)
        water, fat = water * b, fat * b
    in_phase, opposed = water + fat, np.abs(water - fat)
    if noise_rng is not None:
        sd = anatomy.signal.noise_sd
        water, fat, in_phase, opposed = (_rician(noise_rng, c, sd) for c in (water, fat, in_phase, opposed))

    def vol(data: np.ndarray, name: str) -> Volume:
        return Volume(data, grid.spacing, grid.origin, grid.direction, {"msmv_phantom": name})

    return Phantom(vol(labels, "labels"), vol(sides, "sides"), vol(water.astype(np.float32), "water"),
                   vol(fat.astype(np.float32), "fat"), vol(in_phase.astype(np.float32), "in_phase"),
                   vol(opposed.astype(np.float32), "opposed_phase"), anatomy)


def truth_maps(anatomy: Anatomy, grid: Volume | None = None) -> tuple[Volume, Volume]:
    """Ground-truth labels (uint8 0-27) and sides (uint8: 1 left, 2 right, 0 none) on ``grid``.

    ``grid`` defaults to the fused grid of stations 3-6 (:func:`fused_grid`).
    """
    grid = fused_grid(anatomy) if grid is None else grid
    ident, _tissue = _classify(anatomy, grid)
    labels = LABEL_OF[ident]
    sides = np.where(labels > 0, SIDE_OF[ident], 0).astype(np.uint8)
    meta = {"msmv_phantom_seed": str(anatomy.seed)}
    return (Volume(labels, grid.spacing, grid.origin, grid.direction, {**meta, "msmv_phantom": "labels"}),
            Volume(sides, grid.spacing, grid.origin, grid.direction, {**meta, "msmv_phantom": "sides"}))


def truth_labels(anatomy: Anatomy, fused: Volume | None = None) -> Volume:
    """Ground-truth label map on the fused grid (default: the grid :func:`engine.imaging.fusion.fuse.global_grid`
    builds from stations 3-6, so truth and fused volumes share voxels exactly)."""
    return truth_maps(anatomy, fused)[0]


def fused_grid(anatomy: Anatomy, stations: tuple[int, ...] = FUSED_STATIONS) -> Volume:
    """The grid the fusion engine builds from these stations (:func:`engine.imaging.fusion.fuse.global_grid`)."""
    from engine.imaging.fusion.fuse import global_grid

    return global_grid([anatomy.station(n).geometry for n in stations])


def body_grid(anatomy: Anatomy, spacing: tuple[float, float, float] = DEFAULT_SPACING, *,
              margin_mm: float = BODY_MARGIN_MM) -> Volume:
    """An axis-aligned grid over the body inside the fused z-range, with a small in-plane margin."""
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (mm), found {spacing!r}")
    z0, z1 = anatomy.fused_z_range
    zs = np.arange(z0, z1 + 1e-6, 5.0)
    hulls, fat_mm = body_layout(anatomy, zs)
    params, active = slice_params(anatomy.prims, zs, anatomy.scale)
    hx, hy = extents(params, anatomy.prims.kind)
    pad = fat_mm.max() + margin_mm
    lo = [np.where(active, params[..., c] - h, np.inf).min() - pad for c, h in ((0, hx), (1, hy))]
    hi = [np.where(active, params[..., c] + h, -np.inf).max() + pad for c, h in ((0, hx), (1, hy))]
    for slot in range(2):  # the body outline can reach past the structures' boxes
        use = hulls[:, slot, 2] > 0
        if use.any():
            for c in range(2):
                lo[c] = min(lo[c], (hulls[use, slot, c] - hulls[use, slot, 2 + c]).min() - pad)
                hi[c] = max(hi[c], (hulls[use, slot, c] + hulls[use, slot, 2 + c]).max() + pad)
    lo.append(z0)
    hi.append(z1)
    shape = tuple(int(np.floor((h - low) / s)) + 1 for low, h, s in zip(lo, hi, spacing, strict=True))
    return Volume(np.broadcast_to(np.float32(0), shape), spacing, tuple(lo))


def make_phantom(seed: int, *, sex: int | None = None, volumes: dict[tuple[str, str], float] | None = None,
                 spacing: tuple[float, float, float] = DEFAULT_SPACING, noise: bool = True) -> Phantom:
    """Sample and render one subject over its body (fused z-range) at ``spacing``; seeded, reproducible.

    ``noise=True`` adds the bias field and Rician noise (what a model should train on).
    """
    rng = np.random.default_rng(seed)
    if sex is None:
        sex = int(rng.integers(0, 2))
    anatomy = sample_anatomy(rng, sex=sex, volumes=volumes, seed=seed)
    return render(anatomy, body_grid(anatomy, spacing), noise_rng=rng if noise else None)


def measure_volumes(labels: Volume, sides: Volume) -> dict[tuple[str, str], float]:
    """cm³ per (structure key, side) counted from a label map and its side map."""
    if labels.shape != sides.shape:
        raise ValueError(f"labels {labels.shape} and sides {sides.shape} must share a grid")
    code = labels.data.astype(np.int64) * 3 + sides.data.astype(np.int64)
    counts = np.bincount(code.ravel(), minlength=28 * 3)
    mm3 = labels.voxel_volume_mm3
    return {(s.key, side): float(counts[s.label * 3 + i + 1] * mm3 / 1000.0)
            for s in STRUCTURES for i, side in enumerate(("left", "right"))}
