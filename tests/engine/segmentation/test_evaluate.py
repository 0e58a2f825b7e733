"""Per-class metrics against hand counts and MONAI's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU

from engine.imaging.volume import Volume
from engine.segmentation.evaluate import class_metrics, confusion, evaluate_volumes, json_safe


def test_hand_counted_example():
    truth = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    pred = np.array([1, 1, 1, 2, 2, 0, 1, 0])
    m = class_metrics(pred.reshape(2, 2, 2), truth.reshape(2, 2, 2), [1, 2, 3])
    c1 = m["classes"]["1"]  # tp 3, fp 1, fn 1
    assert c1["dice"] == pytest.approx(6 / 8) and c1["iou"] == pytest.approx(3 / 5)
    assert c1["precision"] == pytest.approx(3 / 4) and c1["recall"] == pytest.approx(3 / 4)
    c2 = m["classes"]["2"]  # tp 1, fp 1, fn 1
    assert c2["dice"] == pytest.approx(0.5) and c2["iou"] == pytest.approx(1 / 3)
    assert m["absent"] == [3] and not m["classes"]["3"]["present"]
    assert np.isnan(m["classes"]["3"]["dice"])
    assert m["mean_dice"] == pytest.approx((0.75 + 0.5) / 2)  # absent class 3 excluded, not zero
    assert m["mean_iou"] == pytest.approx((0.6 + 1 / 3) / 2)


def test_matches_monai_per_class():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, (12, 10, 8))
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 4, truth.shape))
    m = class_metrics(pred, truth, [1, 2, 3])
    oh = lambda a: torch.nn.functional.one_hot(torch.from_numpy(a), 4).permute(3, 0, 1, 2)[None].float()  # noqa: E731
    dice = DiceMetric(include_background=False, reduction="none")(oh(pred), oh(truth))[0]
    iou = MeanIoU(include_background=False, reduction="none")(oh(pred), oh(truth))[0]
    for c in (1, 2, 3):
        assert m["classes"][str(c)]["dice"] == pytest.approx(float(dice[c - 1]), abs=1e-6)
        assert m["classes"][str(c)]["iou"] == pytest.approx(float(iou[c - 1]), abs=1e-6)


def test_confusion_checks_inputs():
    with pytest.raises(ValueError, match="prediction shape"):
        confusion(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(ValueError, match="truth labels must lie in 0..1"):
        confusion(np.zeros(3, int), np.array([0, 1, 5]), 2)


def test_grids_must_match_or_be_resampled():
    truth = np.zeros((8, 8, 8), np.uint8)
    truth[2:6, 2:6, 2:6] = 1
    t = Volume(truth, (1.0, 1.0, 1.0))
    fine = Volume(np.kron(truth, np.ones((2, 2, 2), np.uint8)), (0.5, 0.5, 0.5), origin=(-0.25, -0.25, -0.25))
    with pytest.raises(ValueError, match="differs from truth grid"):
        evaluate_volumes(fine, t, [1])
    out = evaluate_volumes(fine, t, [1], resample_truth=True)
    assert out["classes"]["1"]["dice"] == pytest.approx(1.0) and "resampled" in out["note"]


def test_json_safe_turns_nan_into_null():
    assert json_safe({"a": [1.0, float("nan")]}) == {"a": [1.0, None]}
