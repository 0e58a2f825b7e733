"""Sliding-window inference with Gaussian blending: MONAI's ``sliding_window_inference`` (``mode="gaussian"``),
the same logits bit for bit, with less work around the network calls.

The windows, their order and the importance map are MONAI's (:func:`monai.data.utils.dense_patch_slices`
over its scan interval ``int(roi * (1 - overlap))``; :func:`monai.data.utils.compute_importance_map`,
sigma 0.125 of the window), an axis shorter than the window is padded with zeros on both sides as MONAI
pads it, and every sum is taken in MONAI's order in float32. What differs is how: each window's logits
are weighted and added into the output in one numba pass (:func:`engine.segmentation.kernels.add_weighted`)
instead of a multiply and a strided add over torch views, and the output starts as lazily zeroed memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices
from tqdm import tqdm

from engine.segmentation.kernels import add_weighted

SIGMA_SCALE = 0.125  # MONAI's default Gaussian width, a fraction of the window


def scan_interval(size: Sequence[int], roi: Sequence[int], overlap: Sequence[float]) -> tuple[int, ...]:
    """MONAI's step between windows per axis: the window itself where it spans the (padded) axis, else
    ``int(roi * (1 - overlap))``, at least 1."""
    return tuple(int(r) if r == n else max(int(r * (1 - o)), 1) for n, r, o in zip(size, roi, overlap, strict=True))


def window_logits(
    image: np.ndarray,
    roi: Sequence[int],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    *,
    overlap: float | Sequence[float],
    sw_batch_size: int = 1,
    progress: bool = False,
) -> torch.Tensor:
    """Gaussian-blended logits ``(K, X, Y, Z)`` of ``predictor`` over windows of ``roi`` on a ``(C, X, Y, Z)`` image.

    ``predictor`` takes ``(B, C, *roi)`` float32 and returns ``(B, K, *roi)``; ``overlap`` is one fraction or
    one per axis. Equal to ``sliding_window_inference(image[None], roi, sw_batch_size, predictor,
    overlap=overlap, mode="gaussian")[0]`` (tests/engine/segmentation/test_sliding.py).
    """
    roi = tuple(int(r) for r in roi)
    per_axis = tuple(float(o) for o in overlap) if isinstance(overlap, Sequence) else (float(overlap),) * len(roi)
    if image.ndim != 4 or len(roi) != 3 or len(per_axis) != 3:
        raise ValueError(f"need a (C, X, Y, Z) image, a 3-D window and 3 overlaps; got {image.shape}, {roi}, {per_axis}")
    if not all(0 <= o < 1 for o in per_axis):
        raise ValueError(f"overlap must be >= 0 and < 1, got {per_axis}")
    grid = image.shape[1:]
    pad = [(d // 2, d - d // 2) for d in (max(r - n, 0) for r, n in zip(roi, grid, strict=True))]
    x = np.ascontiguousarray(image, dtype=np.float32)
    if any(p for pair in pad for p in pair):
        x = np.pad(x, [(0, 0), *pad])  # zeros, as MONAI's constant padding
    size = x.shape[1:]
    windows = dense_patch_slices(size, roi, scan_interval(size, roi, per_axis))
    weight = compute_importance_map(roi, mode="gaussian", sigma_scale=SIGMA_SCALE, device="cpu",
                                    dtype=torch.float32).numpy()
    count = np.zeros(size, dtype=np.float32)
    for w in windows:  # the blending weights' sum, window by window as MONAI adds them
        count[w] += weight
    source = torch.from_numpy(x)[None]
    out: np.ndarray | None = None
    batches = range(0, len(windows), max(int(sw_batch_size), 1))
    with torch.inference_mode():
        for first in tqdm(batches, desc="windows", disable=not progress):
            batch = windows[first:first + max(int(sw_batch_size), 1)]
            data = torch.cat([source[(slice(None), slice(None), *w)] for w in batch]) if len(batch) > 1 \
                else source[(slice(None), slice(None), *batch[0])]
            pred = predictor(data)
            if tuple(pred.shape[2:]) != roi or pred.shape[0] != len(batch):
                raise ValueError(f"the predictor returned {tuple(pred.shape)} for {len(batch)} windows of {roi}")
            scores = pred.detach().cpu().float().numpy()
            if out is None:  # zeros from calloc: pages are zeroed when first touched (inside the first windows)
                out = np.zeros((scores.shape[1], *size), dtype=np.float32)
            for patch, w in zip(scores, batch, strict=True):
                add_weighted(out, patch, weight, tuple(s.start for s in w))
    assert out is not None  # at least one window always
    np.divide(out, count, out=out)
    crop = tuple(slice(before, before + n) for (before, _), n in zip(pad, grid, strict=True))
    return torch.from_numpy(out[(slice(None), *crop)])
