"""Model page figure builders on a small sidecar dict, and the page itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.model import (
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


def test_page_renders_active_checkpoint_figures(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    (tmp_path / "m.json").write_text(json.dumps(SIDECAR))
    (tmp_path / "m.pt").write_bytes(b"")
    (home / "checkpoints" / "active").write_text(str(tmp_path / "m.pt"))
    monkeypatch.setenv("MSMV_HOME", str(home))
    at = AppTest.from_file(str(ROOT / "pages" / "model.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Model"
    assert len(at.get("plotly_chart")) == 3
