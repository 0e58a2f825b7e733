"""Measurement: volumes from geometry, the mid-sagittal split, fat fraction, TMV and P/A."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.imaging.measure import fat_fraction, measure, midline_x, world_x
from engine.imaging.volume import Volume

SPACING = (2.0, 1.5, 3.0)  # voxel volume 9 mm³


def _two_legs() -> np.ndarray:
    lab = np.zeros((40, 10, 10), np.uint8)
    lab[4:10, 2:8, 2:8] = 27  # femur on the right (low LPS x)
    lab[26:32, 2:8, 2:8] = 27  # femur on the left
    lab[0:4, 2:8, 2:8] = 19  # posterior muscle, right: 4*6*6 = 144 voxels
    lab[32:36, 2:8, 2:8] = 19  # left: 144 voxels
    lab[36:38, 2:8, 2:8] = 19  # extra left: 72 voxels
    lab[10:14, 2:8, 2:8] = 2  # anterior, right: 144 voxels
    return lab


def test_volumes_split_and_compartments():
    origin = (-30.0, 0.0, 0.0)
    out = measure(Volume(_two_legs(), SPACING, origin=origin))
    # femur centroids at x index 6.5 and 28.5 -> midline index 17.5
    assert out["midline_source"] == "femora"
    assert out["midline_x_mm"] == pytest.approx(origin[0] + 17.5 * SPACING[0])
    s19 = out["structures"]["19"]
    assert s19["name"] == "Semimembranosus"
    assert s19["volume_cm3"] == pytest.approx(360 * 9 / 1000)
    assert s19["left_cm3"] == pytest.approx(216 * 9 / 1000) and s19["right_cm3"] == pytest.approx(144 * 9 / 1000)
    assert s19["asymmetry_pct"] == pytest.approx(72 / 180 * 100)
    assert out["structures"]["2"]["left_cm3"] == 0.0
    assert out["tmv_cm3"] == pytest.approx((360 + 144) * 9 / 1000)  # femur (bone) excluded
    assert out["pa_ratio"] == pytest.approx(360 / 144)
    assert np.isnan(out["structures"]["1"]["fat_fraction"])


def test_direction_flip_moves_left_side():
    # an x-flipped grid: voxel index grows towards the patient's right, so the sides swap
    flip = np.diag([-1.0, 1.0, 1.0])
    out = measure(Volume(_two_legs(), SPACING, origin=(30.0, 0.0, 0.0), direction=flip))
    s19 = out["structures"]["19"]
    assert s19["right_cm3"] == pytest.approx(216 * 9 / 1000) and s19["left_cm3"] == pytest.approx(144 * 9 / 1000)


def test_midline_falls_back_to_body_centre():
    lab = np.zeros((20, 4, 4), np.uint8)
    lab[5:15] = 3
    mid, source = midline_x(Volume(lab, (1.0, 1.0, 1.0)))
    assert source == "body centre" and mid == pytest.approx(9.5)


def test_world_x_matches_affine():
    v = Volume(np.zeros((3, 4, 5)), (1.0, 2.0, 3.0), origin=(5.0, 1.0, 2.0),
               direction=np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    ijk = np.stack(np.meshgrid(*map(np.arange, v.shape), indexing="ij"), -1)
    assert np.allclose(world_x(v), v.world(ijk)[..., 0])


def test_fat_fraction_uses_eroded_mask():
    mask = np.zeros((9, 9, 9), bool)
    mask[2:7, 2:7, 2:7] = True
    water = np.full(mask.shape, 80.0)
    fat = np.full(mask.shape, 20.0)
    shell = mask.copy()
    shell[3:6, 3:6, 3:6] = False
    fat[shell] = 80.0  # a fatty rim (partial volume) that erosion must remove
    water[shell] = 20.0
    assert fat_fraction(mask, water, fat) == pytest.approx(0.2)
    out = measure(Volume(mask.astype(np.uint8) * 4, (1.0, 1.0, 1.0)), water=Volume(water, (1.0, 1.0, 1.0)),
                  fat=Volume(fat, (1.0, 1.0, 1.0)))
    assert out["structures"]["4"]["fat_fraction"] == pytest.approx(0.2)


def test_inputs_checked():
    v = Volume(np.zeros((4, 4, 4), np.uint8), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="needs both water and fat"):
        measure(v, water=v)
    w = Volume(np.zeros((4, 4, 5)), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="water shape"):
        measure(v, water=w, fat=w)


def test_structures_touching_the_first_or_last_slice_are_marked():
    lab = np.zeros((8, 6, 10), np.uint8)
    lab[1:3, 1:3, 0:2] = 27  # femur reaches the lowest slice (the knee end)
    lab[4:6, 1:3, 8:10] = 23  # iliopsoas reaches the top slice
    lab[1:3, 3:5, 9] = 6  # gluteus maximus in the top slice: unexpected
    lab[4:6, 3:5, 3:6] = 12  # pectineus well inside
    out = measure(Volume(lab, SPACING))["structures"]
    assert [k for k, s in out.items() if s["touches_edge"]] == ["6", "23", "27"]
    assert out["6"]["expected_inside"] and out["12"]["expected_inside"]
    assert not out["23"]["expected_inside"] and not out["27"]["expected_inside"]
    assert out["1"]["touches_edge"] is False  # absent structures never touch


def test_a_sliver_in_the_end_slice_is_not_an_edge_a_tenth_of_the_widest_cross_section_is():
    lab = np.zeros((24, 10, 10), np.uint8)
    lab[0:10, 0:10, 2:9] = 7  # gluteus medius: 100 voxels in each of slices 2-8
    lab[0:3, 0:3, 9] = 7  # and a 9-voxel sliver in the top slice: 9 % of its widest cross-section
    lab[12:22, 0:10, 1:8] = 13  # tensor fasciae latae: 100 voxels in each of slices 1-7
    lab[12:22, 0, 0] = 13  # 10 voxels in the bottom slice: 10 %
    lab[12:14, 4:6, 9] = 12  # pectineus: 4 voxels, all of it in the top slice
    out = measure(Volume(lab, SPACING))["structures"]
    assert out["7"]["edge_share"] == pytest.approx(0.09) and out["7"]["touches_edge"] is False
    assert out["13"]["edge_share"] == pytest.approx(0.10) and out["13"]["touches_edge"] is True
    assert out["12"]["edge_share"] == 1.0 and out["12"]["touches_edge"] is True
    assert out["1"]["edge_share"] == 0.0  # absent


def test_a_stray_piece_at_the_end_is_no_edge_a_second_piece_of_anatomy_is():
    lab = np.zeros((24, 10, 10), np.uint8)
    lab[0:10, 0:10, 3:9] = 26  # hip bone (right): 600 voxels, 100 per slice...
    lab[0:2, 0:2, 0] = 26  # ...and a 4-voxel stray in the bottom slice, apart: 0.7 % of it
    lab[12:22, 0:10, 3:9] = 11  # obturator externus: 600 voxels...
    lab[12:22, 0:3, 0:2] = 11  # ...and a 60-voxel second piece (10 %) reaching the bottom: 30 voxels there
    out = measure(Volume(lab, SPACING))["structures"]
    assert out["26"]["edge_share"] == 0.0 and out["26"]["touches_edge"] is False
    assert out["11"]["edge_share"] == pytest.approx(0.30) and out["11"]["touches_edge"] is True


def test_touching_is_judged_along_the_body_axis_whatever_the_voxel_order():
    lab = np.zeros((10, 6, 8), np.uint8)
    lab[0, 1:3, 1:3] = 6  # first voxel along axis 0, which runs along LPS z here
    lab[3:5, 0, 1:3] = 12  # first along axis 1, which is in-plane: not an edge of the scanned range
    direction = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # columns: i→z, j→x, k→y
    out = measure(Volume(lab, SPACING, direction=direction))["structures"]
    assert out["6"]["touches_edge"] is True and out["12"]["touches_edge"] is False


def test_erosion_matches_scipy():
    from scipy import ndimage

    from engine.imaging.measure import _erode

    rng = np.random.default_rng(3)
    for shape in ((7, 5, 6), (1, 4, 4), (2, 9, 3), (12, 11, 10)):
        mask = rng.random(shape) > 0.25
        for order in ("C", "F"):
            m = np.asarray(mask, order=order)
            for iterations in (1, 2):
                assert np.array_equal(_erode(m, iterations), ndimage.binary_erosion(m, iterations=iterations))


def test_measure_same_for_either_memory_order_and_oblique_grid():
    # F-ordered labels (as read from NRRD) take the transposed bounding-box path; an oblique grid takes
    # the full-volume x path: both must give what the C-ordered label map gives
    lab = _two_legs()
    a = 0.3
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    for direction in (np.eye(3), rot):
        c = measure(Volume(np.ascontiguousarray(lab), SPACING, (-30.0, 0.0, 0.0), direction))
        f = measure(Volume(np.asfortranarray(lab), SPACING, (-30.0, 0.0, 0.0), direction))
        assert json.dumps(c) == json.dumps(f)  # NaN fat fractions compare as text
    v = Volume(lab, SPACING, (-30.0, 0.0, 0.0), rot)
    x = world_x(v)
    ijk = np.stack(np.meshgrid(*map(np.arange, v.shape), indexing="ij"), -1)
    assert np.allclose(x, v.world(ijk)[..., 0], atol=1e-4)
    left = measure(v)["structures"]["19"]["left_cm3"]
    assert left == pytest.approx(np.count_nonzero((lab == 19) & (x > measure(v)["midline_x_mm"])) * 9 / 1000)


def test_edge_share_leaves_out_strays_as_scipy_counts_them():
    from scipy import ndimage

    from engine.imaging.measure import edge_share
    from engine.quality.checks import EDGE_PIECE_MIN_SHARE

    rng = np.random.default_rng(7)
    mask = np.zeros((12, 10, 9), bool)
    mask[2:9, 2:8, 0:7] = True  # the structure, cut by the first slice along axis 2
    mask[0, 0, 8] = mask[11, 9, 0] = True  # two one-voxel strays, one of them in the first slice
    mask |= rng.random(mask.shape) > 0.97  # and scattered noise
    pieces, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    kept = (sizes >= EDGE_PIECE_MIN_SHARE * sizes.max())[pieces]
    per_slice = kept.sum(axis=(0, 1))
    assert edge_share(mask, 2, True, False) == per_slice[0] / per_slice.max()
    assert edge_share(mask, 2, True, True) == max(per_slice[0], per_slice[-1]) / per_slice.max()
    assert 0.0 < edge_share(mask, 2, True, False) < 1.0
