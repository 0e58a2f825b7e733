"""Checkpoints: safe loading, sidecar round trip, mismatches fail clearly."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from engine.errors import CheckpointError
from engine.segmentation.checkpoint import (
    STUDY_MODEL,
    ModelConfig,
    Sidecar,
    build_model,
    load_checkpoint,
    parameter_count,
    read_sidecar,
    save_checkpoint,
)

TINY = ModelConfig(img_size=(32, 32, 32), hidden_size=48, mlp_dim=96, num_heads=4, feature_size=8)


def _tiny(**kw) -> Sidecar:
    return Sidecar(model=TINY, labels={1: "Sartorius", 2: "Femur"}, **kw)


def test_round_trip_keeps_weights_and_sidecar(tmp_path):
    torch.manual_seed(0)
    sc = _tiny(contrasts=("water", "fat"), metrics={"mean_dice": 0.5})
    model = build_model(sc)
    weights, side = save_checkpoint(tmp_path / "m", model, sc)
    loaded, sc2 = load_checkpoint(side)
    assert sc2.model == TINY and sc2.labels == {1: "Sartorius", 2: "Femur"}
    assert sc2.contrasts == ("water", "fat") and sc2.in_channels == 2 and sc2.out_channels == 3
    assert sc2.metrics == {"mean_dice": 0.5} and len(sc2.weights_sha256) == 64
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_half_storage_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    sc = _tiny()
    model = build_model(sc)
    w32, _ = save_checkpoint(tmp_path / "f", model, sc)
    w16, side = save_checkpoint(tmp_path / "h", model, sc, half=True)
    assert w16.stat().st_size < 0.6 * w32.stat().st_size
    loaded, sc2 = load_checkpoint(side)
    assert sc2.weights_dtype == "float16"
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), loaded(x), atol=5e-2)


def test_study_configuration_is_the_papers():
    assert STUDY_MODEL.img_size == (96, 96, 96) and STUDY_MODEL.hidden_size == 768
    assert STUDY_MODEL.mlp_dim == 3072 and STUDY_MODEL.num_heads == 12 and STUDY_MODEL.feature_size == 16
    sc = Sidecar()
    assert sc.spacing == (1.5, 1.5, 2.0) and sc.window == (80.0, 450.0) and sc.out_channels == 28


def test_tampered_weights_fail_hash(tmp_path):
    sc = _tiny()
    weights, side = save_checkpoint(tmp_path / "m", build_model(sc), sc)
    other = build_model(sc)
    torch.save({k: v + 1 for k, v in other.state_dict().items()}, weights)
    with pytest.raises(CheckpointError, match="does not match its sidecar: SHA-256"):
        load_checkpoint(weights)


def test_architecture_mismatch_names_the_tensor(tmp_path):
    sc = _tiny()
    _, side = save_checkpoint(tmp_path / "m", build_model(sc), sc)
    raw = json.loads(side.read_text())
    raw["model"]["hidden_size"] = 64  # sidecar now describes another network
    raw["weights_sha256"] = ""
    side.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="does not match the architecture in its sidecar: .*shape mismatches"):
        load_checkpoint(side)


def test_label_count_mismatch(tmp_path):
    sc = _tiny()
    _, side = save_checkpoint(tmp_path / "m", build_model(sc), sc)
    raw = json.loads(side.read_text())
    raw["labels"]["3"] = "Gracilis"
    raw["weights_sha256"] = ""
    side.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="out.conv.conv.weight"):
        load_checkpoint(side)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path):
    sc = _tiny()
    weights, side = save_checkpoint(tmp_path / "m", build_model(sc), sc)
    with weights.open("wb") as f:
        pickle.dump({"x": _Evil()}, f)
    raw = json.loads(side.read_text())
    raw["weights_sha256"] = ""
    side.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="cannot load .* safely"):
        load_checkpoint(side)


def test_missing_and_bad_sidecar(tmp_path):
    with pytest.raises(CheckpointError, match="sidecar .* not found"):
        read_sidecar(tmp_path / "nothing.pt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_sidecar(tmp_path / "bad.json")
    (tmp_path / "v.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        read_sidecar(tmp_path / "v.json")
    (tmp_path / "c.json").write_text(json.dumps({"version": 1, "contrasts": ["t1"]}))
    with pytest.raises(CheckpointError, match="contrasts must be a non-empty subset"):
        read_sidecar(tmp_path / "c.json")


def test_model_config_validation():
    with pytest.raises(ValueError, match="multiples of 16"):
        ModelConfig(img_size=(40, 32, 32))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ModelConfig(hidden_size=50, num_heads=4)


def test_parameter_count_matches_torch():
    m = build_model(_tiny())
    assert parameter_count(m) == sum(p.numel() for p in m.parameters() if p.requires_grad) > 0
