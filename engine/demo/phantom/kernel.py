"""Voxel classification of a phantom anatomy: the numba kernel and the per-slice shape parameters.

Each primitive has, at every height, a *membership* ``m`` in millimetres: the radial distance from
its outline, positive inside. A voxel centre goes to the structure of highest score (membership plus
a tissue priority: femur > other bone > muscle > viscera); where the best two are different muscles
and their memberships differ by less than the fat-plane width, the voxel is intermuscular fat. All of
this is a function of the continuous position, so any grid samples the same anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from engine.demo.phantom.template import BAND, BONE, MUSCLE, VISCERA

AIR, FAT, CORTEX, MARROW = 0, 1, 4, 6  # tissue codes (MUSCLE=2, BONE=3 as a primitive tissue, VISCERA=5)
CORTEX_MM = 2.5  # cortical shell of the bones; inside it fatty marrow
FAT_PLANE_MM = 2.0  # width of the intermuscular fat planes (≈ one voxel at UKB resolution)
FILL_MM = 10.0  # muscles grow up to this far into the space between them, inside the body outline
_N_PARAMS = 10  # cx, cy, a, b, cos, sin, t, phi_c, phi_w, fill


@dataclass(frozen=True)
class Primitives:
    """All primitives of one subject, in world millimetres (LPS)."""

    kind: np.ndarray  # (n,) ELLIPSE | BAND
    ident: np.ndarray  # (n,) structure-side identity, 1..255
    tissue: np.ndarray  # (n,) MUSCLE | BONE | VISCERA
    knots: tuple[np.ndarray, ...]  # each (m, 10): z, x, y, a, b, theta, t, phi_c, phi_w (radians), sorted by z
    priority: np.ndarray  # (256,) score bonus per identity

    def __len__(self) -> int:
        return len(self.kind)


def slice_params(prims: Primitives, zs: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape parameters of every primitive at every height ``zs``: (n, nz, 10) floats, (n, nz) active.

    ``scale[ident]`` multiplies a structure's cross-sectional area (ellipse semi-axes by its square
    root, a band's thickness by itself); volume calibration adjusts it.
    """
    zs = np.asarray(zs, dtype=float)
    n = len(prims)
    params = np.zeros((n, len(zs), _N_PARAMS))
    active = np.zeros((n, len(zs)), dtype=np.bool_)
    for p in range(n):
        kn = prims.knots[p]
        active[p] = (zs >= kn[0, 0]) & (zs <= kn[-1, 0])
        cols = [np.interp(zs, kn[:, 0], kn[:, c]) for c in range(1, 10)]
        x, y, a, b, theta, t, phic, phiw = cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]
        s = float(scale[prims.ident[p]])
        if prims.kind[p] == BAND:
            t = t * s
        else:
            a, b = a * np.sqrt(s), b * np.sqrt(s)
        # how far a muscle may grow into free space: capped by its own size so calibration can shrink it
        fill = np.minimum(FILL_MM, 0.5 * t if prims.kind[p] == BAND else 0.5 * np.minimum(a, b))
        params[p] = np.stack([x, y, a, b, np.cos(theta), np.sin(theta), t, phic, phiw, fill], axis=1)
    return params, active


