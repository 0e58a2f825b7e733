"""Post-processing: calibrated argmax, largest component per structure and side, sidecar round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import CheckpointError
from engine.imaging.volume import Volume
from engine.segmentation.checkpoint import VALIDATION_KEY, ModelConfig, Sidecar
from engine.segmentation.infer import STRAY_KEY, segment_channels, stray_removed
from engine.segmentation.postprocess import (
    PostProcess,
    calibrated_argmax,
    keep_largest_components,
    second_piece_share,
)

SPACING = (2.0, 2.0, 2.5)  # 10 mm³ a voxel = 0.01 cm³


def _femora(lab: np.ndarray) -> None:
    """Two femora at x 2..4 and 15..17 (of 20): the midline falls between x = 9 and x = 10."""
    lab[2:5, 2:5, 2:10] = 27
    lab[15:18, 2:5, 2:10] = 27


def test_strays_removed_per_side_with_hand_counted_volumes():
    lab = np.zeros((20, 12, 12), np.uint8)
    _femora(lab)
    lab[3:7, 6:10, 2:8] = 3  # right vastus lateralis: 4*4*6 = 96 voxels
    lab[13:17, 6:10, 2:8] = 3  # left one, same size: kept although it is a second component overall
    lab[5, 11, 11] = 3  # a right-side fragment: 1 voxel
    lab[14:16, 11, 10:12] = 3  # a left-side fragment: 2*1*2 = 4 voxels
    lab[8:12, 0, 0] = 22  # a midline structure across the plane: 2 voxels each side, one component per side
    out, removed = keep_largest_components(Volume(lab, SPACING))
    assert removed[3] == pytest.approx(5 * 0.01)  # 1 + 4 voxels of 0.01 cm³
    assert removed[27] == 0.0 and removed[22] == 0.0
    assert set(removed) == {3, 22, 27}
    assert int((out.data == 3).sum()) == 2 * 96
    assert out.data[5, 11, 11] == 0 and not out.data[14:16, 11, 10:12].any()
    assert int((out.data == 22).sum()) == 4  # both halves kept
    changed = out.data != lab
    assert int(changed.sum()) == 5 and set(np.unique(lab[changed])) == {3}
    assert out.spacing == SPACING


def test_second_piece_share_tells_two_piece_anatomy_from_crumbs():
    lab = np.zeros((20, 12, 12), np.uint8)
    _femora(lab)
    lab[3:7, 6:10, 2:8] = 26  # right hip bone: a 96-voxel ilium...
    lab[3:7, 6:10, 10:12] = 26  # ...and a 32-voxel pubis, apart from it: 32 / 96
    lab[13:17, 6:10, 2:8] = 26  # left hip bone in one piece
    lab[13:17, 6:10, 9] = 3  # a 16-voxel vastus lateralis (left)...
    lab[16, 11, 11] = 3  # ...and a 1-voxel crumb apart from it: 1 / 16
    share = second_piece_share(Volume(lab, SPACING), structures=[3, 26, 27, 12])
    assert share == pytest.approx({3: 1 / 16, 26: 1 / 3, 27: 0.0, 12: 0.0})  # femora one per side; 12 absent


def test_given_sides_replace_the_midline():
    lab = np.zeros((20, 12, 12), np.uint8)
    _femora(lab)
    lab[3:7, 6:10, 2:8] = 3  # 96 voxels
    lab[13:17, 6:10, 2:8] = 3  # 96 voxels
    left = np.zeros(lab.shape, bool)  # everything "right": the two muscles now compete and one goes
    out, removed = keep_largest_components(Volume(lab, SPACING), left=left, structures=[3])
    assert removed == {3: pytest.approx(96 * 0.01)}
    assert int((out.data == 3).sum()) == 96
    assert int((out.data == 27).sum()) == int((lab == 27).sum())  # not asked for: untouched
    with pytest.raises(ValueError, match=r"side map shape \(2, 2, 2\) differs"):
        keep_largest_components(Volume(lab, SPACING), left=np.zeros((2, 2, 2), bool))


def test_diagonal_contact_is_one_component():
    lab = np.zeros((20, 12, 12), np.uint8)
    _femora(lab)
    lab[2:4, 6:8, 2:4] = 5
    lab[4, 8, 4] = 5  # touches the block only at a corner
    out, removed = keep_largest_components(Volume(lab, SPACING), structures=[5])
    assert removed == {5: 0.0} and out.data[4, 8, 4] == 5


def test_calibrated_argmax_offsets_move_close_decisions_only():
    logits = torch.tensor([[3.0, 3.0, 0.0], [2.5, 0.0, 1.0], [0.0, 2.9, 5.0]])[:, :, None]  # 3 classes x 3 voxels
    assert calibrated_argmax(logits, {}).ravel().tolist() == [0, 0, 2]
    # background -0.6: voxel 0 (3.0 vs 2.5) goes to class 1; voxel 1 (3.0 vs 2.9) goes to class 2
    assert calibrated_argmax(logits, {0: -0.6}).ravel().tolist() == [1, 2, 2]
    assert calibrated_argmax(logits, {2: 0.2}).ravel().tolist() == [0, 2, 2]
    assert calibrated_argmax(logits, {0: -0.6}).dtype == np.uint8


def test_calibration_round_trip_and_errors():
    post = PostProcess({0: -0.5, 3: 0.25}, largest_component=(3, 27))
    assert PostProcess.from_calibration(post.to_calibration(), 28) == post
    assert PostProcess.from_calibration({}, 28) == PostProcess()
    with pytest.raises(CheckpointError, match=r"names classes \[28\]; the network has 0..27"):
        PostProcess.from_calibration({"logit_offsets": {"28": 1.0}}, 28)
    with pytest.raises(CheckpointError, match=r"must list structure labels 1..27, found \[0, 3\]"):
        PostProcess.from_calibration({"largest_component": [0, 3]}, 28)
    with pytest.raises(CheckpointError, match="integer classes to numbers"):
        PostProcess.from_calibration({"logit_offsets": {"x": 1.0}}, 28)


TINY = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)


def _stray_oracle(x: torch.Tensor) -> torch.Tensor:
    """Label 1 where water is bright; a background logit of 1.0 against a class-1 logit of 0.8 where it is
    dim-but-not-dark, so a background offset of -0.3 turns that zone into label 1."""
    w = x[:, :1]
    bright = (w > 0.5).float()
    dim = ((w > 0.2) & (w <= 0.5)).float()
    return torch.cat([1.0 - bright, 10 * bright + 0.8 * dim], 1)


def test_segment_channels_applies_the_sidecars_calibration():
    data = np.full((24, 24, 24), 20.0, np.float32)
    data[4:12, 4:20, 4:20] = 420.0  # the structure (windowed ~0.92)
    data[12:14, 4:20, 4:20] = 200.0  # a dim rim next to it (windowed ~0.32)
    data[20, 20, 20] = 420.0  # a one-voxel stray, far from the structure
    water = Volume(data, (1.0, 1.0, 1.0))
    plain = Sidecar(model=TINY, labels={1: "Sartorius"}, spacing=(1.0, 1.0, 1.0), validated_on="tiny cubes")
    out = segment_channels([water], None, plain, predictor=_stray_oracle, crop=False)
    assert int((out.data == 1).sum()) == 8 * 16 * 16 + 1
    assert out.meta[VALIDATION_KEY] == "Segmentation checkpoint validated on tiny cubes."
    assert STRAY_KEY not in out.meta and stray_removed(out.meta) == {}
    calibrated = Sidecar(model=TINY, labels={1: "Sartorius"}, spacing=(1.0, 1.0, 1.0),
                         calibration={"logit_offsets": {"0": -0.3}, "largest_component": [1]})
    out = segment_channels([water], None, calibrated, predictor=_stray_oracle, crop=False)
    assert int((out.data == 1).sum()) == 10 * 16 * 16  # rim gained, stray lost
    assert out.data[20, 20, 20] == 0
    assert stray_removed(out.meta) == {1: pytest.approx(0.001)}  # one 1 mm³ voxel
    assert "does not record what it was validated on" in out.meta[VALIDATION_KEY]


def test_strays_match_scipy_labelling_per_structure_and_side():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    lab = rng.integers(0, 4, (24, 20, 16)).astype(np.uint8)  # labels 1-3 in crumbs and chains
    lab[rng.random(lab.shape) < 0.55] = 0
    left = np.zeros(lab.shape, bool)
    left[12:] = True
    out, removed = keep_largest_components(Volume(lab, SPACING), left=left, structures=[1, 3])
    expected, cm3 = lab.copy(), {1: 0.0, 3: 0.0}
    for label in (1, 3):
        for side in (left, ~left):
            comps, n = ndimage.label((lab == label) & side, structure=np.ones((3, 3, 3)))
            sizes = np.bincount(comps.ravel())[1:]
            assert n > 1 and (sizes == sizes.max()).sum() == 1  # several pieces, one largest: no tie to break
            strays = (comps > 0) & (comps != np.argmax(sizes) + 1)
            expected[strays] = 0
            cm3[label] += int(strays.sum()) * 0.01
    assert np.array_equal(out.data, expected) and (out.data != lab).any()
    assert removed == pytest.approx(cm3)
    with pytest.raises(ValueError, match="a label map holds integers, found float32"):
        keep_largest_components(Volume(lab.astype(np.float32), SPACING), left=left)
