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
from engine.segmentation.kernels import decide
from engine.segmentation.postprocess import logits_array, offset_vector


def low_confidence_share(
    logits: torch.Tensor | np.ndarray,
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
    return labels_and_low_confidence(logits, body, offsets=offsets, low_probability=low_probability)[1]


def labels_and_low_confidence(
    logits: torch.Tensor | np.ndarray,
    body: np.ndarray,
    *,
    offsets: Mapping[int, float] | None = None,
    low_probability: float = LOW_PROBABILITY,
) -> tuple[np.ndarray, float]:
    """The calibrated labels (:func:`engine.segmentation.postprocess.calibrated_argmax`) and
    :func:`low_confidence_share`, from one pass over the logits (they are the segment stage's largest array).

    The winner's probability is ``1 / sum_k exp(l_k - l_max)`` over the shifted logits, summed in double
    precision (:func:`engine.segmentation.kernels.decide`).
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must be (classes, x, y, z), found shape {tuple(logits.shape)}")
    if body.shape != tuple(logits.shape[1:]):
        raise ValueError(f"body mask shape {body.shape} differs from the logits' grid {tuple(logits.shape[1:])}")
    if not 0.0 < low_probability <= 1.0:
        raise ValueError(f"low_probability must be in (0, 1], found {low_probability!r}")
    scores = logits_array(logits)
    labels, low = decide(scores, offset_vector(offsets or {}, scores.shape[0]), body, low_probability)
    total = int(np.count_nonzero(body))
    return labels, (low / total if total else float("nan"))
