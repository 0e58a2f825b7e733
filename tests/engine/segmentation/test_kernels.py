"""The segment stage's resampling kernels against SciPy's affine_transform (the implementation they replace)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.imaging.volume import Volume
from engine.segmentation.infer import resample, resampled_shape
from engine.segmentation.kernels import linear_taps, nearest_index, zoom_linear

# (source shape, source spacing, target spacing, target shape or None for the covering grid): the UKB
# fused -> model grid case, the way back with a larger shape (clamped at the far edges), axes of 1 and 2
CASES = [
    ((33, 20, 17), (2.232, 2.232, 3.0), (2.5, 2.5, 3.5), None),
    ((20, 19, 18), (2.5, 2.5, 3.5), (2.232, 2.232, 3.0), (23, 22, 21)),
    ((2, 1, 6), (1.0, 1.0, 1.0), (0.3, 0.5, 0.7), (5, 3, 9)),
]


def _scipy(data: np.ndarray, spacing, new_spacing, shape, order: int) -> np.ndarray:
    scale = np.asarray(new_spacing) / np.asarray(spacing)
    return ndimage.affine_transform(data, scale, output_shape=shape, order=order, mode="nearest", prefilter=False)


@pytest.mark.parametrize("shape,spacing,new_spacing,out_shape", CASES)
def test_resampling_equals_scipy_bit_for_bit(shape, spacing, new_spacing, out_shape):
    rng = np.random.default_rng(7)
    out_shape = out_shape or resampled_shape(shape, spacing, new_spacing)
    image = rng.normal(100.0, 50.0, shape).astype(np.float32)
    got = resample(Volume(image, spacing), new_spacing, order=1, shape=out_shape)
    assert got.data.dtype == np.float32 and got.spacing == new_spacing
    assert np.array_equal(got.data, _scipy(image, spacing, new_spacing, out_shape, 1))
    labels = rng.integers(0, 28, shape).astype(np.uint8)
    back = resample(Volume(labels, spacing), new_spacing, order=0, shape=out_shape)
    assert back.data.dtype == np.uint8
    assert np.array_equal(back.data, _scipy(labels, spacing, new_spacing, out_shape, 0))


def test_nearest_rounds_halves_up_and_clamps():
    # zoom 0.5: output k samples k / 2, so the odd outputs fall exactly half-way (SciPy: floor(c + 0.5))
    assert nearest_index(7, 0.5, 3).tolist() == [0, 1, 1, 2, 2, 2, 2]  # 1.5 -> 2; past the end stays at 2
    assert nearest_index(4, 1.25, 10).tolist() == [0, 1, 3, 4]  # 1.25 -> 1, 2.5 -> 3, 3.75 -> 4
    lab = np.arange(3, dtype=np.uint8).reshape(3, 1, 1) * 10
    out = resample(Volume(lab, (2.0, 1.0, 1.0)), (1.0, 1.0, 1.0), order=0, shape=(6, 1, 1))
    assert out.data.ravel().tolist() == [0, 10, 10, 20, 20, 20]
    assert np.array_equal(out.data, _scipy(lab, (2.0, 1.0, 1.0), (1.0, 1.0, 1.0), (6, 1, 1), 0))


def test_linear_weights_and_edge_taps():
    lo, hi, w_lo, w_hi = linear_taps(5, 0.75, 4)  # coordinates 0, 0.75, 1.5, 2.25, 3 (the last sample)
    assert lo.tolist() == [0, 0, 1, 2, 3] and hi.tolist() == [1, 1, 2, 3, 2]  # index 4 mirrored to 2 ...
    assert w_lo.tolist() == [1.0, 0.25, 0.5, 0.75, 1.0] and w_hi.tolist() == [0.0, 0.75, 0.5, 0.25, 0.0]  # ... at weight 0
    ramp = np.arange(4, dtype=np.float32).reshape(4, 1, 1) * 2.0
    assert zoom_linear(ramp, (0.75, 1.0, 1.0), (5, 1, 1)).ravel().tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]


def test_zoom_linear_checks_its_arguments():
    with pytest.raises(ValueError, match="works on 3-D arrays"):
        zoom_linear(np.zeros((3, 3), np.float32), (1.0, 1.0, 1.0), (3, 3, 3))
    with pytest.raises(ValueError, match=r"out must be C-contiguous float32 of shape \(2, 2, 2\)"):
        zoom_linear(np.zeros((3, 3, 3), np.float32), (1.0, 1.0, 1.0), (2, 2, 2), out=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="order must be 0 .nearest. or 1 .trilinear., got 3"):
        resample(Volume(np.zeros((3, 3, 3), np.float32), (1.0, 1.0, 1.0)), (2.0, 2.0, 2.0), order=3)


@pytest.mark.parametrize("spacing", [(2.232, 2.232, 3.0), (2.5, 2.5, 3.5)])  # resampled / already the model's grid
def test_prepare_channels_windows_then_resamples_each_contrast(spacing):
    from engine.segmentation.checkpoint import Sidecar
    from engine.segmentation.infer import prepare_channels

    rng = np.random.default_rng(3)
    water, fat = (rng.uniform(0.0, 600.0, (15, 12, 10)).astype(np.float32) for _ in range(2))
    sc = Sidecar(labels={1: "Sartorius"}, spacing=(2.5, 2.5, 3.5), window=(80.0, 450.0), contrasts=("water", "fat"))
    image, grid = prepare_channels([Volume(water, spacing, (1.0, 2.0, 3.0)), Volume(fat, spacing, (1.0, 2.0, 3.0))], sc)
    shape = resampled_shape(water.shape, spacing, sc.spacing)
    for c, raw in enumerate((water, fat)):
        windowed = np.clip((raw - np.float32(80.0)) / np.float32(370.0), 0.0, 1.0)
        assert np.array_equal(image[c], _scipy(windowed, spacing, sc.spacing, shape, 1))
    assert image.shape == (2, *shape) and grid.spacing == sc.spacing and grid.origin == (1.0, 2.0, 3.0)
    assert np.array_equal(grid.data, image[0])


def test_decision_matches_torch_argmax_and_float64_softmax():
    import torch

    from engine.quality.confidence import labels_and_low_confidence

    rng = np.random.default_rng(11)
    logits = rng.normal(0.0, 2.0, (6, 7, 5, 9)).astype(np.float32)
    logits[:, 0, 0, :3] = 1.5
    logits[4, 0, 0, :3] = 0.75  # after the offsets classes 1, 2, 3, 4 and 5 tie at 1.5: the first wins
    logits[2, 1, 1, 1] = logits[3, 1, 1, 1] = logits[:, 1, 1, 1].max() + 1.0  # two tied winners: class 2
    logits[3, 2, 2, 2] = np.nan  # torch's argmax takes a NaN as the maximum
    offsets = {0: -0.5, 4: 0.75}
    body = rng.random(logits.shape[1:]) < 0.6
    labels, share = labels_and_low_confidence(torch.from_numpy(logits), body, offsets=offsets, low_probability=0.45)
    shift = torch.tensor([-0.5, 0.0, 0.0, 0.0, 0.75, 0.0]).reshape(-1, 1, 1, 1)
    shifted = torch.from_numpy(logits) + shift
    assert np.array_equal(labels, shifted.argmax(0).numpy().astype(np.uint8))
    assert labels[0, 0, 0] == 1 and labels[1, 1, 1] == 2 and labels[2, 2, 2] == 3  # class 0 is shifted down
    p_max = torch.softmax(shifted.double(), 0).max(0).values.numpy()  # NaN voxel: NaN, not low
    low = (p_max < 0.45) & body
    assert 0 < low.sum() < body.sum() and share == low.sum() / body.sum()


def test_confidence_shortcut_agrees_at_the_cut():
    from engine.quality.confidence import low_confidence_share

    # K = 28 classes, one at 0 and 27 at -d: p = 1 / (1 + 27 e^-d), which is 1/2 at d = ln 27, where the
    # shortcut (runner-up more than ln 27 below the winner) begins; both sides of it, finely stepped
    d = np.log(27.0) + np.linspace(-1e-3, 1e-3, 41)
    logits = np.zeros((28, d.size, 1, 1), np.float32)
    logits[1:] = -d.astype(np.float32)[None, :, None, None]
    p = 1.0 / (1.0 + 27.0 * np.exp(np.float64(logits[1, :, 0, 0])))
    share = low_confidence_share(logits, np.ones(logits.shape[1:], bool))
    assert (p < 0.5).sum() == 20 and share == 20 / d.size  # the 20 steps below ln 27 (the middle one: p = 1/2 up to rounding)
