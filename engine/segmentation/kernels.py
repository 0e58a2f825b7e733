"""numba CPU kernels of the segment stage outside the network (parallel over the first axis).

- :func:`zoom_linear` is ``scipy.ndimage.affine_transform(data, scale, order=1, mode="nearest",
  prefilter=False)`` for a diagonal ``scale`` (an axis-aligned zoom with the same first voxel), bit for
  bit: the per-axis taps and weights come from :func:`linear_taps`, which repeats SciPy's
  ``NI_ZoomShift`` arithmetic, and each output voxel sums its eight taps in double precision in SciPy's
  order (last axis fastest, each tap's value times the axis-0, axis-1 then axis-2 weight), rounded
  once to float32. Compiled without ``fastmath`` so that nothing is reordered.
- :func:`decide` is the calibrated argmax over classes and the low-confidence count of
  :mod:`engine.quality.confidence` in one pass over the logits.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def zoom_coordinates(n_out: int, zoom: float, n_in: int) -> np.ndarray:
    """Source coordinate of each output index along one axis: ``k * zoom`` clamped to ``[0, n_in - 1]``
    (SciPy's ``map_coordinate`` in ``mode="nearest"``), float64."""
    return np.clip(np.arange(n_out, dtype=np.float64) * np.float64(zoom), 0.0, n_in - 1.0)


def nearest_index(n_out: int, zoom: float, n_in: int) -> np.ndarray:
    """Source index of each output index for nearest-neighbour (``order=0``) resampling along one axis.

    SciPy takes ``floor(c + 0.5)`` of the clamped coordinate ``c``: halves round up (``k * zoom = 0.5``
    picks index 1), unlike :func:`numpy.round`.
    """
    return np.floor(zoom_coordinates(n_out, zoom, n_in) + 0.5).astype(np.intp)


def linear_taps(n_out: int, zoom: float, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(low index, high index, low weight, high weight)`` per output index for linear interpolation.

    As SciPy computes them: ``low = floor(c)``, ``w_low = 1 - (c - low)``, ``w_high = 1 - w_low`` (not
    ``c - low``: the weights sum to one exactly); a high tap past the last sample is mirrored back inside
    (SciPy's border offsets; its weight is then 0 or the axis has one sample).
    """
    c = zoom_coordinates(n_out, zoom, n_in)
    low = np.floor(c)
    w_low = 1.0 - (c - low)
    w_high = 1.0 - w_low
    lo = low.astype(np.intp)
    hi = lo + 1
    if n_in <= 1:
        hi[:] = 0
    else:
        hi = np.where(hi >= n_in, 2 * n_in - 2 - hi, hi)
    return lo, hi, w_low, w_high


@numba.njit(parallel=True, cache=True)
def _zoom_linear(data: np.ndarray, ix: np.ndarray, wx: np.ndarray, iy: np.ndarray, wy: np.ndarray,
                 iz: np.ndarray, wz: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    """``ix[i]`` / ``wx[i]``: the two taps and weights of output index ``i`` on axis 0 (``(n, 2)``); so for y, z."""
    nx, ny, nz = out.shape
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                t = 0.0
                for a in range(2):
                    for b in range(2):
                        for c in range(2):
                            v = np.float64(data[ix[i, a], iy[j, b], iz[k, c]])
                            v *= wx[i, a]
                            v *= wy[j, b]
                            v *= wz[k, c]
                            t += v
                out[i, j, k] = np.float32(t)


def zoom_linear(data: np.ndarray, zoom: tuple[float, float, float], shape: tuple[int, int, int],
                out: np.ndarray | None = None) -> np.ndarray:
    """Trilinear resampling of a 3-D array: output ``(i, j, k)`` samples source ``(i, j, k) * zoom``
    (clamped to the grid), float32; equal to SciPy's ``affine_transform`` as the module says.

    ``out``: a float32 C-contiguous array of ``shape`` to write into (e.g. one channel of a stack).
    """
    src = np.ascontiguousarray(data, dtype=np.float32)
    if src.ndim != 3 or len(shape) != 3 or len(zoom) != 3:
        raise ValueError(f"zoom_linear works on 3-D arrays, got data {src.shape}, zoom {zoom}, shape {shape}")
    taps = [linear_taps(m, z, n) for m, z, n in zip(shape, zoom, src.shape, strict=True)]
    idx = [np.stack([lo, hi], axis=1) for lo, hi, _, _ in taps]
    wts = [np.stack([wl, wh], axis=1) for _, _, wl, wh in taps]
    if out is None:
        out = np.empty(tuple(shape), dtype=np.float32)
    elif out.shape != tuple(shape) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 of shape {tuple(shape)}, got {out.dtype} {out.shape}")
    _zoom_linear(src, idx[0], wts[0], idx[1], wts[1], idx[2], wts[2], out)
    return out


#: Relative margin by which :func:`decide` keeps its shortcut away from the low-confidence cut, so the
#: shortcut never answers differently from the full double-precision sum (whose error is ~1e-15).
_SAFE = 1e-12


@numba.njit(parallel=True, cache=True)
def _decide(logits: np.ndarray, shift: np.ndarray, body: np.ndarray, use_body: bool, cut: float, near: float,
            labels: np.ndarray, low: np.ndarray) -> None:  # pragma: no cover - numba
    n_classes, nx, ny, nz = logits.shape
    for i in numba.prange(nx):
        best = np.empty(nz, dtype=np.float32)
        second = np.empty(nz, dtype=np.float32)
        arg = np.zeros(nz, dtype=np.int64)
        count = 0
        for j in range(ny):
            for k in range(nz):
                best[k] = logits[0, i, j, k] + shift[0]
                second[k] = -np.inf
                arg[k] = 0
            for c in range(1, n_classes):
                for k in range(nz):
                    v = logits[c, i, j, k] + shift[c]  # float32 + float32, as torch adds them
                    if v > best[k] or (v != v and best[k] == best[k]):  # first maximum; a NaN wins (torch)
                        second[k] = best[k]
                        best[k] = v
                        arg[k] = c
                    elif v > second[k]:
                        second[k] = v
            for k in range(nz):
                labels[i, j, k] = arg[k]
                if not use_body or not body[i, j, k]:
                    continue
                m = np.float64(best[k])
                if np.float64(second[k]) - m < near:  # every other class too far below: p_max > threshold
                    continue
                total = 0.0
                for c in range(n_classes):
                    total += math.exp(np.float64(logits[c, i, j, k] + shift[c]) - m)
                if total > cut:
                    count += 1
        low[i] = count


def decide(logits: np.ndarray, shift: np.ndarray, body: np.ndarray | None = None,
           low_probability: float = 0.5) -> tuple[np.ndarray, int]:
    """Calibrated argmax over classes of ``(K, X, Y, Z)`` float32 ``logits`` and, over ``body``, how many
    voxels' winning softmax probability is below ``low_probability``; one pass over the logits.

    Labels: ``argmax_k(logits[k] + shift[k])`` with the sum in float32 and the first maximum winning
    (as ``torch.argmax``), uint8. Confidence: the winner's probability ``1 / S`` with
    ``S = sum_k exp(l_k - l_max)`` over the same shifted logits, so it is low when ``S > 1 / low_probability``,
    summed in double precision. A voxel whose runner-up is so far below that even ``K - 1`` runners-up
    could not reach the cut (``1 + (K - 1) exp(l_2 - l_max) < 1 / low_probability``) is confident without
    the ``K`` exponentials: most voxels are. ``body`` None: labels only (the count is 0).
    """
    scores = np.ascontiguousarray(logits, dtype=np.float32)
    if scores.ndim != 4:
        raise ValueError(f"logits must be (classes, x, y, z), found shape {scores.shape}")
    n_classes = scores.shape[0]
    if n_classes > 256:
        raise ValueError(f"uint8 labels hold at most 256 classes, the logits have {n_classes}")
    cut = 1.0 / float(low_probability)
    room = cut * (1.0 - _SAFE) - 1.0  # what the K - 1 other classes may add before the cut is near
    near = math.log(room / (n_classes - 1)) if n_classes > 1 and room > 0 else -math.inf
    use_body = body is not None
    mask = np.ascontiguousarray(body, dtype=np.bool_) if use_body else np.zeros((1, 1, 1), dtype=np.bool_)
    if use_body and mask.shape != scores.shape[1:]:
        raise ValueError(f"body mask shape {mask.shape} differs from the logits' grid {scores.shape[1:]}")
    labels = np.empty(scores.shape[1:], dtype=np.uint8)
    low = np.zeros(scores.shape[1], dtype=np.int64)
    _decide(scores, np.ascontiguousarray(shift, dtype=np.float32), mask, use_body, cut, near, labels, low)
    return labels, int(low.sum())


@numba.njit(parallel=True, cache=True)
def _side_codes(data: np.ndarray, code: np.ndarray, left: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for v in numba.prange(data.size):
        c = code[data[v]]
        out[v] = c - 1 if c != 0 and left[v] else c


def side_codes(data: np.ndarray, code: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Per voxel ``code[label]``, less 1 on the left where nonzero (so each side of a label gets its own value).

    ``code``: one entry per label value (0 for labels to leave out), each even; the result's dtype is ``code``'s.
    """
    flat = np.ascontiguousarray(data).reshape(-1)
    side = np.ascontiguousarray(left, dtype=np.bool_).reshape(-1)
    out = np.empty(flat.size, dtype=code.dtype)
    _side_codes(flat, code, side, out)
    return out.reshape(data.shape)


@numba.njit(cache=True)
def _piece_sizes(comps: np.ndarray, codes: np.ndarray, sizes: np.ndarray, code_of: np.ndarray) -> None:  # pragma: no cover
    for v in range(comps.size):
        c = comps[v]
        if c != 0:
            sizes[c] += 1
            code_of[c] = codes[v]


def piece_sizes(comps: np.ndarray, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxels per component id ``0..n`` (0 for background) and the code each component was labelled from."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    code_of = np.zeros(n + 1, dtype=np.int64)
    _piece_sizes(np.ascontiguousarray(comps).reshape(-1), np.ascontiguousarray(codes).reshape(-1), sizes, code_of)
    return sizes, code_of


@numba.njit(parallel=True, cache=True)
def _clear(out: np.ndarray, comps: np.ndarray, drop: np.ndarray) -> None:  # pragma: no cover - numba
    for v in numba.prange(out.size):
        if drop[comps[v]]:
            out[v] = 0


def clear_pieces(data: np.ndarray, comps: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """A copy of ``data`` with 0 wherever the component id is flagged in ``drop`` (indexed by id)."""
    out = np.array(data, order="C", copy=True)
    _clear(out.reshape(-1), np.ascontiguousarray(comps).reshape(-1), np.ascontiguousarray(drop, dtype=np.bool_))
    return out


@numba.njit(parallel=True, cache=True)
def _add_weighted(out: np.ndarray, patch: np.ndarray, weight: np.ndarray, x0: int, y0: int, z0: int) -> None:  # pragma: no cover
    n_classes, nx, ny, nz = patch.shape
    for c in numba.prange(n_classes):
        for i in range(nx):
            for j in range(ny):
                # rows as 1-D views indexed from 0: the loop below vectorises (indices offset inside it do not)
                row = out[c, x0 + i, y0 + j, z0:z0 + nz]
                p = patch[c, i, j]
                w = weight[i, j]
                for k in range(nz):
                    row[k] += p[k] * w[k]  # the float32 product, rounded, then the sum: no fused multiply-add


def add_weighted(out: np.ndarray, patch: np.ndarray, weight: np.ndarray, start: tuple[int, int, int]) -> None:
    """``out[:, window] += patch * weight`` in place (float32, the product rounded before the sum, as MONAI's
    ``patch *= w; out[window] += patch``), the window's corner at ``start``; one pass, no temporaries."""
    _add_weighted(out, np.ascontiguousarray(patch, dtype=np.float32), weight, int(start[0]), int(start[1]),
                  int(start[2]))
