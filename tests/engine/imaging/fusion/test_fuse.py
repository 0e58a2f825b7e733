import numpy as np
import pytest

from engine.errors import FusionError
from engine.imaging.dicom.read import read_package
from engine.imaging.fusion.fuse import fat_fraction, fuse, global_grid, resample_onto, write_fused
from engine.imaging.volume import Volume, read_nrrd
from tests.engine.imaging.dicom.dicom_factory import CONTRASTS, linear_value, tiny_ukb_specs, write_zip


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    specs = tiny_ukb_specs()
    specs[3].slope, specs[3].intercept = 0.5, -100.0  # one station stores rescaled values
    return read_package(write_zip(tmp_path_factory.mktemp("pkg") / "1000001_20201_2_0.zip", specs))


def _coverage(grid: Volume, stations) -> np.ndarray:
    """How many stations' voxel-centre boxes contain each grid voxel (independent of the kernel)."""
    ijk = np.indices(grid.shape).reshape(3, -1).T
    world = grid.world(ijk)
    count = np.zeros(len(ijk), dtype=int)
    for st in stations:
        geo = st.geometry
        idx = (world - np.asarray(geo.origin)) @ np.linalg.inv(geo.direction * np.asarray(geo.spacing)).T
        inside = np.all((idx > -1e-6) & (idx < np.asarray(geo.shape) - 1 + 1e-6), axis=1)
        count += inside
    return count.reshape(grid.shape)


def test_linear_field_is_exact_everywhere_covered_including_overlaps(package):
    fused = fuse(package, device="cpu")
    assert set(fused) == set(CONTRASTS)
    grid = global_grid([st.geometry for st in package.stations])
    cover = _coverage(grid, package.stations)
    assert (cover >= 2).sum() > 50, "the factory's stations must overlap"
    assert (cover == 0).sum() > 0, "in-plane offsets leave uncovered corners"
    ijk = np.indices(grid.shape).reshape(3, -1).T
    for contrast, vol in fused.items():
        assert vol.shape == grid.shape and vol.data.dtype == np.float32
        np.testing.assert_allclose(vol.origin, grid.origin)
        truth = linear_value(vol.world(ijk), contrast).reshape(grid.shape)
        err = np.abs(vol.data - truth)
        # stored values are rounded to integers (×0.5 for the rescaled station): trilinear weights and
        # overlap averaging are convex, so the error stays within half a stored step
        assert err[cover > 0].max() <= 0.5 + 1e-3
        assert err[cover >= 2].max() <= 0.5 + 1e-3
        assert np.all(vol.data[cover == 0] == 0)


def test_overlap_is_the_average_of_the_stations():
    # two constant stations overlapping along z: 100 and 300, overlap must be exactly 200
    a = Volume(np.full((3, 3, 4), 100, np.float32), (1, 1, 2), (0, 0, 0))  # z 0..6
    b = Volume(np.full((3, 3, 4), 300, np.float32), (1, 1, 2), (0, 0, 4))  # z 4..10
    grid = global_grid([a, b])
    (out,) = resample_onto(grid, [[a], [b]], device="cpu")
    np.testing.assert_array_equal(out[:, :, 0], 100)  # z 0
    np.testing.assert_array_equal(out[:, :, 2], 200)  # z 4 (both)
    np.testing.assert_array_equal(out[:, :, 3], 200)  # z 6 (both)
    np.testing.assert_array_equal(out[:, :, 5], 300)  # z 10


def test_station_order_does_not_change_the_result(package):
    forward = fuse(package, contrasts=("water",), device="cpu")["water"]
    backward = fuse(list(reversed(package.stations)), contrasts=("water",), device="cpu")["water"]
    np.testing.assert_allclose(backward.data, forward.data, rtol=1e-6, atol=1e-4)
    assert backward.meta["msmv_stations"] == "6,5,4,3"


def test_nrrd_round_trip_keeps_geometry_and_metadata(package, tmp_path):
    fused = fuse(package, device="cpu")
    paths = write_fused(fused, tmp_path / "out", with_fat_fraction=True)
    assert sorted(p.name for p in paths.values()) == sorted(
        ["water.nrrd", "fat.nrrd", "in_phase.nrrd", "opposed_phase.nrrd", "fat_fraction.nrrd"])
    back = read_nrrd(paths["water"])
    np.testing.assert_array_equal(back.data, fused["water"].data)
    np.testing.assert_allclose(back.origin, fused["water"].origin)
    np.testing.assert_allclose(back.spacing, fused["water"].spacing)
    np.testing.assert_allclose(back.direction, fused["water"].direction)
    uids = back.meta["msmv_series_uids"].split(",")
    assert uids == [st.series_uids["water"] for st in package.stations]
    assert back.meta["msmv_station_ranges"].startswith("3:20.000..35.000;4:10.000..24.000")
    assert "msmv_version" in back.meta
    text = paths["water"].read_bytes().split(b"\n\n")[0].decode()
    assert "space: left-posterior-superior" in text and "space origin:" in text and "encoding: raw" in text
    zipped = write_fused(fused, tmp_path / "gz", compress=True)["water"]
    assert b"encoding: gzip" in zipped.read_bytes()[:2000]
    np.testing.assert_array_equal(read_nrrd(zipped).data, fused["water"].data)
    ff = read_nrrd(paths["fat_fraction"]).data
    w, f = fused["water"].data, fused["fat"].data
    covered = (w + f) > 0
    np.testing.assert_allclose(ff[covered], f[covered] / (w[covered] + f[covered]), rtol=1e-5)
    assert np.all(ff[~covered] == 0)


