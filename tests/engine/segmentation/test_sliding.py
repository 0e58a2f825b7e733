"""The own sliding window against MONAI's sliding_window_inference (Gaussian blending): the same logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from engine.segmentation.sliding import scan_interval, window_logits


def _conv() -> torch.nn.Module:
    """A fixed random 3x3x3 convolution (2 contrasts -> 3 classes): logits that vary with content and position."""
    torch.manual_seed(0)
    return torch.nn.Conv3d(2, 3, 3, padding=1).eval()


@pytest.mark.parametrize("shape,roi,overlap,batch", [
    ((2, 21, 18, 26), (8, 8, 8), 0.25, 1),  # several windows per axis, the last ones shifted back inside
    ((2, 21, 18, 26), (8, 8, 8), (0.1, 0.5, 0.3), 2),  # one overlap per axis; two windows per call
    ((2, 5, 18, 8), (8, 8, 8), 0.25, 1),  # x shorter than the window (padded), z exactly one window
])
def test_same_logits_as_monai(shape, roi, overlap, batch):
    conv = _conv()
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    calls: list[tuple[int, ...]] = []

    def predictor(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        with torch.inference_mode():
            return conv(x)

    ours = window_logits(image, roi, predictor, overlap=overlap, sw_batch_size=batch)
    n_ours = len(calls)
    with torch.inference_mode():
        theirs = sliding_window_inference(torch.from_numpy(image)[None], roi, batch, predictor, overlap=overlap,
                                          mode="gaussian")[0]
    assert ours.shape == theirs.shape == (3, *shape[1:])
    assert torch.equal(ours, theirs)
    assert calls[:n_ours] == calls[n_ours:]  # the same windows, batched alike


def test_scan_interval_and_errors():
    assert scan_interval((40, 8, 30), (8, 8, 8), (0.25, 0.25, 0.9)) == (6, 8, 1)  # whole axis: one window; >= 1
    with pytest.raises(ValueError, match=r"overlap must be >= 0 and < 1, got \(1.0, 0.25, 0.25\)"):
        window_logits(np.zeros((1, 9, 9, 9), np.float32), (8, 8, 8), lambda x: x, overlap=(1.0, 0.25, 0.25))
    with pytest.raises(ValueError, match=r"the predictor returned \(1, 1, 4, 4, 4\) for 1 windows of \(8, 8, 8\)"):
        window_logits(np.zeros((1, 8, 8, 8), np.float32), (8, 8, 8), lambda x: x[:, :, :4, :4, :4], overlap=0.25)
