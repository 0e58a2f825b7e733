"""Phantom anatomy and rendering: structures, sides, volumes, signal model, reproducibility."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.demo.phantom.subject import body_grid, make_phantom, measure_volumes, render, sample_anatomy
from engine.imaging.volume import Volume
from store.structures import BY_KEY, STRUCTURES

REQUESTED = {("vastus_lateralis", "left"): 700.0, ("gracilis", "right"): 80.0, ("femur", "left"): 420.0}
VOLUME_RTOL = 0.10  # truth volumes vs requested, counted from voxels on a UKB-like grid
UKB_LIKE = (2.232, 2.232, 3.0)


@pytest.fixture(scope="module")
def anatomy():
    return sample_anatomy(np.random.default_rng(7), sex=1, volumes=REQUESTED, seed=7)


@pytest.fixture(scope="module")
def clean(anatomy):
    return render(anatomy, body_grid(anatomy, UKB_LIKE))


def test_all_27_structures_on_both_sides(clean):
    labels, sides = clean.labels.data, clean.sides.data
    assert labels.dtype == np.uint8 and labels.max() == 27
    for s in STRUCTURES:
        for side in (1, 2):
            n = np.count_nonzero((labels == s.label) & (sides == side))
            assert n > 20, f"{s.key} side {side}: {n} voxels"


def test_left_structures_lie_at_plus_x(clean):
    labels, sides = clean.labels.data, clean.sides.data
    x = clean.labels.origin[0] + clean.labels.spacing[0] * np.arange(labels.shape[0])
    femur = labels == BY_KEY["femur"].label
    midline = (x[np.nonzero(femur & (sides == 1))[0]].mean() + x[np.nonzero(femur & (sides == 2))[0]].mean()) / 2
    for s in STRUCTURES:
        left = x[np.nonzero((labels == s.label) & (sides == 1))[0]]
        right = x[np.nonzero((labels == s.label) & (sides == 2))[0]]
        assert left.mean() > midline > right.mean(), s.key
        # mirror images within a few cm (asymmetric subjects, not a different anatomy)
        assert abs((left.mean() - midline) - (midline - right.mean())) < 30.0, s.key


def test_true_volumes_match_requested(anatomy, clean):
    got = measure_volumes(clean.labels, clean.sides)
    for key, want in REQUESTED.items():
        assert anatomy.targets[key] == want
    for key, want in anatomy.targets.items():
        assert got[key] == pytest.approx(want, rel=VOLUME_RTOL), key
    # the voxel count is the definition: check one structure by hand
    n = np.count_nonzero((clean.labels.data == 3) & (clean.sides.data == 1))
    assert got[("vastus_lateralis", "left")] == pytest.approx(n * 2.232 * 2.232 * 3.0 / 1000.0)


def test_rendering_is_consistent_across_grids(anatomy, clean):
    coarse = render(anatomy, body_grid(anatomy, (3.0, 3.0, 4.0)))
    a, b = measure_volumes(clean.labels, clean.sides), measure_volumes(coarse.labels, coarse.sides)
    for key in (("gluteus_maximus", "right"), ("adductor_magnus", "left"), ("femur", "right")):
        assert b[key] == pytest.approx(a[key], rel=0.05), key


def test_dixon_signal_model_before_noise(anatomy, clean):
    w, f = clean.water.data, clean.fat.data
    np.testing.assert_array_equal(clean.in_phase.data, w + f)
    np.testing.assert_array_equal(clean.opposed_phase.data, np.abs(w - f))
    muscle = np.isin(clean.labels.data, [s.label for s in STRUCTURES if s.is_muscle])
    assert 200 <= w[muscle].mean() <= 400  # the study's window [80, 450] makes sense
    assert (f[muscle] < 0.15 * w[muscle]).all()
    fat_tissue = (clean.labels.data == 0) & (f > w)  # subcutaneous / intermuscular fat
    assert fat_tissue.sum() > 0.1 * muscle.sum()


def test_muscles_share_one_intensity_distribution(anatomy):
    flat = replace(anatomy, signal=replace(anatomy.signal, bias_amplitude=0.0))
    noisy = render(flat, body_grid(flat, (3.0, 3.0, 4.0)), noise_rng=np.random.default_rng(1))
    w, lab = noisy.water.data, noisy.labels.data
    sd = anatomy.signal.noise_sd
    means = {}
    for key in ("vastus_lateralis", "adductor_magnus", "gluteus_maximus", "sartorius", "iliopsoas"):
        inside = lab == BY_KEY[key].label
        means[key] = w[inside].mean()
        assert w[inside].std() == pytest.approx(sd, rel=0.5)  # the noise is real ...
    spread = max(means.values()) - min(means.values())
    assert spread < sd, means  # ... yet no muscle is brighter than another beyond noise


def test_noise_and_bias_change_the_images(anatomy):
    grid = body_grid(anatomy, (4.0, 4.0, 6.0))
    a = render(anatomy, grid, noise_rng=np.random.default_rng(1))
    b = render(anatomy, grid, noise_rng=np.random.default_rng(1))
    c = render(anatomy, grid)
    np.testing.assert_array_equal(a.water.data, b.water.data)  # seeded
    assert not np.array_equal(a.water.data, c.water.data)
    np.testing.assert_array_equal(a.labels.data, c.labels.data)  # noise never moves the truth


def test_two_seeds_give_different_anatomy(anatomy, clean):
    other = sample_anatomy(np.random.default_rng(8), sex=1, volumes=REQUESTED, seed=8)
    o = render(other, clean.labels)  # same grid
    same = (o.labels.data == clean.labels.data) & (clean.labels.data > 0)
    dice = 2 * same.sum() / ((o.labels.data > 0).sum() + (clean.labels.data > 0).sum())
    assert dice < 0.9
    assert other.height_cm != anatomy.height_cm


def test_bad_inputs_are_refused(anatomy):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sex must be 1"):
        sample_anatomy(rng, sex=2)
    with pytest.raises(ValueError, match="unknown structure/side"):
        sample_anatomy(rng, sex=0, volumes={("quadriceps", "left"): 100.0})
    with pytest.raises(ValueError, match="positive number of cm"):
        sample_anatomy(rng, sex=0, volumes={("gracilis", "left"): -1.0})
    with pytest.raises(TypeError, match="numpy Generator"):
        sample_anatomy(7, sex=0)
    tilted = Volume(np.zeros((2, 2, 2)), (1, 1, 1), direction=np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="axis-aligned"):
        render(anatomy, tilted)


def test_make_phantom_is_sample_plus_render_over_the_body():
    spacing = (4.0, 4.0, 6.0)
    p = make_phantom(5, sex=1, spacing=spacing, noise=False)
    a = sample_anatomy(np.random.default_rng(5), sex=1, seed=5)
    q = render(a, body_grid(a, spacing))
    np.testing.assert_array_equal(p.labels.data, q.labels.data)
    np.testing.assert_array_equal(p.water.data, q.water.data)
    assert p.labels.spacing == spacing
    # the grid covers the body with a margin: no tissue on the in-plane borders
    body = p.in_phase.data > 0
    assert not body[[0, -1], :, :].any() and not body[:, [0, -1], :].any()
    # and spans the fused stations along z
    z0, z1 = a.fused_z_range
    assert p.labels.origin[2] == pytest.approx(z0) and p.labels.origin[2] + (p.labels.shape[2] - 1) * 6.0 <= z1
