"""Densities on the server: counts per bin, so only the grid (or the bars) reach the browser.

Every density view of the dashboard (Concordance, its Bland-Altman plots, Method agreement) is drawn from
:func:`binned_density`: a scatter of many participants ships every point (about 16 bytes each, and
the browser draws each one), a heatmap of ``bins x bins`` counts ships a few kilobytes whatever the
cohort size. Bins of fewer than ``min_count`` participants are left blank (NaN), which the access
policy uses to keep small groups out of an anonymous view; empty bins are always blank.

The bins are equal-width over each axis's range, right-open except the last one (which holds the
maximum), exactly as :func:`numpy.histogram2d` with an integer ``bins`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

MIN_BINS = 5  # a coarser grid than this shows no shape at all


@dataclass(frozen=True)
class Density:
    """Counts per bin: ``counts[i, j]`` for y bin ``i`` and x bin ``j`` (NaN: blank), with bin centres."""

    x: np.ndarray
    y: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        """Participants in the drawn (not blank) bins."""
        return int(np.nansum(self.counts))


def bin_count(n: int, max_bins: int, min_count: int = 1) -> int:
    """Bins per axis for ``n`` points: ``max_bins``, fewer for a small cohort (about ``min_count`` people
    per bin if they were spread evenly over a square grid: with 80 x 80 bins a few hundred people would
    leave every bin below a small-count threshold), never fewer than :data:`MIN_BINS`."""
    return min(max_bins, max(MIN_BINS, int(np.sqrt(n / max(min_count, 1)))))


def bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """``bins + 1`` equal-width edges over the range of ``values`` (a range of ±0.5 around a constant)."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``edges[k] <= v < edges[k + 1]``, the maximum in the last bin."""
    bins = edges.size - 1
    index = ((values - edges[0]) * (bins / (edges[-1] - edges[0]))).astype(np.intp)
    np.clip(index, 0, bins - 1, out=index)
    # the scaled value can land one bin off next to an edge: compare with the edges themselves
    index[values < edges[index]] -= 1
    index[(values >= edges[index + 1]) & (index != bins - 1)] += 1
    return index


def histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` of the finite ``values`` in ``bins`` equal-width bins, as :func:`numpy.histogram`
    with an integer ``bins`` counts them (the 1-D histograms of the Quality page are drawn from it)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    edges = bin_edges(x, bins)
    return edges, np.bincount(bin_index(x, edges), minlength=bins)


def binned_density(x: np.ndarray, y: np.ndarray, *, bins: int, min_count: int = 1) -> Density:
    """Counts of the finite ``(x, y)`` pairs on a ``bins x bins`` grid, bins below ``min_count`` blank."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return Density(np.empty(0), np.empty(0), np.empty((0, 0)))
    x_edges, y_edges = bin_edges(x, bins), bin_edges(y, bins)
    flat = bin_index(y, y_edges) * bins + bin_index(x, x_edges)
    counts = np.bincount(flat, minlength=bins * bins).reshape(bins, bins).astype(float)
    counts[counts < max(min_count, 1)] = np.nan
    return Density((x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2, counts)


def density_trace(density: Density, *, x_label: str = "x", y_label: str = "y") -> go.Heatmap:
    """The heatmap of ``density``: blank bins stay blank and get no hover; counts as float32 (exact to 2²⁴)."""
    return go.Heatmap(
        x=density.x, y=density.y, z=density.counts.astype(np.float32), colorscale="Viridis",
        colorbar=dict(title="n"), name="participants", hoverongaps=False,
        hovertemplate=f"{x_label} %{{x:.4g}}<br>{y_label} %{{y:.4g}}<br>n %{{z}}<extra></extra>",
    )