def extents(params: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-extents (hx, hy) in mm of each primitive's outline at each height, (n, nz) each."""
    a, b, c, s, t = params[..., 2], params[..., 3], params[..., 4], params[..., 5], params[..., 6]
    band = (kind == BAND)[:, None]
    a = np.where(band, a + t / 2, a)
    b = np.where(band, b + t / 2, b)
    return np.sqrt((a * c) ** 2 + (b * s) ** 2), np.sqrt((a * s) ** 2 + (b * c) ** 2)


@numba.njit(cache=True, inline="always")
def _membership(kind: int, pr: np.ndarray, x: float, y: float) -> float:  # pragma: no cover - numba
    dx, dy = x - pr[0], y - pr[1]
    u = pr[4] * dx + pr[5] * dy
    v = -pr[5] * dx + pr[4] * dy
    r = np.sqrt(u * u + v * v)
    d = np.sqrt((u / pr[2]) ** 2 + (v / pr[3]) ** 2)
    if kind == BAND:
        if d < 1e-9:
            return -min(pr[2], pr[3])
        big_r = r / d
        m = pr[6] / 2.0 - abs(r - big_r)
        delta = abs((np.arctan2(v, u) - pr[7] + np.pi) % (2.0 * np.pi) - np.pi) - pr[8]
        if delta > 0.0:
            m -= delta * big_r
        return m
    if d < 1e-9:
        return min(pr[2], pr[3])
    return r * (1.0 / d - 1.0)


@numba.njit(parallel=True, cache=True)
def _classify_kernel(xs: np.ndarray, ys: np.ndarray, params: np.ndarray, active: np.ndarray,
                     boxes: np.ndarray, kinds: np.ndarray, idents: np.ndarray, tissues: np.ndarray,
                     priority: np.ndarray, hulls: np.ndarray, fat_mm: np.ndarray, plane: float, cortex: float,
                     out_ident: np.ndarray, out_tissue: np.ndarray) -> None:  # pragma: no cover - numba
    nx, ny, nz = out_ident.shape
    n_prim = params.shape[0]
    for k in numba.prange(nz):
        best = np.full((nx, ny), -1e30)
        best_m = np.full((nx, ny), -1e30)
        best_id = np.zeros((nx, ny), dtype=np.int64)
        best_t = np.zeros((nx, ny), dtype=np.int64)
        second = np.full((nx, ny), -1e30)
        second_t = np.zeros((nx, ny), dtype=np.int64)
        union = np.full((nx, ny), -1e30)
        viscera = np.full((nx, ny), -1e30)
        for p in range(n_prim):
            if not active[p, k]:
                continue
            pr = params[p, k]
            ident, tissue, bonus = idents[p], tissues[p], priority[idents[p]]
            for i in range(boxes[p, k, 0], boxes[p, k, 1]):
                for j in range(boxes[p, k, 2], boxes[p, k, 3]):
                    m = _membership(kinds[p], pr, xs[i], ys[j])
                    if tissue == VISCERA:
                        if m > viscera[i, j]:
                            viscera[i, j] = m
                    elif m > union[i, j]:
                        union[i, j] = m
                    if m <= -pr[9] or (tissue != MUSCLE and m <= 0.0):
                        continue
                    s = m + bonus
                    if ident == best_id[i, j]:
                        if s > best[i, j]:
                            best[i, j] = s
                            best_m[i, j] = m
                    elif s > best[i, j]:
                        second[i, j] = best[i, j]
                        second_t[i, j] = best_t[i, j]
                        best[i, j] = s
                        best_m[i, j] = m
                        best_id[i, j] = ident
                        best_t[i, j] = tissue
                    elif s > second[i, j]:
                        second[i, j] = s
                        second_t[i, j] = tissue
        tsf = fat_mm[k]
        for i in range(nx):
            for j in range(ny):
                ident = 0
                tissue = AIR
                grown = False
                if best_id[i, j] > 0 and best_t[i, j] == MUSCLE and best_m[i, j] <= 0.0 and viscera[i, j] <= 0.0:
                    for h in range(hulls.shape[1]):  # inside the muscle envelope (body minus subcutaneous fat)?
                        hp = hulls[k, h]
                        if hp[2] > 0.0 and ((xs[i] - hp[0]) / hp[2]) ** 2 + ((ys[j] - hp[1]) / hp[3]) ** 2 < 1.0:
                            grown = True
                if best_id[i, j] > 0 and (best_m[i, j] > 0.0 or grown):
                    ident = best_id[i, j]
                    tissue = best_t[i, j]
                    if tissue == BONE:
                        tissue = MARROW if best_m[i, j] > cortex else CORTEX
                    elif tissue == MUSCLE and second_t[i, j] == MUSCLE and best[i, j] - second[i, j] < plane:
                        ident = 0
                        tissue = FAT
                else:
                    body = union[i, j] + tsf
                    for h in range(hulls.shape[1]):
                        hp = hulls[k, h]
                        if hp[2] <= 0.0:
                            continue
                        u, v = xs[i] - hp[0], ys[j] - hp[1]
                        r = np.sqrt(u * u + v * v)
                        d = np.sqrt((u / (hp[2] + tsf)) ** 2 + (v / (hp[3] + tsf)) ** 2)
                        mh = min(hp[2], hp[3]) + tsf if d < 1e-9 else r * (1.0 / d - 1.0)
                        if mh > body:
                            body = mh
                    if body > 0.0:
                        tissue = FAT
                out_ident[i, j, k] = ident
                out_tissue[i, j, k] = tissue


def classify(prims: Primitives, scale: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
             hulls: np.ndarray, fat_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identity (uint8) and tissue (uint8) of every voxel centre of the axis-aligned grid xs × ys × zs.

    ``hulls`` (nz, 2, 4): up to two body-outline ellipses (cx, cy, hx, hy; hx <= 0 = unused) per slice,
    ``fat_mm`` (nz,): subcutaneous fat thickness per slice.
    """
    xs, ys, zs = (np.ascontiguousarray(v, dtype=float) for v in (xs, ys, zs))
    params, active = slice_params(prims, zs, scale)
    hx, hy = extents(params, prims.kind)
    margin = FILL_MM + 1.0
    boxes = np.zeros(params.shape[:2] + (4,), dtype=np.int64)
    for lo_col, hi_col, coords, half, cen in ((0, 1, xs, hx, params[..., 0]), (2, 3, ys, hy, params[..., 1])):
        step = coords[1] - coords[0] if len(coords) > 1 else 1.0
        lo = np.floor((cen - half - margin - coords[0]) / step)
        hi = np.ceil((cen + half + margin - coords[0]) / step) + 1
        boxes[..., lo_col] = np.clip(lo, 0, len(coords))
        boxes[..., hi_col] = np.clip(hi, 0, len(coords))
    out_ident = np.zeros((len(xs), len(ys), len(zs)), dtype=np.uint8)
    out_tissue = np.zeros_like(out_ident)
    _classify_kernel(xs, ys, params, active, boxes, prims.kind.astype(np.int64), prims.ident.astype(np.int64),
                     prims.tissue.astype(np.int64), prims.priority.astype(float),
                     np.ascontiguousarray(hulls, dtype=float), np.ascontiguousarray(fat_mm, dtype=float),
                     FAT_PLANE_MM, CORTEX_MM, out_ident, out_tissue)
    return out_ident, out_tissue
