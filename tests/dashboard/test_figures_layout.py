"""Figures with fixed margins: no axis or title widens them, so plotly.js lays each out once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures.cohort import below_cutoff_chart, figure4
from dashboard.figures.concordance import ConcordanceOptions, concordance_figure
from dashboard.figures.layout import fixed_margins
from engine.cohort.tables import concordance
from store.metrics import LOW_ALMI_KG_M2


def _axes(fig: go.Figure) -> list:
    return [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]


def test_fixed_margins_turns_automargin_off_on_every_axis() -> None:
    fig = fixed_margins(make_subplots(rows=1, cols=3), l=61, r=7, t=33, b=44)
    axes = _axes(fig)
    assert len(axes) == 6 and all(a.automargin is False for a in axes)
    assert (fig.layout.margin.l, fig.layout.margin.r, fig.layout.margin.t, fig.layout.margin.b) == (61, 7, 33, 44)
    assert fig.layout.title.automargin is False


def test_cohort_figures_keep_their_margins() -> None:
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame({"sex": rng.integers(0, 2, n), "age_stratum": rng.choice(["40-49", "50-59", "60-69"], n),
                       "almi": rng.normal(7.5, 1.0, n), "tmv_cm3": rng.normal(9000, 1500, n),
                       "tvi": rng.normal(3.0, 0.4, n)})
    for fig in figure4(df, almi_cutoffs=LOW_ALMI_KG_M2):
        assert all(a.automargin is False for a in _axes(fig)) and fig.layout.margin.l == 60
    summary = pd.DataFrame({"age_stratum": ["40-49", "40-49"], "sex": [0, 1], "n": [10, 12], "n_below": [1, 2]})
    assert all(a.automargin is False for a in _axes(below_cutoff_chart(summary)))


def test_a_density_panel_leaves_room_for_its_colour_bar() -> None:
    rng = np.random.default_rng(2)
    legs = rng.normal(16.0, 3.0, 600)
    df = pd.DataFrame({"sex": rng.integers(0, 2, 600), "legs_lean_kg": legs,
                       "tmv_cm3": 550 * legs + rng.normal(0, 600, 600)})
    stats = concordance(df, "legs_lean_kg", "tmv_cm3")
    density, points = (concordance_figure(df, "tmv_legs", stats, ConcordanceOptions(kind=kind))
                       for kind in ("density", "scatter"))
    assert isinstance(density.data[0], go.Heatmap) and isinstance(points.data[0], go.Scattergl)
    assert density.layout.margin.r > points.layout.margin.r  # the colour bar's room, so no second layout pass
    assert all(a.automargin is False for f in (density, points) for a in _axes(f))
