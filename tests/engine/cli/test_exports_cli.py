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
