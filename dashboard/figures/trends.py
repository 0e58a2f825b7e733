"""Age-trend figures of the Cohort page: decline per decade by sex with 95 % CIs.

``decline_figure`` takes the table of :func:`engine.cohort.tables.age_trends` (metric, label, sex,
sex_label, estimate, ci_low, ci_high) and draws one panel per metric (their units differ).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures.cohort import SEX_COLOR
from dashboard.figures.layout import fixed_margins

_REQUIRED = ["metric", "label", "sex", "sex_label", "estimate", "ci_low", "ci_high"]


def decline_figure(trends: pd.DataFrame, *, height: int = 380) -> go.Figure:
    """One panel per metric: the decline per decade of each sex as a point with its CI bar."""
    if not isinstance(trends, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(trends).__name__}")
    missing = [c for c in _REQUIRED if c not in trends.columns]
    if missing:
        raise ValueError(f"age-trend table lacks column(s) {missing}; it has {list(trends.columns)}")
    metrics = list(dict.fromkeys(trends["metric"]))
    labels = [str(trends.loc[trends["metric"] == m, "label"].iloc[0]) for m in metrics]
    fig = make_subplots(rows=1, cols=max(len(metrics), 1), subplot_titles=labels)
    shown: set[str] = set()
    for col, metric in enumerate(metrics, start=1):
        rows = trends[(trends["metric"] == metric) & np.isfinite(trends["estimate"].astype(float))]
        for _, row in rows.iterrows():
            name = str(row["sex_label"])
            fig.add_trace(go.Scatter(
                x=[name], y=[row["estimate"]], mode="markers", name=name, legendgroup=name,
                showlegend=name not in shown, marker=dict(size=10, color=SEX_COLOR.get(int(row["sex"]))),
                error_y=dict(type="data", symmetric=False, array=[row["ci_high"] - row["estimate"]],
                             arrayminus=[row["estimate"] - row["ci_low"]]),
                hovertemplate=f"{row['label']}, {name}: %{{y:.4g}} per decade "
                              f"({row['ci_low']:.4g} to {row['ci_high']:.4g})<extra></extra>",
            ), row=1, col=col)
            shown.add(name)
        fig.add_hline(y=0.0, line_dash="dot", line_color="#888888", row=1, col=col)
    fig.update_yaxes(title_text="Change per decade (95 % CI)", row=1, col=1)
    fig.update_layout(height=height, legend=dict(orientation="h", y=1.25, yanchor="bottom", x=0, xanchor="left"))
    return fixed_margins(fig, l=60, r=20, t=90, b=40)
