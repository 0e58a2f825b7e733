"""Figures kept by the dashboard's caches come back as the same figures."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from dashboard.figures.cached import FigureDict, packed, unpacked


def _figure() -> go.Figure:
    fig = go.Figure(go.Scatter(x=np.arange(5.0), y=np.array([3.0, 1.0, np.nan, 2.0, 5.0]), name="a"))
    fig.add_hline(y=2.5, line_dash="dash")
    fig.update_layout(title="t", meta={"pair": "p"})
    return fig


def test_packed_figures_unpickle_to_the_same_json() -> None:
    fig, table = _figure(), pd.DataFrame({"n": [1, 2]})
    kept = pickle.loads(pickle.dumps(packed((fig, [fig], {"f": fig}, table, 3))))
    assert isinstance(kept[0], FigureDict) and isinstance(kept[1][0], FigureDict) and isinstance(kept[2]["f"], FigureDict)
    back = unpacked(kept)
    assert isinstance(back, tuple) and isinstance(back[1], list) and back[4] == 3
    for restored in (back[0], back[1][0], back[2]["f"]):
        assert isinstance(restored, go.Figure)
        assert json.loads(pio.to_json(restored, validate=False)) == json.loads(pio.to_json(fig, validate=False))
    assert back[0].layout.title.text == "t" and back[0].data[0].name == "a"
    pd.testing.assert_frame_equal(back[3], table)
