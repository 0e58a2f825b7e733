"""Volume agreement statistics and the per-class offset fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.segmentation.calibrate import agreement, fit_offsets


def test_agreement_is_bland_altman_on_percentages():
    out = agreement([99.0, 102.0, 97.0, 110.0], [100.0, 100.0, 100.0, 100.0])
    assert out["per_subject_pct"] == pytest.approx([-1.0, 2.0, -3.0, 10.0])
    assert out["mean_pct"] == pytest.approx(2.0)
    sd = math.sqrt(((-3) ** 2 + 0 ** 2 + (-5) ** 2 + 8 ** 2) / 3)  # deviations from 2, n - 1 = 3
    assert out["sd_pct"] == pytest.approx(sd)
    assert out["loa_low_pct"] == pytest.approx(2.0 - 1.96 * sd)
    assert out["loa_high_pct"] == pytest.approx(2.0 + 1.96 * sd)
    assert (out["min_pct"], out["max_pct"], out["n"]) == (-3.0, 10.0, 4)
    assert agreement([50.0], [40.0])["mean_pct"] == pytest.approx(25.0)


def test_agreement_refuses_bad_input():
    with pytest.raises(ValueError, match="equal-length non-empty"):
        agreement([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="true volumes must be positive"):
        agreement([1.0], [0.0])


def _logistic_model(true_shift: dict[int, float], coupling: float = 0.1):
    """Volume ratio of class k = exp(tanh(offset_k - true_shift_k)) plus a small pull from the other classes,
    like boundary voxels shared with neighbours: monotone in its own offset, saturating far from the answer."""
    classes = sorted(true_shift)

    def ratios(offsets):
        own = {k: math.tanh(offsets[k] - true_shift[k]) for k in classes}
        mean_other = {k: np.mean([own[j] for j in classes if j != k]) for k in classes}
        return {k: math.exp(own[k] - coupling * mean_other[k]) for k in classes}

    return ratios


def test_fit_finds_the_offsets_that_remove_the_bias():
    shift = {1: 0.8, 2: -0.3, 3: 0.05}
    ratios = _logistic_model(shift)
    offsets, log = fit_offsets(ratios, [1, 2, 3])
    final = ratios(offsets)
    assert all(abs(math.log(final[k])) < 0.002 for k in shift)
    # with the coupling, the exact answer solves own_k = c * mean_other_k, whose only solution is own = 0
    assert offsets == pytest.approx(shift, abs=0.01)
    assert log[0]["worst_abs_log_ratio"] > 0.5 and log[-1]["worst_abs_log_ratio"] < 0.002
    assert len(log) <= 13


def test_fit_refuses_background_and_vanished_classes():
    with pytest.raises(ValueError, match="background"):
        fit_offsets(lambda o: {0: 1.0}, [0, 1])
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        fit_offsets(lambda o: {1: 1.0, 2: 0.0}, [1, 2])
