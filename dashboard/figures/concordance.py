"""Concordance page figures (the study's Figure 3): an MRI measure against its DEXA counterpart.

``concordance_figure`` draws every participant with WebGL (``Scattergl``) or as a 2-D density binned
on the server (:mod:`dashboard.figures.density`: only the grid of counts reaches the browser; bins of
fewer than ``min_count`` participants are blank, so with ``min_count`` > 1 no participant's values
do). Above :data:`POINTS_LIMIT` participants a page opens with the density (:func:`default_kind`): a
few kilobytes instead of megabytes of points, whatever the cohort size. It writes Pearson r with its
Fisher-z CI and n for everyone and by sex in the corner.
The r values are those of the :func:`engine.cohort.tables.concordance` table the caller computed
once and passes in (the page shows the same table as text), also kept in ``fig.layout.meta``. ``fit_line`` adds the least-squares line.

``agreement_figure`` is the Bland-Altman plot of a pair in one unit (MSMV against AMRA): each
participant's difference (MSMV - the other method) against the mean of the two, the mean difference
and the 95 % limits of agreement as lines, and those numbers with n in the corner, from the
:func:`engine.cohort.tables.agreement` table the caller computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.cohort import SEX_COLOR
from dashboard.figures.density import bin_count, binned_density, density_trace
from dashboard.figures.layout import fixed_margins
from engine.cohort.stats import least_squares_line
from engine.cohort.tables import AGREEMENT_COLUMNS, CONCORDANCE_PAIRS
from engine.errors import StatsError
from store.metrics import BY_NAME
from store.vocabulary import SEX_LABELS, SEXES

KINDS: dict[str, str] = {"scatter": "Points (WebGL)", "density": "Density"}
ALL_COLOR = "#555555"
LINE_COLOR = "#d62728"  # the regression and mean-difference lines, apart from both sexes' colours
LIMIT_COLOR = "#7f7f7f"
# Above this many participants a concordance panel opens as a density: 8 WebGL panels of 37,004 points
# made the Concordance page twice Streamlit's floor (benchmarks/pages.py); a density costs the same at any size.
POINTS_LIMIT = 20_000
# A density's colour bar sits right of the plot: a right margin that holds it keeps plotly.js from widening
# the margin and drawing the figure again (eight density panels: ~40 % less drawing time in Chromium).
COLORBAR_MARGIN = 100
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
    fit_line: bool = False  # add the least-squares line of y on x (everyone)


def _checked(pair: str, options: ConcordanceOptions | None, table: pd.DataFrame, needed: Sequence[str],
             what: str) -> ConcordanceOptions:
    """The options (default when None) once ``pair``, the options' kind and ``table``'s columns are valid."""
    if pair not in CONCORDANCE_PAIRS:
        raise ValueError(f"unknown concordance pair {pair!r}; expected one of {list(CONCORDANCE_PAIRS)}")
    opts = options or ConcordanceOptions()
    if opts.kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {opts.kind!r}")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{what}; it lacks columns {missing}")
    return opts


def _right_margin(opts: ConcordanceOptions) -> int:
    return COLORBAR_MARGIN if opts.kind == "density" else 20


def default_kind(n: int) -> str:
    """The display a page opens with for ``n`` participants: points up to :data:`POINTS_LIMIT`, else a density."""
    return "scatter" if n <= POINTS_LIMIT else "density"


def _density(xs: pd.Series, ys: pd.Series, opts: ConcordanceOptions, x_label: str, y_label: str) -> go.Heatmap:
    """The server-binned density of the pairs (bins below ``opts.min_count`` blank)."""
    bins = bin_count(len(xs), opts.density_bins, opts.min_count)
    return density_trace(binned_density(xs.to_numpy(float), ys.to_numpy(float), bins=bins, min_count=opts.min_count),
                         x_label=x_label, y_label=y_label)


def r_label(group: str, row: pd.Series, confidence: float = 0.95) -> str:
    """"Men: r = 0.871 (95 % CI 0.866–0.876), n = 18,012" (or the reason r is missing)."""
    if not np.isfinite(row["r"]):
        return f"{group}: r not available ({row['error']})"
    pct = f"{100 * confidence:g} %"
    return (f"{group}: r = {row['r']:.3f} ({pct} CI {row['ci_low']:.3f}–{row['ci_high']:.3f}), "
            f"n = {int(row['n']):,}")


def concordance_figure(df: pd.DataFrame, pair: str, stats: pd.DataFrame,
                       options: ConcordanceOptions | None = None) -> go.Figure:
    """Scatter (or density) of ``CONCORDANCE_PAIRS[pair]``: the other method on x, MSMV on y, r in the corner.

    ``stats`` is ``concordance(df, x, y, confidence=options.confidence)``, computed by the caller.
    """
    opts = _checked(pair, options, stats, _STATS_COLUMNS, "stats must be a concordance() table")
    x, y, title = CONCORDANCE_PAIRS[pair]
    data = df.loc[df[x].notna() & df[y].notna(), ["sex", x, y]]
    fig = go.Figure()
    if opts.kind == "density":
        fig.add_trace(_density(data[x], data[y], opts, "x", "y"))
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
    if opts.fit_line:
        _add_fit_line(fig, data[x], data[y])
    lines = [r_label(row["group"], row, opts.confidence) for _, row in stats.iterrows()]
    fig.add_annotation(
        x=0.01, y=0.99, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
        align="left", text="<br>".join(lines), bgcolor="rgba(255,255,255,0.8)", font=dict(size=11),
        name="pearson",
    )
    fig.update_layout(
        title=title, height=opts.height,
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", itemsizing="constant"),
        meta={"pair": pair, "x": x, "y": y, "pearson": stats.drop(columns="error").to_dict(orient="records")},
    )
    fig.update_xaxes(title_text=BY_NAME[x].title)
    fig.update_yaxes(title_text=BY_NAME[y].title)
    return fixed_margins(fig, l=60, r=_right_margin(opts), t=50, b=50)


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


# ------------------------------------------------------------------------ regression line, Bland-Altman


def _add_fit_line(fig: go.Figure, xs: pd.Series, ys: pd.Series) -> None:
    """The least-squares line of ``ys`` on ``xs`` across their range (none when it cannot be fitted)."""
    try:
        line = least_squares_line(xs, ys)
    except StatsError:
        return  # too few or constant values: the r annotation already says r is not available
    ends = np.array([xs.min(), xs.max()], dtype=float)
    fig.add_trace(go.Scatter(
        x=ends, y=line.intercept + line.slope * ends, mode="lines", name="Least-squares line",
        line=dict(color=LINE_COLOR, width=2),
        hovertemplate=f"y = {line.intercept:.4g} + {line.slope:.4g} x<extra></extra>",
    ))


def _agreement_points(fig: go.Figure, sex: pd.Series, xs: pd.Series, ys: pd.Series, opts: ConcordanceOptions) -> None:
    """Participants as the options say: WebGL points (by sex or pooled) or a density, small bins blank."""
    if opts.kind == "density":
        fig.add_trace(_density(xs, ys, opts, "mean", "difference"))
    else:
        groups = [(SEX_LABELS[s], SEX_COLOR[s], sex == s) for s in SEXES] if opts.by_sex else [
            ("All", ALL_COLOR, pd.Series(True, index=sex.index))]
        for name, colour, rows in groups:
            fig.add_trace(go.Scattergl(
                x=xs[rows].to_numpy(float), y=ys[rows].to_numpy(float), mode="markers", name=name,
                marker=dict(color=colour, size=opts.marker_size, opacity=opts.opacity),
                hovertemplate="mean %{x:.4g}, difference %{y:.3g}<extra>" + name + "</extra>",
            ))


def agreement_text(row: pd.Series, unit: str, confidence: float = 0.95) -> str:
    """"Mean difference 1,234.5 cm³ (95 % CI …)<br>95 % limits of agreement … to … cm³<br>n = 1,234"."""
    if not np.isfinite(row["mean_difference"]):
        return f"Limits of agreement not available ({row['error']})<br>n = {int(row['n']):,}"
    pct = f"{100 * confidence:g} %"
    return (f"Mean difference {row['mean_difference']:,.1f} {unit} ({pct} CI {row['ci_low']:,.1f} to "
            f"{row['ci_high']:,.1f})<br>95 % limits of agreement {row['lower_limit']:,.1f} to "
            f"{row['upper_limit']:,.1f} {unit}<br>n = {int(row['n']):,}")


def agreement_figure(df: pd.DataFrame, pair: str, table: pd.DataFrame,
                     options: ConcordanceOptions | None = None) -> go.Figure:
    """Bland-Altman plot of ``CONCORDANCE_PAIRS[pair]``: MSMV minus the other method against their mean.

    ``table`` is ``agreement(df, x, y, confidence=options.confidence)``, computed by the caller; its
    "All" row draws the mean-difference line and the two limits of agreement and writes the corner text.
    """
    opts = _checked(pair, options, table, AGREEMENT_COLUMNS, "table must be an agreement() table")
    everyone = table[table["group"] == "All"]
    if everyone.empty:
        raise ValueError("table must have an 'All' row, as engine.cohort.tables.agreement writes")
    row = everyone.iloc[0]
    x, y, title = CONCORDANCE_PAIRS[pair]
    data = df.loc[df[x].notna() & df[y].notna(), ["sex", x, y]]
    means, differences = (data[x] + data[y]) / 2, data[y] - data[x]
    fig = go.Figure()
    _agreement_points(fig, data["sex"], means, differences, opts)
    unit = BY_NAME[y].unit
    if np.isfinite(row["mean_difference"]) and len(data):
        ends = np.array([means.min(), means.max()], dtype=float)
        for name, value, colour, dash in (("Mean difference", row["mean_difference"], LINE_COLOR, "solid"),
                                          ("Upper limit of agreement", row["upper_limit"], LIMIT_COLOR, "dash"),
                                          ("Lower limit of agreement", row["lower_limit"], LIMIT_COLOR, "dash")):
            fig.add_trace(go.Scatter(
                x=ends, y=[value, value], mode="lines", name=name, line=dict(color=colour, width=2, dash=dash),
                hovertemplate=f"{name}: {value:,.1f} {unit}<extra></extra>",
            ))
    fig.add_annotation(
        x=0.01, y=0.99, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
        align="left", text=agreement_text(row, unit, opts.confidence), bgcolor="rgba(255,255,255,0.8)",
        font=dict(size=11), name="bland_altman",
    )
    fig.update_layout(
        title=f"Bland–Altman: {title} (n = {int(row['n']):,})", height=opts.height,
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", itemsizing="constant"),
        meta={"pair": pair, "x": x, "y": y, "agreement": table.drop(columns="error").to_dict(orient="records")},
    )
    fig.update_xaxes(title_text=f"Mean of {BY_NAME[y].label} and {BY_NAME[x].label} ({unit})")
    fig.update_yaxes(title_text=f"{BY_NAME[y].label} − {BY_NAME[x].label} ({unit})")
    return fixed_margins(fig, l=60, r=_right_margin(opts), t=50, b=50)


def format_agreement(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The table of :func:`engine.cohort.tables.agreement` for display: Group, n, bias and CI, SD, limits, Note."""
    pct = f"{100 * confidence:g} %"

    def num(v: float) -> str:
        return f"{v:,.1f}" if np.isfinite(v) else "–"

    def span(lows: pd.Series, highs: pd.Series) -> list[str]:
        return [f"{num(lo)} to {num(hi)}" if np.isfinite(lo) else "–" for lo, hi in zip(lows, highs, strict=True)]

    return pd.DataFrame({
        "Group": table["group"],
        "n": table["n"].astype(int),
        "Mean difference": [num(v) for v in table["mean_difference"]],
        f"{pct} CI": span(table["ci_low"], table["ci_high"]),
        "SD of differences": [num(v) for v in table["sd_difference"]],
        "95 % limits of agreement": span(table["lower_limit"], table["upper_limit"]),
        "Note": table["error"],
    })
