"""Segmentation confidence with hand-computed softmax probabilities."""

import numpy as np
import pytest
import torch

from engine.quality.confidence import low_confidence_share


def _logits(rows: list[list[float]], depth: int = 20) -> torch.Tensor:
    """(3 classes, len(rows), 1, depth): every slice along z the same, so chunking cannot change the answer."""
    a = np.asarray(rows, dtype=np.float32).T[:, :, None, None]
    return torch.from_numpy(np.repeat(a, depth, axis=3).copy())


ROWS = [
    [0.0, 0.0, 0.0],  # p = 1/3: low
    [0.2, 0.0, 0.0],  # p = e^0.2 / (e^0.2 + 2) = 0.379: low
    [1.0, 0.0, 0.0],  # p = e / (e + 2) = 0.576: confident
    [5.0, 0.0, 0.0],  # p = 0.987: confident
]


def test_share_of_body_voxels_below_one_half():
    logits = _logits(ROWS)
    body = np.ones((4, 1, 20), dtype=bool)
    assert low_confidence_share(logits, body) == pytest.approx(0.5)
    body[:2] = False  # only the confident voxels are body
    assert low_confidence_share(logits, body) == 0.0
    body[:] = False
    body[0, 0, :5] = True  # five uncertain voxels only
    assert low_confidence_share(logits, body) == 1.0
    assert np.isnan(low_confidence_share(logits, np.zeros((4, 1, 20), dtype=bool)))


def test_threshold_and_offsets_move_the_answer():
    logits = _logits(ROWS)
    body = np.ones((4, 1, 20), dtype=bool)
    assert low_confidence_share(logits, body, low_probability=0.6) == pytest.approx(0.75)  # 0.576 now low
    # a calibrated decision adding +1 to class 1: rows become [0, 1, 0] p = 0.576, [0.2, 1, 0] p = 0.550,
    # [1, 1, 0] p = e / (2e + 1) = 0.422 (now the low one), [5, 1, 0] p = 0.98
    assert low_confidence_share(logits, body, offsets={1: 1.0}) == pytest.approx(0.25)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="differs from the logits' grid"):
        low_confidence_share(_logits(ROWS), np.ones((4, 1, 19), dtype=bool))


def _segment(predictor):
    from engine.imaging.volume import Volume
    from engine.segmentation.checkpoint import ModelConfig, Sidecar
    from engine.segmentation.infer import CONFIDENCE_KEY, low_confidence, segment_channels

    tiny = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)
    sc = Sidecar(model=tiny, labels={1: "Sartorius", 2: "Femur"}, spacing=(3.0, 3.0, 3.0), contrasts=("water", "fat"))
    body = np.zeros((20, 20, 20), dtype=np.float32)
    body[5:15, 5:15, 5:15] = 420.0  # bright (body) cube in dark air
    geo = {"spacing": (3.0, 3.0, 3.0)}
    out = segment_channels([Volume(body, **geo), Volume(body.copy(), **geo)], None, sc, predictor=predictor)
    assert CONFIDENCE_KEY in out.meta
    return low_confidence(out.meta)


def test_segmentation_records_the_share_in_the_label_map_header():
    def undecided(x: torch.Tensor) -> torch.Tensor:  # every class equally likely: p = 1/3 everywhere
        return torch.zeros((x.shape[0], 3, *x.shape[2:]))

    def certain(x: torch.Tensor) -> torch.Tensor:  # background by a margin of 20 logits: p = 1
        out = torch.zeros((x.shape[0], 3, *x.shape[2:]))
        out[:, 0] = 20.0
        return out

    assert _segment(undecided) == 1.0
    assert _segment(certain) == 0.0
