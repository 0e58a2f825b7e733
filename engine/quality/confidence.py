"""Segmentation confidence: the share of body voxels whose winning class probability is low.

Computed once, at segmentation time, from the network's logits (the label map alone cannot say how
sure the network was); the pipeline puts it in the subject's summary, so it is stored with the
provenance. Label maps imported from other tools have no such number.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from engine.quality.checks import LOW_PROBABILITY

_SLAB = 16  # slices along the last axis per step: the softmax of a whole subject would double its logits' memory


def low_confidence_share(
    logits: torch.Tensor,
    body: np.ndarray,
    *,
    offsets: Mapping[int, float] | None = None,
    low_probability: float = LOW_PROBABILITY,
) -> float:
    """Share of ``body`` voxels whose largest softmax probability over ``logits`` is below ``low_probability``.

    ``logits`` is ``(K, X, Y, Z)``; ``body`` a boolean ``(X, Y, Z)`` mask; ``offsets`` the per-class
    logit shifts the label decision used (a calibrated checkpoint), so the probability is that of the
    class actually chosen. ``nan`` when ``body`` is empty.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (classes, x, y, z), found shape {tuple(logits.shape)}")
    if body.shape != tuple(logits.shape[1:]):
        raise ValueError(f"body mask shape {body.shape} differs from the logits' grid {tuple(logits.shape[1:])}")
    if not 0.0 < low_probability <= 1.0:
        raise ValueError(f"low_probability must be in (0, 1], found {low_probability!r}")
    total = int(np.count_nonzero(body))
    if total == 0:
        return float("nan")
    shift = torch.zeros(logits.shape[0], dtype=torch.float32)
    for k, v in (offsets or {}).items():
        shift[int(k)] = float(v)
    shift = shift.reshape(-1, 1, 1, 1)
    # max softmax p = 1 / sum_k exp(l_k - l_max), so p < t  <=>  logsumexp(l) - l_max > -log t
    cut = -float(np.log(low_probability))
    low = 0
    with torch.inference_mode():
        for start in range(0, logits.shape[-1], _SLAB):
            part = logits[..., start:start + _SLAB].float() + shift
            gap = torch.logsumexp(part, 0) - part.max(0).values
            mask = torch.from_numpy(np.ascontiguousarray(body[..., start:start + _SLAB]))
            low += int(((gap > cut) & mask).sum())
    return low / total
