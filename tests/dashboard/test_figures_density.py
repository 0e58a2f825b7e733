"""Server-side density binning against numpy's own 2-D histogram, and the Concordance page's default view."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.figures.concordance import POINTS_LIMIT, default_kind
from dashboard.figures.density import MIN_BINS, bin_count, binned_density, density_trace


def test_counts_match_numpy_histogram2d() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(20, 4, 5000), rng.gamma(3.0, 2.0, 5000)
    d = binned_density(x, y, bins=37)
    expected, x_edges, y_edges = np.histogram2d(x, y, bins=37)
    np.testing.assert_array_equal(np.nan_to_num(d.counts), expected.T)  # rows are y bins
    np.testing.assert_allclose(d.x, (x_edges[:-1] + x_edges[1:]) / 2)
    np.testing.assert_allclose(d.y, (y_edges[:-1] + y_edges[1:]) / 2)
    assert d.total == 5000 and np.isnan(d.counts[expected.T == 0]).all()  # empty bins are blank


def test_values_on_bin_edges_fall_where_numpy_puts_them() -> None:
    # 0.1 steps on [0, 3]: many values sit exactly on an edge, the maximum in the last bin
    x = np.round(np.arange(0, 3.0001, 0.1), 10)
    y = np.tile([0.0, 1.0, 2.0], 11)[: x.size]
    d = binned_density(x, y, bins=30)
    expected, _, _ = np.histogram2d(x, y, bins=30)
    np.testing.assert_array_equal(np.nan_to_num(d.counts), expected.T)
    constant = binned_density(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 4.0]), bins=5)
    expected, _, _ = np.histogram2d(np.full(4, 2.0), [1.0, 2.0, 3.0, 4.0], bins=5)  # x range 1.5..2.5
    np.testing.assert_array_equal(np.nan_to_num(constant.counts), expected.T)


def test_small_bins_are_blank_and_missing_pairs_are_left_out() -> None:
    x = np.array([0.0, 0.1, 0.2, 9.9, 10.0, np.nan, 5.0])
    y = np.array([0.0, 0.1, 0.2, 9.9, 10.0, 3.0, np.inf])
    d = binned_density(x, y, bins=2, min_count=3)
    # finite pairs: three in the lower-left bin, two in the upper-right one (below 3: blank)
    assert d.counts[0, 0] == 3 and np.isnan(d.counts).sum() == 3 and d.total == 3
    trace = density_trace(d)
    assert trace.type == "heatmap" and trace.hoverongaps is False and np.nansum(trace.z) == 3
    assert binned_density(np.array([np.nan]), np.array([1.0]), bins=4).counts.size == 0
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        binned_density(np.zeros(2), np.zeros(3), bins=4)
    with pytest.raises(ValueError, match="bins must be at least 1, got 0"):
        binned_density(np.zeros(2), np.zeros(2), bins=0)


def test_bin_count_and_default_kind() -> None:
    assert bin_count(37_004, 80) == 80 and bin_count(37_004, 80, min_count=10) == 60  # sqrt(3700.4)
    assert bin_count(40, 80, min_count=10) == MIN_BINS
    assert default_kind(POINTS_LIMIT) == "scatter" and default_kind(POINTS_LIMIT + 1) == "density"
