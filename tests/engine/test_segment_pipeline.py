"""End to end on phantoms: measurement against the phantom's truth; the demo checkpoint's stored score."""

from __future__ import annotations

import numpy as np
import pytest

from engine.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from engine.evaluate import class_metrics
from engine.measure import measure
from engine.phantom import make_phantom, measure_volumes
from engine.segment import segment_channels
from store.structures import MUSCLE_LABELS, STRUCTURES

FUSED_LIKE = (2.232, 2.232, 3.0)  # UKB in-plane spacing, 3 mm slices
TMV_TOLERANCE = 0.03  # the acceptance bound on measured vs true TMV


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(11, spacing=FUSED_LIKE)


@pytest.mark.slow
def test_measured_tmv_and_sides_match_the_phantom(phantom):
    out = measure(phantom.labels, water=phantom.water, fat=phantom.fat)
    truth = measure_volumes(phantom.labels, phantom.sides)  # counted with the phantom's own side map
    true_tmv = sum(truth[(s.key, side)] for s in STRUCTURES if s.is_muscle for side in ("left", "right"))
    assert out["tmv_cm3"] == pytest.approx(true_tmv, rel=TMV_TOLERANCE)
    target = sum(v for (key, _), v in phantom.anatomy.targets.items() if key in {s.key for s in STRUCTURES if s.is_muscle})
    assert out["tmv_cm3"] == pytest.approx(target, rel=TMV_TOLERANCE)
    assert out["midline_source"] == "femora"
    # the mid-sagittal split puts (almost) every voxel on the side the phantom drew it on
    for s in STRUCTURES:
        left, right = truth[(s.key, "left")], truth[(s.key, "right")]
        got = out["structures"][str(s.label)]
        assert got["left_cm3"] == pytest.approx(left, rel=0.05, abs=1.0), s.name
        assert got["right_cm3"] == pytest.approx(right, rel=0.05, abs=1.0), s.name
    ff = [out["structures"][str(lab)]["fat_fraction"] for lab in MUSCLE_LABELS]
    true_ff = phantom.anatomy.signal.muscle_fat_fraction
    assert np.nanmedian(ff) == pytest.approx(true_ff, abs=0.03)


@pytest.mark.slow
def test_demo_checkpoint_reproduces_its_stored_heldout_score():
    model, sidecar = load_checkpoint(DEMO_CHECKPOINT)
    heldout = sidecar.metrics["heldout"]
    seed = sidecar.metrics["heldout_seed"]
    p = make_phantom(seed, spacing=FUSED_LIKE)  # regenerated here, independently of engine.train
    pred = segment_channels([getattr(p, c) for c in sidecar.contrasts], model, sidecar)
    m = class_metrics(pred.data, p.labels.data, sidecar.labels)
    assert sidecar.metrics["heldout_spacing"] == list(FUSED_LIKE)
    assert m["mean_dice"] == pytest.approx(heldout["mean_dice"], abs=0.01)
    assert m["mean_iou"] == pytest.approx(heldout["mean_iou"], abs=0.01)
