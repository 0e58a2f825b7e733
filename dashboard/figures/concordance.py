"""Concordance page figures (the study's Figure 3): an MRI measure against its DEXA counterpart.

``concordance_figure`` draws every participant with WebGL (``Scattergl``; fine at 37k points) or as
a 2-D density (binned on the server, with bins of fewer than ``min_count`` participants left blank, when
``min_count`` > 1: then no participant's values reach the browser), and writes Pearson r with its Fisher-z CI and n for everyone and by sex in the corner.
The r values are those of the :func:`engine.cohort.tables.concordance` table the caller computed
once and passes in (the page shows the same table as text), also kept in ``fig.layout.meta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.cohort import SEX_COLOR
from engine.cohort.tables import CONCORDANCE_PAIRS
from store.metrics import BY_NAME
from store.vocabulary import SEX_LABELS, SEXES

KINDS: dict[str, str] = {"scatter": "Points (WebGL)", "density": "Density"}
ALL_COLOR = "#555555"
_MIN_DENSITY_BINS = 5  # a coarser grid than this shows no shape at all
_STATS_COLUMNS = ("group", "n", "r", "ci_low", "ci_high", "error")  # what the r annotation reads


@dataclass(frozen=True)
class ConcordanceOptions:
    """How a concordance panel is drawn: ``kind`` "scatter" or "density"; ``by_sex`` colours points."""

    kind: str = "scatter"
    by_sex: bool = True
    marker_size: float = 3.0
    opacity: float = 0.35
    density_bins: int = 80
    min_count: int = 1  # density bins below it are blank (the access policy's small-count threshold)
    confidence: float = 0.95
    height: int = 480


def r_label(group: str, row: pd.Series, confidence: float = 0.95) -> str:
    """"Men: r = 0.871 (95 % CI 0.866–0.876), n = 18,012" (or the reason r is missing)."""
    if not np.isfinite(row["r"]):
        return f"{group}: r not available ({row['error']})"
    pct = f"{100 * confidence:g} %"
    return (f"{group}: r = {row['r']:.3f} ({pct} CI {row['ci_low']:.3f}–{row['ci_high']:.3f}), "
            f"n = {int(row['n']):,}")


def concordance_figure(df: pd.DataFrame, pair: str, stats: pd.DataFrame,
                       options: ConcordanceOptions | None = None) -> go.Figure:
    """Scatter (or density) of ``CONCORDANCE_PAIRS[pair]``: DEXA on x, MRI on y, r in the corner.

    ``stats`` is ``concordance(df, x, y, confidence=options.confidence)``, computed by the caller.
    """
    if pair not in CONCORDANCE_PAIRS:
        raise ValueError(f"unknown concordance pair {pair!r}; expected one of {list(CONCORDANCE_PAIRS)}")
    opts = options or ConcordanceOptions()
    if opts.kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {opts.kind!r}")
    missing = [c for c in _STATS_COLUMNS if c not in stats.columns]
    if missing:
        raise ValueError(f"stats must be a concordance() table; it lacks columns {missing}")
    x, y, title = CONCORDANCE_PAIRS[pair]
    data = df.loc[df[x].notna() & df[y].notna(), ["sex", x, y]]
    fig = go.Figure()
    if opts.kind == "density" and opts.min_count > 1:
        fig.add_trace(_binned_density(data[x].to_numpy(float), data[y].to_numpy(float), opts))
    elif opts.kind == "density":
        fig.add_trace(go.Histogram2d(
            x=data[x].to_numpy(float), y=data[y].to_numpy(float), nbinsx=opts.density_bins,
            nbinsy=opts.density_bins, colorscale="Viridis", colorbar=dict(title="n"), name="participants",
            hovertemplate="x %{x}<br>y %{y}<br>n %{z}<extra></extra>",
        ))
    elif opts.by_sex:
        for sex in SEXES:
            part = data[data["sex"] == sex]
            fig.add_trace(go.Scattergl(
                x=part[x].to_numpy(float), y=part[y].to_numpy(float), mode="markers", name=SEX_LABELS[sex],
                marker=dict(color=SEX_COLOR[sex], size=opts.marker_size, opacity=opts.opacity),
                hovertemplate="%{x:.3g}, %{y:.3g}<extra>" + SEX_LABELS[sex] + "</extra>",
            ))
    else:
        fig.add_trace(go.Scattergl(
            x=data[x].to_numpy(float), y=data[y].to_numpy(float), mode="markers", name="All",
            marker=dict(color=ALL_COLOR, size=opts.marker_size, opacity=opts.opacity),
        ))
    lines = [r_label(row["group"], row, opts.confidence) for _, row in stats.iterrows()]
    fig.add_annotation(
        x=0.01, y=0.99, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
        align="left", text="<br>".join(lines), bgcolor="rgba(255,255,255,0.8)", font=dict(size=11),
        name="pearson",
    )
    fig.update_layout(
        title=title, height=opts.height, margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", itemsizing="constant"),
        meta={"pair": pair, "x": x, "y": y, "pearson": stats.drop(columns="error").to_dict(orient="records")},
    )
    fig.update_xaxes(title_text=BY_NAME[x].title)
    fig.update_yaxes(title_text=BY_NAME[y].title)
    return fig


def _binned_density(x: np.ndarray, y: np.ndarray, opts: ConcordanceOptions) -> go.Heatmap:
    """Counts per bin computed here (a Histogram2d would ship every point), small bins blank.

    Fewer bins for a small cohort (about ``min_count`` people per bin if they were spread evenly over
    a square grid): with 80 x 80 bins a few hundred people would leave every bin blank.
    """
    if x.size == 0:
        return go.Heatmap(x=[], y=[], z=[], name="participants")
    bins = min(opts.density_bins, max(_MIN_DENSITY_BINS, int(np.sqrt(x.size / opts.min_count))))
    counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
    z = counts.T.astype(float)  # rows are y bins
    z[z < opts.min_count] = np.nan
    return go.Heatmap(
        x=(x_edges[:-1] + x_edges[1:]) / 2, y=(y_edges[:-1] + y_edges[1:]) / 2, z=z, colorscale="Viridis",
        colorbar=dict(title="n"), name="participants", hoverongaps=False,
        hovertemplate="x %{x:.3g}<br>y %{y:.3g}<br>n %{z}<extra></extra>",
    )


def format_concordance(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The table of :func:`engine.cohort.tables.concordance` for display: Group, n, r, CI, p, Note."""
    pct = f"{100 * confidence:g} %"
    return pd.DataFrame({
        "Group": table["group"],
        "n": table["n"].astype(int),
        "r": [f"{r:.3f}" if np.isfinite(r) else "–" for r in table["r"]],
        f"{pct} CI": [f"{lo:.3f}–{hi:.3f}" if np.isfinite(lo) else "–"
                      for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)],
        "p": ["–" if not np.isfinite(p) else "< 0.001" if p < 0.001 else f"{p:.3f}" for p in table["p_value"]],
        "Note": table["error"],
    })
