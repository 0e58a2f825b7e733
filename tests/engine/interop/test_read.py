from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.interop import read as read_mod
from engine.interop.read import LabelFileError, eid_from_name, read_labels
from tests.engine.interop.conftest import RAS_AFFINE, SHAPE, VOXEL_MM3, write_nifti


@pytest.mark.parametrize(("name", "eid"), [
    ("1234567_musclemap.nii.gz", 1234567), ("sub-1234567_dseg.nii.gz", 1234567), ("1234567.nii.gz", 1234567),
    ("sub-7_ses-2", 7), ("labels.nii.gz", None), ("0123_x.nii", None), ("12ab_x.nii", None),
])
def test_eid_from_the_name(name: str, eid: int | None) -> None:
    assert eid_from_name(name) == eid


def test_nifti_ras_becomes_lps(tmp_path: Path) -> None:
    data = np.zeros(SHAPE, np.uint16)
    data[1, 2, 3] = 7141
    image = read_labels(write_nifti(tmp_path / "a.nii.gz", data))
    vol = image.volume
    assert vol.voxel_volume_mm3 == pytest.approx(VOXEL_MM3)
    # RAS (x, y) = (2*1 - 9, 2*2 + 5) = (-7, 9); LPS flips both: (7, -9); z = 3*3 + 40 = 49
    assert vol.world(np.array([1, 2, 3])) == pytest.approx([7.0, -9.0, 49.0])
    assert int(vol.data[1, 2, 3]) == 7141


def test_float_labels_that_are_whole_numbers_are_accepted(tmp_path: Path) -> None:
    data = np.zeros(SHAPE, np.float32)
    data[0, 0, 0] = 12.0
    assert int(read_labels(write_nifti(tmp_path / "f.nii", data)).volume.data.max()) == 12


def test_non_integer_labels_are_refused(tmp_path: Path) -> None:
    data = np.zeros(SHAPE, np.float32)
    data[0, 0, 0] = 2.5
    with pytest.raises(LabelFileError, match=r"non-integer labels \(e.g. 2.5\)"):
        read_labels(write_nifti(tmp_path / "f.nii", data))


def test_an_intensity_image_is_not_a_label_image(tmp_path: Path) -> None:
    data = np.arange(np.prod(SHAPE) * 8, dtype=np.int16).reshape(20, 12, 8)
    with pytest.raises(LabelFileError, match="not a label image: 1,920 distinct values"):
        read_labels(write_nifti(tmp_path / "water.nii.gz", data))
    with pytest.raises(LabelFileError, match="not a label image: negative values"):
        read_labels(write_nifti(tmp_path / "neg.nii.gz", np.full(SHAPE, -1, np.int16)))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LabelFileError, match="not a label image; expected one of"):
        read_labels(tmp_path / "notes.txt")


def test_binary_masks_must_be_binary(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="not a binary mask: values up to 3"):
        read_labels(write_nifti(tmp_path / "m.nii.gz", np.full(SHAPE, 3, np.uint8)), binary=True)


def test_bounds_are_checked_before_the_voxels_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_nifti(tmp_path / "big.nii.gz", np.zeros(SHAPE, np.uint8))
    monkeypatch.setattr(read_mod, "read_image", lambda p: pytest.fail("voxels read past the bound"))
    monkeypatch.setattr(read_mod, "MAX_VOXELS", 100)
    with pytest.raises(LabelFileError, match="240 voxels .* above the bound of 100"):
        read_labels(path)
    monkeypatch.setattr(read_mod, "MAX_FILE_BYTES", 10)
    with pytest.raises(LabelFileError, match="above the bound of 10 bytes"):
        read_labels(path)


def test_four_d_files_are_refused(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "4d.nii.gz", np.zeros((*SHAPE, 2), np.uint8), RAS_AFFINE)
    with pytest.raises(LabelFileError, match="a label image is 3-D, found shape"):
        read_labels(path)


def test_totalsegmentator_label_table_is_read_from_the_header(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ml.nii.gz", np.zeros(SHAPE, np.uint8), label_table={1: "spleen", 40: "gluteus_maximus_left"})
    assert read_labels(path).names == {1: "spleen", 40: "gluteus_maximus_left"}
