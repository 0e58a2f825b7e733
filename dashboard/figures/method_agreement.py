"""Agreement page figures: a Bland-Altman plot of two metric sources and the per-metric table for display.

The numbers come from :func:`engine.cohort.agreement.agreement_table`, computed once by the page; the plot
draws each shared participant's difference (second source minus first) against the mean of the two as
WebGL points, or, when ``options.min_count`` > 1 (the access policy's aggregate view), as a density binned
here with its small bins blank, so no participant's values reach the browser.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.concordance import LIMIT_COLOR, LINE_COLOR, ConcordanceOptions, _agreement_points
from engine.cohort.agreement import SUFFIXES, TABLE_COLUMNS
from store.metrics import BY_NAME

_LINES = (("Mean difference", "mean_difference", LINE_COLOR, "solid"),
          ("Upper limit of agreement", "upper_limit", LIMIT_COLOR, "dash"),
          ("Lower limit of agreement", "lower_limit", LIMIT_COLOR, "dash"))


def _num(value: float, unit: str) -> str:
    digits = 3 if unit == "ratio" else 1
    return f"{value:,.{digits}f}" if np.isfinite(value) else "–"


def bland_altman_figure(pairs: pd.DataFrame, row: pd.Series, names: tuple[str, str],
                        options: ConcordanceOptions | None = None) -> go.Figure:
    """Bland-Altman plot of ``row["metric"]`` (a row of ``agreement_table(pairs)``) for sources ``names``."""
    missing = [c for c in TABLE_COLUMNS if c not in row.index]
    if missing:
        raise ValueError(f"row must be a row of engine.cohort.agreement.agreement_table; it lacks {missing}")
    opts = options or ConcordanceOptions()
    metric, unit = str(row["metric"]), str(row["unit"])
    a, b = (pairs[f"{metric}{s}"] for s in SUFFIXES)
    keep = a.notna() & b.notna()
    means, differences = (a[keep] + b[keep]) / 2, b[keep] - a[keep]
    fig = go.Figure()
    _agreement_points(fig, pairs.loc[keep, "sex"], means, differences, opts)
    shown = unit if unit != "ratio" else ""
    if np.isfinite(row["mean_difference"]) and keep.any():
        ends = np.array([means.min(), means.max()], dtype=float)
        for name, column, colour, dash in _LINES:
            fig.add_trace(go.Scatter(
                x=ends, y=[row[column]] * 2, mode="lines", name=name, line=dict(color=colour, width=2, dash=dash),
                hovertemplate=f"{name}: {_num(row[column], unit)} {shown}<extra></extra>",
            ))
        text = (f"Mean difference {_num(row['mean_difference'], unit)} {shown}<br>95 % limits of agreement "
                f"{_num(row['lower_limit'], unit)} to {_num(row['upper_limit'], unit)} {shown}<br>"
                f"r = {_num(row['r'], 'ratio')}, ICC(2,1) = {_num(row['icc'], 'ratio')}, n = {int(row['n']):,}")
    else:
        text = f"Limits of agreement not available ({row['error']})<br>n = {int(row['n']):,}"
    fig.add_annotation(x=0.01, y=0.99, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
                       align="left", text=text, bgcolor="rgba(255,255,255,0.8)", font=dict(size=11),
                       name="bland_altman")
    label = BY_NAME[metric].title
    fig.update_layout(
        title=f"Bland–Altman: {label}, {names[1]} vs {names[0]} (n = {int(row['n']):,})", height=opts.height,
        margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", itemsizing="constant"),
        meta={"metric": metric, "sources": list(names)},
    )
    fig.update_xaxes(title_text=f"Mean of the two sources ({label})")
    fig.update_yaxes(title_text=f"{names[1]} − {names[0]}" + (f" ({unit})" if shown else ""))
    return fig


def format_agreement_table(table: pd.DataFrame, *, min_count: int = 1) -> pd.DataFrame:
    """The agreement table for display; a metric with fewer than ``min_count`` pairs shows no statistic."""
    rows = []
    for _, r in table.iterrows():
        small = 0 < r["n"] < min_count
        hide = small or not np.isfinite(r["mean_difference"])
        rows.append({
            "Metric": BY_NAME[r["metric"]].title,
            "n": f"< {min_count}" if small else f"{int(r['n']):,}",
            "r": "–" if small else _num(r["r"], "ratio"),
            "ICC(2,1)": "–" if small else _num(r["icc"], "ratio"),
            "Mean difference": "–" if hide else _num(r["mean_difference"], r["unit"]),
            "SD of differences": "–" if hide else _num(r["sd_difference"], r["unit"]),
            "95 % limits of agreement": "–" if hide else
            f"{_num(r['lower_limit'], r['unit'])} to {_num(r['upper_limit'], r['unit'])}",
            "Note": f"fewer than {min_count} shared participants" if small else r["error"],
        })
    return pd.DataFrame(rows)
