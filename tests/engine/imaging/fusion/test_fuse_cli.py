import numpy as np
import pytest

from engine.cli import main
from engine.imaging.dicom.read import read_package
from engine.imaging.fusion.fuse import fuse
from engine.imaging.volume import read_nrrd
from tests.engine.imaging.dicom.dicom_factory import tiny_ukb_specs, write_zip


@pytest.fixture(scope="module")
def ukb_zip(tmp_path_factory):
    return write_zip(tmp_path_factory.mktemp("cli") / "1000001_20201_2_0.zip", tiny_ukb_specs())


def test_fuse_command_writes_four_contrasts_and_fat_fraction(ukb_zip, tmp_path, capsys):
    out = tmp_path / "fused"
    assert main(["fuse", str(ukb_zip), "--out", str(out), "--stations", "4,5", "--ff", "--device", "cpu"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fat.nrrd", "fat_fraction.nrrd", "in_phase.nrrd", "opposed_phase.nrrd", "water.nrrd"]
    expected = fuse(read_package(ukb_zip, stations=[4, 5]), device="cpu")
    for contrast, vol in expected.items():
        back = read_nrrd(out / f"{contrast}.nrrd")
        np.testing.assert_array_equal(back.data, vol.data)
        np.testing.assert_allclose(back.origin, vol.origin)
        assert back.meta["msmv_stations"] == "4,5"
    text = capsys.readouterr().out
    assert "stations 4,5 of 1,2,3,4,5,6" in text and "resample" in text


def test_fuse_command_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "upload.zip"
    bad.write_bytes(b"not a zip at all")
    assert main(["fuse", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "msmv fuse: error:" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["fuse", str(bad), "--out", str(tmp_path / "o"), "--stations", "3,x"])
    assert "expected comma-separated station numbers such as 3,4,5,6, found '3,x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fuse", str(bad), "--out", str(tmp_path / "o"), "--stations", "0,7"])
    assert "station numbers run from 1 (most superior) to 6" in capsys.readouterr().err


def test_fuse_command_writes_nifti_on_the_nrrd_grid(ukb_zip, tmp_path):
    import nibabel as nib

    from engine.imaging.volume import read_nifti_sidecar

    nrrd_dir, nifti_dir = tmp_path / "nrrd", tmp_path / "nifti"
    assert main(["fuse", str(ukb_zip), "--out", str(nrrd_dir), "--stations", "4,5", "--device", "cpu"]) == 0
    assert main(["fuse", str(ukb_zip), "--out", str(nifti_dir), "--stations", "4,5", "--device", "cpu",
                 "--format", "nifti", "--gzip"]) == 0
    assert sorted(p.name for p in nifti_dir.iterdir()) == sorted(
        f"{c}{ext}" for c in ("fat", "in_phase", "opposed_phase", "water") for ext in (".json", ".nii.gz"))
    water = read_nrrd(nrrd_dir / "water.nrrd")
    img = nib.load(str(nifti_dir / "water.nii.gz"))
    np.testing.assert_array_equal(np.asarray(img.dataobj), water.data)
    ijk = np.array([[0, 0, 0], [n - 1 for n in water.shape], [1, 2, 3]], dtype=float)
    lps = nib.affines.apply_affine(img.affine, ijk) * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps, water.world(ijk), atol=1e-4)
    meta = read_nifti_sidecar(nifti_dir / "water.nii.gz")["meta"]
    for key in ("msmv_stations", "msmv_station_ranges", "msmv_swapped_stations", "msmv_series_uids"):
        assert meta[key] == water.meta[key], key
    assert meta["msmv_series_uids"].count(",") == 1  # one source series per kept station
