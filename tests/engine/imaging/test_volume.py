import numpy as np
import pytest

from engine.imaging.volume import Volume, read_nrrd, write_nrrd


def test_nrrd_round_trip_keeps_geometry(tmp_path):
    rng = np.random.default_rng(0)
    theta = np.deg2rad(10)
    direction = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    vol = Volume(rng.normal(size=(5, 4, 3)).astype(np.float32), (2.232, 2.232, 3.0), (-250.0, -180.5, 40.0),
                 direction, {"msmv_source": "test"})
    back = read_nrrd(write_nrrd(tmp_path / "v.nrrd", vol))
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.spacing, vol.spacing)
    np.testing.assert_allclose(back.origin, vol.origin)
    np.testing.assert_allclose(back.direction, direction, atol=1e-12)
    assert back.meta["msmv_source"] == "test"
    # voxel (1,2,1) in world coordinates, by hand
    expected = np.array(vol.origin) + direction @ (np.array([1, 2, 1]) * np.array(vol.spacing))
    np.testing.assert_allclose(back.world(np.array([1, 2, 1])), expected)
    assert back.voxel_volume_mm3 == pytest.approx(2.232 * 2.232 * 3.0)


def test_volume_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must be 3-D"):
        Volume(np.zeros((2, 2)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing must be positive"):
        Volume(np.zeros((2, 2, 2)), (1, 0, 1))


@pytest.mark.parametrize("order", ["F", "C"])
def test_raw_nrrd_is_the_file_pynrrd_writes(tmp_path, order):
    import nrrd

    data = np.asarray(np.random.default_rng(4).random((6, 5, 4), dtype=np.float32), order=order)
    vol = Volume(data, (1.5, 2.0, 3.0), (1.0, -2.0, 3.0), meta={"msmv_contrast": "water"})
    ours = write_nrrd(tmp_path / "ours.nrrd", vol, extra_header={"encoding": "raw"})
    header = {"space": "left-posterior-superior", "space directions": np.diag([1.5, 2.0, 3.0]),
              "space origin": np.array([1.0, -2.0, 3.0]), "kinds": ["domain"] * 3, "encoding": "raw",
              "msmv_contrast": "water"}
    nrrd.write(str(tmp_path / "theirs.nrrd"), data, header, index_order="F")
    a, b = ours.read_bytes().split(b"\n"), (tmp_path / "theirs.nrrd").read_bytes().split(b"\n")
    assert a[2].startswith(b"# on ") and b[2].startswith(b"# on ")  # pynrrd's time stamp: the one difference
    assert a[:2] + a[3:] == b[:2] + b[3:]
    assert ours.read_bytes().endswith(b"\n\n" + data.tobytes(order="F"))  # voxels in Fortran order after the header
