"""Inference pipeline: preprocessing geometry, body crop, sliding window, Slicer header."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers.utils import (
    _get_scan_interval,  # noqa: PLC2701 - the count we mirror
    dense_patch_slices,
)

from engine.errors import EngineError
from engine.imaging.volume import Volume, read_nrrd, write_nrrd
from engine.segmentation.checkpoint import ModelConfig, Sidecar, build_model
from engine.segmentation.infer import (
    SegmentTiming,
    body_box,
    count_windows,
    export_onnx,
    fused_channels,
    onnx_predictor,
    resample,
    resampled_shape,
    segment_channels,
    segment_fused,
    segment_names,
    slicer_header,
    window,
    write_labels,
)

TINY = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)


def test_window_clips_and_scales():
    out = window(np.array([0.0, 80.0, 265.0, 450.0, 900.0]), 80.0, 450.0)
    assert np.allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0]) and out.dtype == np.float32


def test_resampled_shape_covers_extent():
    assert resampled_shape((224, 174, 100), (2.232, 2.232, 3.0), (1.5, 1.5, 2.0)) == (332, 258, 149)
    assert resampled_shape((11, 11, 11), (1.0, 1.0, 1.0), (2.0, 2.0, 5.0)) == (6, 6, 3)


def test_trilinear_resampling_is_exact_on_a_ramp():
    i, j, k = np.meshgrid(np.arange(10), np.arange(8), np.arange(6), indexing="ij")
    ramp = (3 * i + 2 * j - k).astype(np.float32)
    v = Volume(ramp, (1.0, 1.0, 1.0), origin=(5.0, 6.0, 7.0))
    r = resample(v, (0.5, 2.0, 1.5), order=1)
    ii, jj, kk = np.meshgrid(*(np.arange(n) * s for n, s in zip(r.shape, r.spacing, strict=True)), indexing="ij")
    assert r.shape == (19, 4, 4) and r.origin == v.origin
    assert np.allclose(r.data, 3 * ii + 2 * jj - kk, atol=1e-4)


def test_nearest_resampling_picks_exact_samples():
    lab = np.random.default_rng(0).integers(0, 28, (9, 7, 5)).astype(np.uint8)
    v = Volume(lab, (1.0, 1.0, 1.0))
    coarse = resample(v, (2.0, 2.0, 2.0), order=0)
    assert coarse.shape == (5, 4, 3) and np.array_equal(coarse.data, lab[::2, ::2, ::2])
    back = resample(coarse, v.spacing, order=0, shape=v.shape)
    assert back.shape == v.shape and np.array_equal(back.data[::2, ::2, ::2], coarse.data)


def test_body_box_ignores_noise_and_keeps_margin():
    img = np.zeros((1, 60, 50, 40), np.float32)
    img[0, 20:30, 10:40, 5:35] = 0.8
    img[0, 55, 45, 38] = 1.0  # one hot noise voxel must not widen the box
    box = body_box(img, (2.0, 2.0, 2.0), margin_mm=4.0)
    assert box == (slice(18, 32), slice(8, 42), slice(3, 37))


@pytest.mark.parametrize("shape,roi,overlap", [((100, 80, 60), (32, 32, 32), 0.25), ((20, 90, 33), (16, 32, 16), 0.5)])
def test_count_windows_matches_monai(shape, roi, overlap):
    padded = tuple(max(s, r) for s, r in zip(shape, roi, strict=True))
    scan = _get_scan_interval(padded, roi, 3, (overlap,) * 3)
    assert count_windows(shape, roi, overlap) == len(dense_patch_slices(padded, roi, scan))


def _oracle(x: torch.Tensor) -> torch.Tensor:
    """An 'oracle network' on (water, fat): label 1 where water is bright, 2 where fat is bright."""
    w, f = x[:, :1] > 0.5, x[:, 1:2] > 0.5
    return torch.cat([(~w & ~f).float(), (w & ~f).float(), f.float()], 1) * 10


def _phantom() -> tuple[list[Volume], np.ndarray]:
    lab = np.zeros((48, 40, 36), np.uint8)
    lab[10:22, 8:30, 6:28] = 1
    lab[26:40, 8:30, 6:28] = 2
    geo = {"spacing": (2.0, 2.0, 2.5), "origin": (-40.0, 10.0, 5.0)}
    water = Volume(np.where(lab == 1, 420.0, 20.0).astype(np.float32), **geo)
    fat = Volume(np.where(lab == 2, 420.0, 20.0).astype(np.float32), **geo)
    return [water, fat], lab


@pytest.mark.parametrize("crop", [True, False])
def test_pipeline_maps_labels_back_onto_the_input_grid(crop):
    (water, fat), truth = _phantom()
    sc = Sidecar(model=TINY, labels={1: "Sartorius", 2: "Femur"}, spacing=(3.0, 3.0, 3.0), contrasts=("water", "fat"))
    timing = SegmentTiming()
    out = segment_channels([water, fat], None, sc, predictor=_oracle, crop=crop, timing=timing)
    assert out.shape == water.shape and out.spacing == water.spacing and out.origin == water.origin
    assert out.data.dtype == np.uint8
    assert np.mean(out.data == truth) > 0.95  # resampling to 3 mm and back only moves edges
    for label in (1, 2):
        inter = np.sum((out.data == label) & (truth == label))
        assert 2 * inter / (np.sum(out.data == label) + np.sum(truth == label)) > 0.9
    if crop:
        assert np.prod(timing.cropped_grid) < 0.7 * np.prod(timing.model_grid)
    else:
        assert timing.cropped_grid == timing.model_grid


def test_real_model_labels_are_the_argmax_of_its_logits():
    torch.manual_seed(0)
    sc = Sidecar(model=TINY, labels={1: "Sartorius", 2: "Femur"}, spacing=(4.0, 4.0, 4.0))
    model = build_model(sc).eval()
    # An image already on the model's grid and exactly one window in size: no resampling, one window, so
    # the labels must be the network's own argmax on the windowed intensities, voxel for voxel.
    raw = np.random.default_rng(4).uniform(0.0, 600.0, TINY.img_size).astype(np.float32)
    flipped = np.diag([-1.0, 1.0, -1.0])
    image = Volume(raw, (4.0, 4.0, 4.0), origin=(12.0, -30.0, 7.5), direction=flipped)
    windowed = np.clip((raw - 80.0) / (450.0 - 80.0), 0.0, 1.0)  # the study's window, 80-450
    with torch.no_grad():
        logits = model(torch.from_numpy(windowed.astype(np.float32))[None, None])[0]
    expected = logits.argmax(0).numpy()
    assert set(np.unique(expected)) == {0, 1, 2}  # an untrained net still varies, so the comparison bites
    out = segment_channels([image], model, sc, crop=False)
    np.testing.assert_array_equal(out.data, expected)
    assert out.spacing == image.spacing and out.origin == image.origin
    np.testing.assert_array_equal(out.direction, flipped)
    # On a finer input grid the labels come back on that grid, geometry included.
    (water, _), _ = _phantom()
    tilted = Volume(water.data, water.spacing, water.origin, direction=flipped)
    back = segment_channels([tilted], model, sc)
    assert back.shape == water.shape and back.spacing == water.spacing and back.origin == water.origin
    np.testing.assert_array_equal(back.direction, flipped)
    assert back.data.dtype == np.uint8 and set(np.unique(back.data)) <= {0, 1, 2}


def test_contrast_count_and_grids_checked():
    (water, _), _ = _phantom()
    sc = Sidecar(model=TINY, labels={1: "A"}, contrasts=("water", "fat"))
    with pytest.raises(ValueError, match="expects 2 contrasts"):
        segment_channels([water], None, sc, predictor=_oracle)
    other = Volume(np.zeros((4, 4, 4)), water.spacing)
    with pytest.raises(ValueError, match="contrast 'fat' grid"):
        segment_channels([water, other], None, sc, predictor=_oracle)


def test_slicer_header_round_trip(tmp_path):
    lab = np.zeros((6, 5, 4), np.uint8)
    lab[1:3, 2:5, 0:2] = 27
    table = {1: "Sartorius", 27: "Femur"}
    path = write_labels(tmp_path / "l.nrrd", Volume(lab, (1.0, 1.0, 1.0)), table)
    back = read_nrrd(path)
    assert np.array_equal(back.data, lab)
    meta = back.meta
    assert meta["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert meta["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    assert meta["Segment1_Name"] == "Femur" and meta["Segment1_LabelValue"] == "27"
    assert meta["Segment1_Extent"] == "1 2 2 4 0 1" and meta["Segment0_Extent"] == "0 -1 0 -1 0 -1"
    assert meta["Segment0_Layer"] == "0" and len(meta["Segment0_Color"].split()) == 3
    assert segment_names(meta) == table
    hdr = slicer_header(lab, table)
    assert all(0 <= float(c) <= 1 for c in hdr["Segment1_Color"].split())


def test_fused_folder_names_missing_contrast(tmp_path):
    write_nrrd(tmp_path / "fat.nrrd", Volume(np.zeros((2, 2, 2)), (1.0, 1.0, 1.0)))
    with pytest.raises(EngineError, match=r"needs water.nrrd; found \['fat.nrrd'\]"):
        fused_channels(tmp_path, ("water",))


@pytest.mark.slow
def test_onnx_export_gives_the_same_labels(tmp_path):
    torch.manual_seed(1)
    sc = Sidecar(model=TINY, labels={1: "Sartorius", 2: "Femur"}, spacing=(3.0, 3.0, 3.0), contrasts=("water", "fat"))
    model = build_model(sc).eval()
    path = export_onnx(model, sc, tmp_path / "m.onnx")
    x = torch.rand(2, 2, 16, 16, 16)
    with torch.inference_mode():
        ref = model(x)
    got = onnx_predictor(path, threads=1)(x)
    assert torch.allclose(ref, got, atol=1e-4)
    (water, fat), _ = _phantom()
    a = segment_channels([water, fat], model, sc)
    b = segment_channels([water, fat], None, sc, predictor=onnx_predictor(path, threads=1))
    assert np.mean(a.data == b.data) > 0.999  # identical up to float ties


def test_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"runtime must be one of \('torch', 'onnx'\), got 'tensorrt'"):
        segment_fused(tmp_path, tmp_path / "m.pt", runtime="tensorrt")


def test_onnx_and_torch_give_the_same_calibrated_labels_through_segment_fused(tmp_path):
    """The default runtime (ONNX) and PyTorch: same labels, same stray removal, same confidence, with a
    calibration whose offsets and largest-component step both change the result."""
    from engine.segmentation.checkpoint import save_checkpoint
    from engine.segmentation.infer import DEFAULT_RUNTIME, STRAY_KEY, stray_removed

    torch.manual_seed(3)
    (water, fat), _ = _phantom()
    base = Sidecar(model=TINY, labels={1: "Sartorius", 2: "Femur"}, spacing=(3.0, 3.0, 3.0),
                   contrasts=("water", "fat"))
    model = build_model(base).eval()
    plain = segment_channels([water, fat], model, base).data
    calibration = {"logit_offsets": {"0": -0.05, "2": 0.05}, "largest_component": [1, 2]}
    sc = Sidecar(**{**base.__dict__, "calibration": calibration})
    ckpt, _ = save_checkpoint(tmp_path / "m", model, sc)
    fused = {"water": water, "fat": fat}
    out = {rt: segment_fused(fused, ckpt, runtime=rt, onnx_cache=tmp_path / "onnx", threads=1)[0]
           for rt in ("torch", "onnx")}
    assert DEFAULT_RUNTIME == "onnx" and (tmp_path / "onnx" / f"{sc_hash(ckpt)}.onnx").is_file()
    np.testing.assert_array_equal(out["onnx"].data, out["torch"].data)
    removed = stray_removed(out["torch"].meta)
    assert sum(removed.values()) > 0 and stray_removed(out["onnx"].meta) == removed
    assert out["onnx"].meta[STRAY_KEY] == out["torch"].meta[STRAY_KEY]
    low = {rt: float(v.meta["msmv_low_confidence_share"]) for rt, v in out.items()}
    assert low["onnx"] == pytest.approx(low["torch"], abs=1e-4)
    assert np.mean(out["torch"].data != plain) > 0.01  # the calibration changed the labels: the check bites
    # the fused volumes in memory and the fused folder give the same labels
    write_nrrd(tmp_path / "water.nrrd", water)
    write_nrrd(tmp_path / "fat.nrrd", fat)
    folder, _ = segment_fused(tmp_path, ckpt, onnx_cache=tmp_path / "onnx", threads=1)
    np.testing.assert_array_equal(folder.data, out["onnx"].data)
    with pytest.raises(EngineError, match=r"the checkpoint needs fat; the fused volumes hold \['water'\]"):
        segment_fused({"water": water}, ckpt, onnx_cache=tmp_path / "onnx", threads=1)


def sc_hash(ckpt) -> str:
    from engine.segmentation.checkpoint import read_sidecar

    return read_sidecar(ckpt).weights_sha256


# ---------------------------------------------------------------- fewest windows (study model placement)


def _monai_windows(shape, roi, overlap):
    padded = tuple(max(s, r) for s, r in zip(shape, roi, strict=True))
    return dense_patch_slices(padded, roi, _get_scan_interval(padded, roi, 3, overlap))


def _fewest_by_search(size: int, r: int, min_overlap: float) -> int:
    """Smallest n whose windows of r, each pair overlapping by >= ceil(min_overlap * r) voxels, reach size."""
    least = int(np.ceil(min_overlap * r - 1e-9))
    n = 1
    while n * r - (n - 1) * least < size:
        n += 1
    return n


@pytest.mark.parametrize("shape,roi,min_overlap", [
    ((228, 173, 416), (96, 96, 96), 0.1),  # the study model's pelvis-to-knee body crop
    ((228, 173, 416), (96, 96, 96), 0.0),
    ((37, 16, 9), (16, 16, 16), 0.25),  # an axis equal to the window, one shorter (padded)
    ((100, 61, 47), (32, 16, 16), 0.5),
])
def test_fewest_windows_cover_the_crop_with_the_minimum_count(shape, roi, min_overlap):
    from engine.segmentation.infer import fewest_windows_overlap

    overlap = fewest_windows_overlap(shape, roi, min_overlap)
    windows = _monai_windows(shape, roi, overlap)
    expected = [_fewest_by_search(s, r, min_overlap) for s, r in zip(shape, roi, strict=True)]
    assert len(windows) == int(np.prod(expected)) == count_windows(shape, roi, overlap)
    covered = np.zeros(tuple(max(s, r) for s, r in zip(shape, roi, strict=True)), bool)
    for w in windows:
        covered[w] = True
    assert covered.all()
    for axis, r in enumerate(roi):  # neighbouring windows overlap by at least min_overlap of a window
        starts = sorted({w[axis].start for w in windows})
        assert all(r - (b - a) >= min_overlap * r for a, b in zip(starts, starts[1:], strict=False))
    if min_overlap == 0.0:
        assert expected == [int(np.ceil(s / r)) for s, r in zip(shape, roi, strict=True)]
    if shape == (228, 173, 416) and min_overlap == 0.1:
        assert len(windows) == 30 and count_windows(shape, roi, 0.25) == 54


def test_fewest_windows_blend_an_identity_network_back_to_its_input():
    from engine.segmentation.infer import fewest_windows_overlap, infer_logits

    image = np.random.default_rng(3).random((2, 37, 16, 9)).astype(np.float32)
    overlap = fewest_windows_overlap(image.shape[1:], (16, 16, 16), 0.25)
    out = infer_logits(image, (16, 16, 16), lambda x: x.clone(), overlap=overlap)
    assert out.shape == image.shape and np.allclose(out.numpy(), image, atol=1e-5)


def test_window_placement_follows_the_sidecar_unless_told():
    from engine.segmentation.checkpoint import DEFAULT_OVERLAP
    from engine.segmentation.infer import window_overlap

    shape, roi = (228, 173, 416), (96, 96, 96)
    study = Sidecar(min_overlap=0.1)
    assert count_windows(shape, roi, window_overlap(shape, roi, study)) == 30
    assert window_overlap(shape, roi, study, overlap=0.25) == 0.25  # an explicit grid wins
    assert window_overlap(shape, roi, Sidecar()) == DEFAULT_OVERLAP  # sidecars without the field: MONAI's grid
    assert count_windows(shape, roi, window_overlap(shape, roi, Sidecar(), min_overlap=0.0)) == 30
    with pytest.raises(ValueError, match="not both"):
        window_overlap(shape, roi, study, overlap=0.25, min_overlap=0.1)
    with pytest.raises(ValueError, match=r"min_overlap must be in \[0, 1\)"):
        Sidecar(min_overlap=1.0)
