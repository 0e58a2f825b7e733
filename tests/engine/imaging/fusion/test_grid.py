import numpy as np
import pytest

from engine.errors import FusionError
from engine.imaging.fusion.fuse import global_grid
from engine.imaging.volume import Volume


def _station(shape, spacing, origin, direction=None):
    return Volume(np.zeros(shape, np.float32), spacing, origin, np.eye(3) if direction is None else direction)


def test_global_grid_spans_union_with_finest_slice_spacing():
    upper = _station((4, 3, 5), (2.0, 2.0, 3.0), (0.0, 0.0, 100.0))  # z 100..112
    lower = _station((5, 3, 4), (2.0, 2.0, 4.5), (-3.0, 1.0, 90.0))  # x -3..5, y 1..5, z 90..103.5
    grid = global_grid([upper, lower])
    assert grid.spacing == (2.0, 2.0, 3.0)
    np.testing.assert_allclose(grid.origin, (-3.0, 0.0, 90.0))
    # x: -3..6 -> floor(9/2)+1 = 5; y: 0..5 -> floor(5/2)+1 = 3; z: 90..112 -> floor(22/3)+1 = 8
    assert grid.shape == (5, 3, 8)
    assert grid.data.dtype == np.float32
    assert not grid.data.any()


def test_global_grid_in_rotated_frame_keeps_direction():
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    a = _station((3, 3, 3), (1.0, 1.0, 2.0), tuple(rot @ np.array([0.0, 0.0, 0.0])), rot)
    b = _station((3, 3, 3), (1.0, 1.0, 2.0), tuple(rot @ np.array([1.0, 0.0, 3.0])), rot)
    grid = global_grid([a, b])
    np.testing.assert_allclose(grid.direction, rot)
    np.testing.assert_allclose(grid.origin, rot @ np.zeros(3), atol=1e-12)
    assert grid.shape == (4, 3, 4)  # frame extents 3, 2, 7 mm
    # last voxel lands on b's far corner
    np.testing.assert_allclose(grid.world(np.array([3, 2, 3])), rot @ np.array([3.0, 2.0, 6.0]), atol=1e-9)


def test_global_grid_refuses_mixed_orientations():
    theta = np.deg2rad(5)
    tilted = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    with pytest.raises(FusionError, match="station 1 has a different orientation"):
        global_grid([_station((2, 2, 2), (1, 1, 1), (0, 0, 0)), _station((2, 2, 2), (1, 1, 1), (0, 0, 5), tilted)])
    with pytest.raises(FusionError, match="expected at least one station"):
        global_grid([])
    with pytest.raises(TypeError, match="expects Volume objects, found ndarray"):
        global_grid([np.zeros((2, 2, 2))])
