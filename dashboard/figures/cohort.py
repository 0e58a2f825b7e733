"""Figures of the Cohort page: the study's Figure 4 and the share below the EWGSOP2 ALMI cut-off.

Builders are pure: they take the wide per-participant DataFrame (columns ``sex`` with 1 = male and
0 = female, ``age_stratum`` and the metric) or a summary table, and return a ``go.Figure``.
Boxes sit on a numeric x axis (stratum ``i`` at ``x = i``, men left and women right of it) so that
box centres, their "n=" labels and outlier markers line up exactly without plotly's group offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.box_stats import box_stats
from dashboard.figures.layout import fixed_margins
from engine.cohort.frames import require_columns
from store.metrics import AGE_STRATA, BY_NAME
from store.vocabulary import FEMALE, MALE, SEX_LABELS, SEXES

SEX_COLOR: dict[int, str] = {MALE: "#1f5fa8", FEMALE: "#c0392b"}  # study's Figure 4: men blue, women red

BOX_HALF_OFFSET = 0.2  # each sex's box centre sits this far left (men) / right (women) of its stratum
BOX_WIDTH = 0.34
# Outliers of one box closer than 1/OUTLIER_STEPS of the panel's value range sit on the same pixel (a
# panel is ~400 px tall): one marker is sent for them. At 500,000 participants a panel had ~7,000 outlier
# markers, a few hundred distinct on screen, and drawing them made the Cohort page 4x Streamlit's floor.
OUTLIER_STEPS = 2000
N_LABEL_PREFIX = "n="


@dataclass(frozen=True)
class BoxPlotOptions:
    """How an age x sex box plot is drawn.

    ``precompute`` sends five statistics per box (and the outliers) instead of every value.
    """

    precompute: bool = True
    show_outliers: bool = True
    height: int = 440


def box_centre(stratum_index: int, sex: int) -> float:
    """x position of the box of ``sex`` in the ``stratum_index``-th displayed age stratum."""
    if sex not in SEX_LABELS:
        raise ValueError(f"sex must be {MALE} (male) or {FEMALE} (female), got {sex!r}")
    return stratum_index + (-BOX_HALF_OFFSET if sex == MALE else BOX_HALF_OFFSET)


def distinct_on_screen(values: np.ndarray, lo: float, span: float, steps: int = OUTLIER_STEPS) -> np.ndarray:
    """One value of ``values`` per step of ``span / steps`` above ``lo`` (the lowest in each step), in order."""
    if values.size == 0 or not span > 0:
        return values[:1] if span == 0 else values
    _, first = np.unique(np.floor((values - lo) * (steps / span)), return_index=True)
    return np.sort(values[first])


def displayed_strata(df: pd.DataFrame, column: str = "age_stratum") -> list[str]:
    """Age strata present in ``df``, youngest first (the store's order; unknown labels after, sorted)."""
    present = {str(s) for s in df[column].dropna().unique()}
    known = [label for label, _, _ in AGE_STRATA if label in present]
    return known + sorted(present.difference(known))


def age_sex_boxplot(
    df: pd.DataFrame,
    metric: str,
    *,
    title: str,
    y_title: str,
    cutoffs: Mapping[int, float] | None = None,
    options: BoxPlotOptions | None = None,
) -> go.Figure:
    """Box plots of ``metric`` by age stratum x sex, with "n=" under each box.

    ``cutoffs`` maps a sex to a horizontal dashed reference line (e.g. the EWGSOP2 ALMI cut-offs).
    """
    require_columns(df, ["sex", "age_stratum", metric])
    opts = options or BoxPlotOptions()
    strata = displayed_strata(df)
    data = df.loc[df[metric].notna(), ["sex", "age_stratum", metric]]
    lo = float(data[metric].min()) if len(data) else 0.0
    span = float(data[metric].max()) - lo if len(data) else 0.0
    groups = {key: g[metric].to_numpy(dtype=np.float64) for key, g in data.groupby(["sex", "age_stratum"])}
    fig = go.Figure()
    annotations: list[dict] = []
    for sex in SEXES:
        stats, xs = [], []
        raw_x: list[np.ndarray] = []
        raw_y: list[np.ndarray] = []
        for i, stratum in enumerate(strata):
            values = groups.get((sex, stratum))
            if values is None or values.size == 0:
                continue
            s = box_stats(values)
            x = box_centre(i, sex)
            stats.append(s)
            xs.append(x)
            raw_x.append(np.full(values.size, x))
            raw_y.append(values)
            low = min(s.lower_whisker, float(s.outliers.min()) if s.outliers.size and opts.show_outliers else np.inf)
            annotations.append(
                dict(x=x, y=low, text=f"{N_LABEL_PREFIX}{s.n:,}", showarrow=False, yanchor="top", yshift=-3,
                     font=dict(size=10, color=SEX_COLOR[sex]))
            )
        if not stats:
            continue
        common = dict(name=SEX_LABELS[sex], legendgroup=SEX_LABELS[sex], marker_color=SEX_COLOR[sex],
                      line_color=SEX_COLOR[sex], width=BOX_WIDTH)
        if opts.precompute:
            fig.add_trace(go.Box(
                x=xs, q1=[s.q1 for s in stats], median=[s.median for s in stats], q3=[s.q3 for s in stats],
                lowerfence=[s.lower_whisker for s in stats], upperfence=[s.upper_whisker for s in stats],
                boxpoints=False, **common,
            ))
            if opts.show_outliers:
                shown = [distinct_on_screen(np.sort(s.outliers), lo, span) for s in stats]  # one per pixel
                ox = np.concatenate([np.full(o.size, x) for o, x in zip(shown, xs, strict=True)])
                oy = np.concatenate(shown)
                fig.add_trace(go.Scatter(
                    x=ox, y=oy, mode="markers", name=f"{SEX_LABELS[sex]} outliers", legendgroup=SEX_LABELS[sex],
                    showlegend=False, marker=dict(color=SEX_COLOR[sex], size=3, opacity=0.5),
                    hovertemplate="%{y}<extra>outlier</extra>",
                ))
        else:
            fig.add_trace(go.Box(
                x=np.concatenate(raw_x), y=np.concatenate(raw_y), quartilemethod="linear",
                boxpoints="outliers" if opts.show_outliers else False, **common,
            ))
    for sex, value in (cutoffs or {}).items():
        # the line's value is labelled in the right margin, clear of the boxes
        fig.add_hline(y=value, line_dash="dash", line_color=SEX_COLOR[sex], line_width=1.5)
        annotations.append(dict(xref="paper", x=1.0, xanchor="left", y=value, text=f"{value:g}", showarrow=False,
                                font=dict(size=11, color=SEX_COLOR[sex])))
    fig.update_layout(
        title=title, height=opts.height, boxmode="overlay", annotations=[*fig.layout.annotations, *annotations],
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
    )
    fig.update_xaxes(tickvals=list(range(len(strata))), ticktext=strata, title_text=BY_NAME["age"].title,
                     range=[-0.6, len(strata) - 0.4])
    fig.update_yaxes(title_text=y_title)
    return fixed_margins(fig, l=60, r=40, t=50, b=50)


def _trend_subtitle(summary: pd.DataFrame) -> str:
    """"men z = …, p = …" from the per-sex Cochran-Armitage columns ``trend_z``/``trend_p`` if present."""
    if not {"trend_z", "trend_p"}.issubset(summary.columns):
        return ""
    parts = []
    for sex in SEXES:
        rows = summary[(summary["sex"] == sex) & summary["trend_p"].notna()]
        if not rows.empty:
            z, p = float(rows["trend_z"].iloc[0]), float(rows["trend_p"].iloc[0])
            parts.append(f"{SEX_LABELS[sex].lower()} z = {z:.2f}, p = {p:.2g}")
    return "Cochran–Armitage trend: " + "; ".join(parts) if parts else ""


def below_cutoff_chart(summary: pd.DataFrame, *, title: str = "Below the EWGSOP2 ALMI cut-off") -> go.Figure:
    """Grouped bars: share of each age stratum x sex below the ALMI cut-off.

    ``summary`` (``engine.cohort.tables.below_cutoff_trend``) has one row per stratum x sex with columns
    ``age_stratum``, ``sex``, ``n`` (participants with ALMI) and ``n_below``, optionally ``trend_z`` and
    ``trend_p`` (shown as a subtitle). Bar height is ``n_below / n`` in percent, labelled.
    """
    require_columns(summary, ["age_stratum", "sex", "n", "n_below"])
    strata = displayed_strata(summary)
    fig = go.Figure()
    for sex in SEXES:
        rows = summary[summary["sex"] == sex].set_index("age_stratum").reindex(strata)
        rows = rows[rows["n"].fillna(0) > 0]
        if rows.empty:
            continue
        pct = 100.0 * rows["n_below"].to_numpy(dtype=float) / rows["n"].to_numpy(dtype=float)
        fig.add_trace(go.Bar(
            x=list(rows.index), y=pct, name=SEX_LABELS[sex], marker_color=SEX_COLOR[sex],
            text=[f"{p:.1f}%" for p in pct], textposition="outside",
            customdata=np.column_stack([rows["n_below"].to_numpy(), rows["n"].to_numpy()]),
            hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra>%{fullData.name}</extra>",
        ))
    fig.update_layout(title=dict(text=title, subtitle_text=_trend_subtitle(summary)), barmode="group",
                      height=400, legend=dict(orientation="h", y=1.02, x=1, xanchor="right"))
    fig.update_xaxes(title_text=BY_NAME["age"].title, categoryorder="array", categoryarray=strata)
    fig.update_yaxes(title_text="% below cut-off", rangemode="tozero")
    return fixed_margins(fig, l=60, r=20, t=70, b=50)


@dataclass(frozen=True)
class Panel:
    """One panel of the study's Figure 4."""

    metric: str
    title: str
    with_cutoffs: bool = False

    @property
    def y_title(self) -> str:
        """The metric's title from the store's vocabulary, e.g. "ALMI (kg/m²)"."""
        return BY_NAME[self.metric].title


# The study's Figure 4: a ALMI with the EWGSOP2 lines, b TMV, c TVI (unit cm³/cm², docs/architecture.md).
FIGURE4_PANELS: tuple[Panel, ...] = (
    Panel("almi", "a · ALMI (DEXA) by age and sex", with_cutoffs=True),
    Panel("tmv_cm3", "b · Thigh muscle volume (MRI) by age and sex"),
    Panel("tvi", "c · Thigh volume index by age and sex"),
)


def figure4(
    df: pd.DataFrame, *, almi_cutoffs: Mapping[int, float], options: BoxPlotOptions | None = None
) -> list[go.Figure]:
    """The three box-plot panels of the study's Figure 4, in order."""
    return [
        age_sex_boxplot(df, p.metric, title=p.title, y_title=p.y_title,
                        cutoffs=almi_cutoffs if p.with_cutoffs else None, options=options)
        for p in FIGURE4_PANELS
    ]
