"""The export options of ``msmv fuse``, ``msmv segment`` and ``msmv export-labels`` agree with the engine."""

from __future__ import annotations

from engine.cli import build_parser, main
from engine.cli.imaging import EXPORT_LABEL_FORMATS, FUSE_FORMATS
from engine.cli.segmentation import LABEL_MAP_SUFFIXES
from engine.imaging.export import FORMATS
from engine.imaging.fusion.fuse import FUSED_FORMATS
from engine.imaging.volume import IMAGE_SUFFIXES


def test_cli_choices_are_the_engine_s() -> None:
    # spelled out in the CLI so that building the parser loads no numpy; the owners are the engine modules
    assert FUSE_FORMATS == FUSED_FORMATS
    assert EXPORT_LABEL_FORMATS == FORMATS
    assert set(LABEL_MAP_SUFFIXES) == set(IMAGE_SUFFIXES)
    args = build_parser().parse_args(["fuse", "a.zip", "--out", "o", "--format", "nifti"])
    assert args.fmt == "nifti"


def test_segment_refuses_an_unknown_label_map_ending_before_any_work(tmp_path, capsys) -> None:
    assert main(["segment", str(tmp_path), "--out", str(tmp_path / "labels.mha")]) == 2
    assert "a label map file ends in .nrrd, .nii.gz, .nii" in capsys.readouterr().err


def test_segment_writes_the_same_labels_as_nrrd_and_as_nifti(tmp_path, monkeypatch) -> None:
    import nibabel as nib
    import numpy as np
    import torch

    from engine.imaging.volume import read_nifti_sidecar, read_nrrd, write_nrrd
    from engine.segmentation.checkpoint import ModelConfig, Sidecar, build_model, save_checkpoint
    from tests.engine.imaging import grids

    torch.manual_seed(0)
    tiny = ModelConfig(img_size=(16, 16, 16), hidden_size=24, mlp_dim=48, num_heads=2, feature_size=4)
    sidecar = Sidecar(model=tiny, labels={1: "Sartorius", 27: "Femur"}, spacing=(4.0, 4.0, 4.0))
    weights, _ = save_checkpoint(tmp_path / "tiny", build_model(sidecar), sidecar)
    fused = tmp_path / "fused"
    write_nrrd(fused / "water.nrrd", grids.water())
    monkeypatch.setenv("MSMV_HOME", str(tmp_path / "home"))
    run = ["--home", str(tmp_path / "home"), "segment", str(fused), "--checkpoint", str(weights), "--quiet",
           "--no-crop", "--threads", "1"]
    assert main([*run, "--out", str(tmp_path / "labels.nrrd")]) == 0
    assert main([*run, "--out", str(tmp_path / "labels.nii.gz")]) == 0
    nrrd = read_nrrd(tmp_path / "labels.nrrd")
    img = nib.load(str(tmp_path / "labels.nii.gz"))
    np.testing.assert_array_equal(np.asarray(img.dataobj), nrrd.data)
    ijk = np.array([[0, 0, 0], [10, 8, 6]], dtype=float)
    lps = nib.affines.apply_affine(img.affine, ijk) * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps, nrrd.world(ijk), atol=1e-4)
    side = read_nifti_sidecar(tmp_path / "labels.nii.gz")
    assert side is not None and side["labels"] == [{"value": 1, "name": "Sartorius"}, {"value": 27, "name": "Femur"}]
    # the NRRD header's MSMV keys (checkpoint, post-processing ...) travel in the sidecar; Slicer's segment keys do not
    msmv_keys = {k: v for k, v in nrrd.meta.items() if k.startswith("msmv_")}
    assert msmv_keys and {k: side["meta"][k] for k in msmv_keys} == msmv_keys
    assert not any(k.startswith("Segment") for k in side["meta"])
