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


def _unetr_parameters(c: int, k: int, side: int, h: int, mlp: int, f: int, layers: int = 12, patch: int = 16) -> int:
    """UNETR's parameter count by hand, layer by layer (MONAI's layout, counted from the UNETR paper's figure).

    ``c`` inputs, ``k`` outputs, a ``side``³ image, hidden size ``h``, MLP size ``mlp``, feature size ``f``.
    Convolutions carry no bias (only the 1×1×1 output head does) and instance norms have no affine
    parameters, so only convolution kernels, linear layers and layer norms count.
    """
    # ViT: position embedding per patch, a 16³ patch-embedding convolution, then per transformer block
    # qkv (3h², no bias) + out projection (h² + h) + MLP (2·h·mlp + mlp + h) + three layer norms (2h each).
    vit = (side // patch) ** 3 * h + h * c * patch**3 + h + layers * (4 * h * h + 2 * mlp * h + mlp + 8 * h) + 2 * h
    k3, k2 = 27, 8  # 3³ residual-block kernels, 2³ transposed-convolution kernels
    enc1 = k3 * c * f + k3 * f * f + c * f  # residual block c -> f with a 1×1×1 projection shortcut
    enc2 = k2 * h * 2 * f + 2 * (k2 * (2 * f) ** 2 + 2 * k3 * (2 * f) ** 2)  # upsample h -> 2f, then 2 up-blocks
    enc3 = k2 * h * 4 * f + (k2 * (4 * f) ** 2 + 2 * k3 * (4 * f) ** 2)  # upsample h -> 4f, then 1 up-block
    enc4 = k2 * h * 8 * f

    def up(cin: int, cout: int) -> int:  # transposed conv, then a residual block on the concatenated skip (2·cout)
        return k2 * cin * cout + k3 * 2 * cout * cout + k3 * cout * cout + 2 * cout * cout

    decoders = up(h, 8 * f) + up(8 * f, 4 * f) + up(4 * f, 2 * f) + up(2 * f, f)
    return vit + enc1 + enc2 + enc3 + enc4 + decoders + f * k + k


def test_parameter_count_matches_a_count_by_hand():
    # TINY with one contrast and labels {1, 2}: 1,061,899 parameters, 196,656 of them the ViT's patch embedding.
    assert _unetr_parameters(1, 3, 32, 48, 96, 8) == 1_061_899
    assert parameter_count(build_model(_tiny())) == 1_061_899
    # Another shape: two contrasts, a 16³ image, narrower network (checks the formula is not fitted to one config).
    other = Sidecar(model=ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4),
                    labels={1: "Sartorius", 2: "Femur"}, contrasts=("water", "fat"))
    assert _unetr_parameters(2, 3, 16, 24, 48, 4) == 414_511
    assert parameter_count(build_model(other)) == 414_511
    # The study's network (28 outputs): 92,802,716, equal to build_model(Sidecar()) when checked once (too slow here).
    assert _unetr_parameters(1, 28, 96, 768, 3072, 16) == 92_802_716