def test_fuse_refuses_missing_contrast_and_mixed_geometry(package):
    st = package.stations[0]
    with pytest.raises(FusionError, match="station 1 lacks fat; found water"):
        fuse([{"water": st.volumes["water"]}], contrasts=("water", "fat"), device="cpu")
    shifted = Volume(st.volumes["fat"].data, st.geometry.spacing, (0.0, 0.0, 999.0), st.geometry.direction)
    with pytest.raises(FusionError, match="station 1: its contrasts differ in geometry"):
        fuse([{"water": st.volumes["water"], "fat": shifted}], contrasts=("water", "fat"), device="cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda', found 'gpu'"):
        resample_onto(st.geometry, [[st.geometry]], device="gpu")
    with pytest.raises(ValueError, match="must share a grid"):
        fat_fraction(st.volumes["water"], Volume(np.zeros((2, 2, 2)), (1, 1, 1)))


def _linear_station(shape, spacing, origin, direction):
    vol = Volume(np.zeros(shape, np.float32), spacing, origin, direction)
    world = vol.world(np.indices(shape).reshape(3, -1).T)
    return vol.with_data(linear_value(world, "water").reshape(shape).astype(np.float32))


def test_rotated_grid_uses_the_general_kernel_and_stays_exact():
    # a station resampled onto a grid rotated 30 degrees about z: no axis is shared
    station = _linear_station((9, 8, 5), (2.0, 2.5, 3.0), (-9.0, -10.0, 0.0), np.eye(3))
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    grid = Volume(np.zeros((10, 10, 7), np.float32), (1.5, 1.5, 2.0), (-5.0, -12.0, 0.5), rot)
    (out,) = resample_onto(grid, [[station]], device="cpu")
    world = grid.world(np.indices(grid.shape).reshape(3, -1).T)
    idx = (world - np.asarray(station.origin)) / np.asarray(station.spacing)
    inside = np.all((idx >= 0) & (idx <= np.asarray(station.shape) - 1), axis=1).reshape(grid.shape)
    assert 50 < inside.sum() < inside.size
    truth = linear_value(world, "water").reshape(grid.shape)
    np.testing.assert_allclose(out[inside], truth[inside], atol=2e-3)
    assert np.all(out[~inside] == 0)


def test_aligned_fast_path_matches_general_kernel(package):
    from engine.imaging.fusion import kernels as fusion_kernels
    from engine.imaging.fusion.fuse import COVERAGE_EPS, _pack

    stacks = [[st.volumes[c] for c in CONTRASTS] for st in package.stations]
    grid = global_grid([v[0] for v in stacks])
    maps, shapes, offsets, data = _pack(grid, stacks)
    tables = fusion_kernels.aligned_tables(maps, shapes, grid.shape, COVERAGE_EPS)
    assert tables is not None
    nx, ny, nz = grid.shape
    fast = np.zeros((4, nz, ny, nx), np.float32)
    fusion_kernels.resample_aligned(shapes, offsets, *tables, data, fast)
    slow = np.zeros_like(fast)
    bounds = fusion_kernels.k_bounds(maps, shapes, COVERAGE_EPS)
    fusion_kernels.resample_general(maps, shapes, offsets, bounds, data, slow, COVERAGE_EPS)
    np.testing.assert_allclose(fast, slow, atol=2e-3, rtol=0)
    assert (fast > 0).sum() == (slow > 0).sum()


_CUDASIM_SCRIPT = """
import numpy as np
from engine.imaging.fusion.fuse import resample_onto
from engine.imaging.volume import Volume

theta = np.deg2rad(12)
rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
rng = np.random.default_rng(3)
a = [Volume(rng.random((4, 3, 3), dtype=np.float32), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0)) for _ in range(2)]
b = [Volume(rng.random((3, 4, 2), dtype=np.float32), (2.0, 2.0, 4.0), (1.0, 0.5, 4.0)) for _ in range(2)]
grid = Volume(np.zeros((5, 4, 4), np.float32), (1.7, 1.7, 2.5), (0.2, -0.5, 0.1), rot)
gpu = resample_onto(grid, [a, b], device="cuda")
cpu = resample_onto(grid, [a, b], device="cpu")
assert max(float(np.abs(g - c).max()) for g, c in zip(gpu, cpu)) < 1e-5
assert sum(int((c > 0).sum()) for c in cpu) > 10
print("same")
"""


def test_cuda_kernel_matches_cpu_in_the_simulator():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _CUDASIM_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "same"


def test_cuda_request_without_gpu_is_a_clear_error(package):
    from engine.imaging.fusion.fuse import cuda_available

    if cuda_available():  # a real GPU: the request must simply work
        assert fuse(package, contrasts=("water",), device="cuda")["water"].shape
    else:
        with pytest.raises(FusionError, match="device='cuda' was requested but numba finds no CUDA GPU"):
            fuse(package, contrasts=("water",), device="cuda")


def test_stations_with_different_orientations_are_refused(tmp_path):
    from tests.engine.imaging.dicom.dicom_factory import write_folder

    specs = tiny_ukb_specs()
    theta = np.deg2rad(4)  # station 5 tilted about x: a different ImageOrientationPatient
    specs[4].direction = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    write_folder(tmp_path, specs)
    pkg = read_package(tmp_path)  # each station is fine on its own
    with pytest.raises(FusionError, match=r"station 5 has a different orientation from station 3 \(largest "
                                          r"direction-cosine difference 0.06976 > 0.001\)"):
        fuse(pkg, device="cpu")
