"""Model page figure builders on a small sidecar dict, and the page itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.model import (
    bias_figure,
    bias_frame,
    class_frame,
    dice_iou_bars,
    metric_heatmap,
    precision_recall_scatter,
    sidecar_facts,
)
from dashboard.registry import ROOT

EVALUATION = {
    "classes": {
        "1": {"dice": 0.9, "iou": 0.9 / 1.1, "precision": 0.95, "recall": 0.86, "present": True},
        "2": {"dice": 0.7, "iou": 0.7 / 1.3, "precision": 0.6, "recall": 0.84, "present": True},
        "3": {"dice": None, "iou": None, "precision": None, "recall": None, "present": False},
    },
    "mean_dice": 0.8, "mean_iou": (0.9 / 1.1 + 0.7 / 1.3) / 2, "absent": [3],
}
SIDECAR = {
    "model": {"img_size": [96, 80, 144], "hidden_size": 96, "mlp_dim": 384, "num_heads": 4, "feature_size": 8},
    "labels": {"1": "Sartorius", "2": "Rectus femoris", "3": "Vastus lateralis"},
    "contrasts": ["water"], "spacing": [4.0, 4.0, 6.0], "window": [80.0, 450.0],
    "weights_dtype": "float16", "weights_sha256": "ab" * 32, "version": 1,
    "training": {"data": "phantoms", "steps": 10, "epochs": 2, "minutes": 1.5, "parameters": 1234},
    "metrics": {"validation_mean_dice": 0.81, "heldout": EVALUATION, "heldout_description": "seed 7"},
}
LABELS = {1: "Sartorius", 2: "Rectus femoris", 3: "Vastus lateralis"}


def test_class_frame_drops_absent_classes():
    df = class_frame(EVALUATION, LABELS)
    assert df["name"].tolist() == ["Sartorius", "Rectus femoris"]
    assert df["dice"].mean() == pytest.approx(EVALUATION["mean_dice"])
    assert df["iou"].mean() == pytest.approx(EVALUATION["mean_iou"])


def test_bars_carry_values_and_mean_lines():
    fig = dice_iou_bars(class_frame(EVALUATION, LABELS))
    assert [t.name for t in fig.data] == ["Dice", "IOU"]
    assert np.allclose(fig.data[0].y, [0.9, 0.7])
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(round(s.y0, 4) for s in lines) == sorted([round(EVALUATION["mean_iou"], 4), 0.8])


def test_scatter_is_coloured_by_dice():
    fig = precision_recall_scatter(class_frame(EVALUATION, LABELS))
    assert np.allclose(fig.data[0].x, [0.86, 0.84]) and np.allclose(fig.data[0].y, [0.95, 0.6])
    assert np.allclose(fig.data[0].marker.color, [0.9, 0.7])


def test_heatmap_rows_are_classes_and_columns_metrics():
    fig = metric_heatmap(class_frame(EVALUATION, LABELS))
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2, 4) and list(fig.data[0].x) == ["Dice", "IOU", "Precision", "Recall"]
    assert z[1, 2] == pytest.approx(0.6)


def test_sidecar_facts():
    facts = dict(sidecar_facts(SIDECAR).to_numpy())
    assert facts["spacing (mm)"] == "4 × 4 × 6"
    assert facts["held-out mean Dice / IoU"].startswith("0.800 / ")
    assert "96×80×144" in facts["architecture"] and facts["structures"] == "3"


def _model_page(tmp_path, monkeypatch, sidecar: dict) -> AppTest:
    """The Model page with ``sidecar`` as the active checkpoint's."""
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    (tmp_path / "m.pt").write_bytes(b"")
    (home / "checkpoints" / "active").write_text(str(tmp_path / "m.pt"))
    monkeypatch.setenv("MSMV_HOME", str(home))
    return AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=120).run()


def test_page_renders_active_checkpoint_figures(tmp_path, monkeypatch):
    at = _model_page(tmp_path, monkeypatch, SIDECAR)
    assert not at.exception and not at.error
    assert at.title[0].value == "Model"
    assert len(at.get("plotly_chart")) == 3


VOLUME_BIAS = {
    "report_seeds": [11, 12], "fit_seeds": [21, 22], "path": "phantom -> fuse -> segment -> measure",
    "before": {"mean_dice": 0.88, "tmv": {"mean_pct": -2.5, "loa_low_pct": -4.0, "loa_high_pct": -1.0},
               "structures": {"1": {"name": "Sartorius", "mean_pct": -6.0, "loa_low_pct": -9.0, "loa_high_pct": -3.0,
                                    "dice": 0.84}}},
    "after": {"mean_dice": 0.89, "tmv": {"mean_pct": 0.2, "loa_low_pct": -1.0, "loa_high_pct": 1.4},
              "structures": {"1": {"name": "Sartorius", "mean_pct": 0.5, "loa_low_pct": -2.5, "loa_high_pct": 3.5,
                                   "dice": 0.85}}},
}


def test_bias_frame_puts_tmv_first_with_both_stages():
    df = bias_frame(VOLUME_BIAS, LABELS)
    assert df[["name", "stage"]].to_numpy().tolist() == [
        ["TMV", "after"], ["TMV", "before"], ["Sartorius", "after"], ["Sartorius", "before"]]
    assert df["mean_pct"].tolist() == [0.2, -2.5, 0.5, -6.0]
    assert df["dice"].tolist() == [0.89, 0.88, 0.85, 0.84]  # TMV rows carry the stage's mean Dice


def test_bias_figure_error_bars_are_the_limits_of_agreement():
    fig = bias_figure(bias_frame(VOLUME_BIAS, LABELS))
    before, after = fig.data
    assert (before.name, after.name) == ("before", "after")
    assert np.allclose(before.x, [-2.5, -6.0])
    assert np.allclose(before.error_x.array, [1.5, 3.0]) and np.allclose(before.error_x.arrayminus, [1.5, 3.0])
    assert np.allclose(after.error_x.array, [1.2, 3.0]) and np.allclose(after.error_x.arrayminus, [1.2, 3.0])
    assert list(fig.layout.yaxis.ticktext) == ["TMV", "Sartorius"]


def test_facts_say_what_the_checkpoint_was_validated_on():
    side = {**SIDECAR, "validated_on": "cubes only",
            "calibration": {"logit_offsets": {"0": 0.0, "1": 0.4, "2": -0.1}, "largest_component": [1, 2],
                            "fit_seeds": [21, 22]}}
    facts = dict(sidecar_facts(side).to_numpy())
    assert facts["validated on"] == "cubes only"
    assert facts["post-processing"] == ("logit offsets for 3 classes (range -0.10 to +0.40); largest component "
                                        "per side kept for 2 structures; fitted on phantom seeds 21, 22")
    assert dict(sidecar_facts(SIDECAR).to_numpy())["post-processing"] == "plain argmax"


def test_page_shows_validation_and_volume_bias(tmp_path, monkeypatch):
    side = {**SIDECAR, "validated_on": "synthetic cubes only",
            "metrics": {**SIDECAR["metrics"], "volume_bias": VOLUME_BIAS}}
    at = _model_page(tmp_path, monkeypatch, side)
    assert not at.exception and not at.error
    assert at.info[0].value == "Segmentation checkpoint validated on synthetic cubes only."
    assert "Volume bias against the truth" in [h.value for h in at.subheader]
    assert "seeds 11, 12" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 4
