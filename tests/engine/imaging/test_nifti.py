"""NIfTI output: the same voxel-to-world mapping as the NRRD (RAS affine), metadata and labels in a sidecar."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from engine.errors import EngineError
from engine.imaging.fusion.fuse import FUSED_FORMATS, write_fused
from engine.imaging.volume import (
    nifti_sidecar_path,
    read_image,
    read_nifti_sidecar,
    read_nrrd,
    write_nifti,
    write_nrrd,
)
from tests.engine.imaging import grids

IJK = np.array([[0, 0, 0], [10, 8, 6], [3, 7, 2], [5, 0, 6]], dtype=float)


def _by_hand(ijk: np.ndarray) -> np.ndarray:
    """LPS world of voxel indices from the grid's definition: origin + direction @ (spacing * ijk)."""
    return np.asarray(grids.ORIGIN) + (grids.oblique_direction() @ (ijk * np.asarray(grids.SPACING)).T).T


@pytest.mark.parametrize("name", ["water.nii.gz", "water.nii"])
def test_nifti_and_nrrd_map_every_voxel_to_the_same_point(tmp_path, name) -> None:
    vol = grids.water()
    nrrd_back = read_nrrd(write_nrrd(tmp_path / "water.nrrd", vol))
    img = nib.load(str(write_nifti(tmp_path / name, vol)))  # read with nibabel itself, not MSMV's reader
    assert img.header.get_qform(coded=True)[1] == 1 and img.header.get_sform(coded=True)[1] == 1
    ras = nib.affines.apply_affine(img.affine, IJK)
    lps_from_nifti = ras * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps_from_nifti, nrrd_back.world(IJK), atol=1e-4)
    np.testing.assert_allclose(lps_from_nifti, _by_hand(IJK), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), vol.data)
    # the grid's axes run (nearly) along LPS +x, +y, +z: towards the patient's left, posterior, superior
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    back = read_image(tmp_path / name)
    np.testing.assert_allclose(back.world(IJK), _by_hand(IJK), atol=1e-4)


def test_a_label_map_keeps_its_table_and_the_fused_header_in_the_sidecar(tmp_path) -> None:
    labels = grids.labels()
    table = {1: "Sartorius", 24: "Abdominal oblique", 27: "Femur"}
    path = write_nifti(tmp_path / "labels.nii.gz", labels, labels=table)
    side = nifti_sidecar_path(path)
    assert side.name == "labels.json"
    content = json.loads(side.read_text())
    assert content == read_nifti_sidecar(path)
    assert content["labels"] == [{"value": 1, "name": "Sartorius"}, {"value": 24, "name": "Abdominal oblique"},
                                 {"value": 27, "name": "Femur"}]
    assert content["meta"]["msmv_swapped_stations"] == "4"
    assert content["meta"]["msmv_station_ranges"] == grids.FUSED_META["msmv_station_ranges"]
    assert content["meta"]["msmv_series_uids"] == "1.2.826.0.1.3,1.2.826.0.1.4"
    np.testing.assert_allclose(content["lps_affine"], labels.affine)
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint8 and int(img.header["intent_code"]) == 1002
    counts = dict(zip(*np.unique(np.asarray(img.dataobj), return_counts=True), strict=True))
    assert {int(k): int(v) for k, v in counts.items() if k} == grids.VOXELS


def test_write_nifti_refuses_another_ending(tmp_path) -> None:
    with pytest.raises(EngineError, match=r"ends in .nii or .nii.gz, found 'x.nrrd'"):
        write_nifti(tmp_path / "x.nrrd", grids.water())
    assert not list(tmp_path.iterdir())


def test_fused_volumes_as_nifti_carry_the_nrrd_header_in_their_sidecars(tmp_path) -> None:
    water = grids.water()
    fat = water.with_data(np.asarray(water.data) * 0.5, msmv_contrast="fat")
    paths = write_fused({"water": water, "fat": fat}, tmp_path, with_fat_fraction=True, compress=True, fmt="nifti")
    assert sorted(p.name for p in paths.values()) == ["fat.nii.gz", "fat_fraction.nii.gz", "water.nii.gz"]
    ff = np.asarray(nib.load(str(paths["fat_fraction"])).dataobj)
    np.testing.assert_allclose(ff[water.data > 1], 1 / 3, rtol=1e-5)  # 0.5 / (1 + 0.5)
    side = read_nifti_sidecar(paths["water"])
    assert side is not None and side["meta"]["msmv_stations"] == "3,4"
    assert side["meta"]["msmv_swapped_stations"] == "4"
    assert FUSED_FORMATS == ("nrrd", "nifti")
