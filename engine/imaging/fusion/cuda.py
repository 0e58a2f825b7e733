"""numba.cuda version of the fusion resampling kernel (optional: used only where numba finds a GPU).

Same inputs and result as :func:`engine.imaging.fusion.kernels.resample_general`: one GPU thread per output
voxel, every station mapped through its 3x4 affine, trilinear interpolation, overlaps averaged. The
logic is tested on any machine with numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from engine.errors import FusionError

#: Threads per block along (i, j, k): 32 consecutive voxels of a row share memory transactions.
BLOCK = (32, 4, 2)


@cuda.jit
def _kernel(maps, shapes, offsets, k_bounds, data, out, eps):  # pragma: no cover - runs on the GPU
    i, j, k = cuda.grid(3)
    n_contrasts, nz, ny, nx = out.shape
    if i >= nx or j >= ny or k >= nz:
        return
    weight = 0.0
    for s in range(maps.shape[0]):
        if k < k_bounds[s, 0] or k > k_bounds[s, 1]:
            continue
        x = maps[s, 0, 0] * i + maps[s, 0, 1] * j + maps[s, 0, 2] * k + maps[s, 0, 3]
        y = maps[s, 1, 0] * i + maps[s, 1, 1] * j + maps[s, 1, 2] * k + maps[s, 1, 3]
        z = maps[s, 2, 0] * i + maps[s, 2, 1] * j + maps[s, 2, 2] * k + maps[s, 2, 3]
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
        gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
        di = 1 if ni > 1 else 0
        dj = ni if nj > 1 else 0
        dk = ni * nj if nk > 1 else 0
        base = offsets[s] + (k0 * nj + j0) * ni + i0
        for c in range(n_contrasts):
            out[c, k, j, i] += (
                gy * gz * (gx * data[c, base] + fx * data[c, base + di])
                + fy * gz * (gx * data[c, base + dj] + fx * data[c, base + di + dj])
                + gy * fz * (gx * data[c, base + dk] + fx * data[c, base + di + dk])
                + fy * fz * (gx * data[c, base + dj + dk] + fx * data[c, base + di + dj + dk]))
        weight += 1.0
    if weight > 1.0:
        for c in range(n_contrasts):
            out[c, k, j, i] /= weight


def resample_cuda(maps: np.ndarray, shapes: np.ndarray, offsets: np.ndarray, k_bounds: np.ndarray,
                  data: np.ndarray, out_shape: tuple[int, int, int], eps: float) -> np.ndarray:
    """Run the kernel on the GPU; returns ``out[c, k, j, i]`` (float32) on the host."""
    if not cuda.is_available():
        raise FusionError("device='cuda' was requested but numba finds no CUDA GPU; use device='cpu' or 'auto'")
    nz, ny, nx = out_shape
    out = cuda.to_device(np.zeros((data.shape[0], nz, ny, nx), dtype=np.float32))
    blocks = (math.ceil(nx / BLOCK[0]), math.ceil(ny / BLOCK[1]), math.ceil(nz / BLOCK[2]))
    _kernel[blocks, BLOCK](cuda.to_device(maps), cuda.to_device(shapes), cuda.to_device(offsets),
                           cuda.to_device(k_bounds), cuda.to_device(data), out, eps)
    return out.copy_to_host()
