"""Segmentation quality per class: Dice, IoU, precision and recall (docs/architecture.md, "Segmentation").

Counts come from one confusion matrix over all voxels. Classes absent from the ground truth are
reported as absent and excluded from the means (``reduction="none"`` + nanmean semantics; MONAI's
``reduction="mean"`` would count them as 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from engine.imaging.volume import Volume

GRID_ATOL_MM = 1e-3  # geometry tolerance when deciding whether two label maps share a grid


def confusion(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """``counts[t, p]`` = voxels with truth ``t`` and prediction ``p`` (labels ``0..n_classes-1``)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    p = np.asarray(pred, dtype=np.int64).ravel()
    t = np.asarray(truth, dtype=np.int64).ravel()
    for name, a in (("prediction", p), ("truth", t)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} labels must lie in 0..{n_classes - 1}, found {a.min()}..{a.max()}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def class_metrics(pred: np.ndarray, truth: np.ndarray, labels: Iterable[int]) -> dict[str, Any]:
    """Per-class metrics and their means over the classes present in ``truth``.

    Returns ``{"classes": {"<label>": {dice, iou, precision, recall, present, truth_voxels,
    pred_voxels}}, "mean_dice", "mean_iou", "mean_precision", "mean_recall", "absent": [labels]}``.
    Precision of a class predicted nowhere is NaN (written as ``null`` in JSON).
    """
    labels = sorted(int(v) for v in labels)
    n = max([*labels, int(np.max(pred, initial=0)), int(np.max(truth, initial=0))]) + 1
    cm = confusion(pred, truth, n)
    classes: dict[str, dict[str, Any]] = {}
    absent = []
    for c in labels:
        tp = float(cm[c, c])
        fn = float(cm[c, :].sum()) - tp
        fp = float(cm[:, c].sum()) - tp
        present = tp + fn > 0
        if not present:
            absent.append(c)
        classes[str(c)] = {
            "dice": _ratio(2 * tp, 2 * tp + fp + fn) if present else float("nan"),
            "iou": _ratio(tp, tp + fp + fn) if present else float("nan"),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "present": present,
            "truth_voxels": int(tp + fn),
            "pred_voxels": int(tp + fp),
        }
    out: dict[str, Any] = {"classes": classes, "absent": absent}
    for key in ("dice", "iou", "precision", "recall"):
        vals = [classes[str(c)][key] for c in labels if c not in absent]
        finite = [v for v in vals if np.isfinite(v)]
        out[f"mean_{key}"] = float(np.mean(finite)) if finite else float("nan")
    return out


def same_grid(a: Volume, b: Volume, *, atol: float = GRID_ATOL_MM) -> bool:
    return (
        a.shape == b.shape
        and np.allclose(a.spacing, b.spacing, atol=atol)
        and np.allclose(a.origin, b.origin, atol=atol)
        and np.allclose(a.direction, b.direction, atol=1e-6)
    )


def onto_grid(src: Volume, ref: Volume) -> Volume:
    """Nearest-neighbour resampling of a label map ``src`` onto ``ref``'s grid (world coordinates)."""
    from scipy import ndimage

    # voxel of ref -> world -> voxel of src
    ref_to_world = ref.affine
    world_to_src = np.linalg.inv(src.affine)
    m = world_to_src @ ref_to_world
    data = ndimage.affine_transform(
        np.asarray(src.data), m[:3, :3], offset=m[:3, 3], output_shape=ref.shape, order=0, mode="constant", cval=0
    )
    return ref.with_data(data)


def evaluate_volumes(
    pred: Volume, truth: Volume, labels: Iterable[int], *, resample_truth: bool = False
) -> dict[str, Any]:
    """Metrics of ``pred`` against ``truth``; grids must match unless ``resample_truth`` (nearest)."""
    note = None
    if not same_grid(pred, truth):
        if not resample_truth:
            raise ValueError(
                f"prediction grid {pred.shape}@{pred.spacing} origin {pred.origin} differs from truth grid "
                f"{truth.shape}@{truth.spacing} origin {truth.origin}; pass resample_truth to resample the truth"
            )
        truth = onto_grid(truth, pred)
        note = "truth resampled onto the prediction grid (nearest neighbour)"
    out = class_metrics(pred.data, truth.data, labels)
    if note:
        out["note"] = note
    return out


def json_safe(obj: Any) -> Any:
    """Replace NaN with None recursively so the result is strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
