"""Associations page figures (the study's Figure 5 and Table 2): forest plots of high-vs-low tertile ORs.

Builders take the tables of :func:`engine.cohort.tables.forest_table` (one row per outcome) or
:func:`engine.cohort.tables.sex_stratified` (one row per outcome x sex) and return a ``go.Figure``; the OR
axis is logarithmic with a dashed line at OR = 1, and each row is labelled "OR (CI) · events high/low".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.cohort import SEX_COLOR
from dashboard.figures.layout import fixed_margins
from engine.cohort.frames import require_columns
from engine.cohort.tables import COVARIATES

FOREST_COLOR = "#1f3b73"
GROUP_OFFSET = 0.18  # vertical distance of the men / women markers from their outcome's row
_REQUIRED = ["outcome_label", "odds_ratio", "ci_low", "ci_high", "events_high", "events_low"]


def or_text(row: pd.Series) -> str:
    """'1.60 (1.45–1.77) · 1,083/698', or the reason the model could not be fitted."""
    if not np.isfinite(row["odds_ratio"]):
        return f"not estimable · {int(row['events_high']):,}/{int(row['events_low']):,}"
    return (f"{row['odds_ratio']:.2f} ({row['ci_low']:.2f}–{row['ci_high']:.2f}) · "
            f"{int(row['events_high']):,}/{int(row['events_low']):,}")


def forest_figure(table: pd.DataFrame, *, title: str = "", height: int | None = None) -> go.Figure:
    """Forest plot: one row per outcome (top to bottom in table order), a marker per sex if the table
    has ``sex``/``sex_label`` columns. Rows that could not be fitted show their label with no marker."""
    require_columns(table, _REQUIRED, what="forest table")
    outcomes = list(dict.fromkeys(table["outcome_label"]))
    ypos = {label: len(outcomes) - 1 - i for i, label in enumerate(outcomes)}
    grouped = "sex_label" in table.columns
    groups = list(dict.fromkeys(table["sex_label"])) if grouped else [None]
    fig = go.Figure()
    for gi, group in enumerate(groups):
        rows = table[table["sex_label"] == group] if grouped else table
        offset = (GROUP_OFFSET * (1 - 2 * gi / max(len(groups) - 1, 1))) if grouped and len(groups) > 1 else 0.0
        color = SEX_COLOR.get(int(rows["sex"].iloc[0]), FOREST_COLOR) if grouped else FOREST_COLOR
        ok = rows[np.isfinite(rows["odds_ratio"].astype(float))]
        fig.add_trace(go.Scatter(
            x=ok["odds_ratio"], y=[ypos[lab] + offset for lab in ok["outcome_label"]], mode="markers",
            name=group or "High vs low tertile", showlegend=grouped,
            marker=dict(symbol="square", size=9, color=color),
            error_x=dict(type="data", symmetric=False, array=ok["ci_high"] - ok["odds_ratio"],
                         arrayminus=ok["odds_ratio"] - ok["ci_low"], color=color, thickness=1.5, width=4),
            customdata=np.column_stack([ok["ci_low"], ok["ci_high"], ok["p_value"] if "p_value" in ok else
                                        np.full(len(ok), np.nan)]),
            hovertemplate="OR %{x:.2f} (%{customdata[0]:.2f}–%{customdata[1]:.2f}), p %{customdata[2]:.3g}"
                          f"<extra>{group or ''}</extra>",
        ))
        for _, row in rows.iterrows():
            fig.add_annotation(
                x=1.0, xref="paper", xanchor="left", y=ypos[row["outcome_label"]] + offset, yref="y",
                text=(f"{group}: " if grouped else "") + or_text(row), showarrow=False, font=dict(size=11),
                xshift=8, name="or_text",
            )
    fig.add_vline(x=1.0, line_dash="dash", line_color="#888888")
    fig.update_xaxes(type="log", title_text="Odds ratio, high vs low tertile (log scale)")
    fig.update_yaxes(tickvals=list(ypos.values()), ticktext=list(ypos.keys()), range=[-0.6, len(outcomes) - 0.4])
    fig.update_layout(
        title=title, height=height or 110 + 60 * len(outcomes) * (1.5 if grouped else 1),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right"),
    )
    return fixed_margins(fig, l=150, r=260, t=50, b=50)  # the outcome labels fit in 150 px, the OR text in 260


def format_forest(table: pd.DataFrame, *, min_count: int = 1) -> pd.DataFrame:
    """The forest table for display: Outcome, [Sex], OR (95 % CI), p, n, Events high/low, Adjusted for, Note.

    An event count below ``min_count`` is shown as ``"<min_count"`` (small-count suppression).
    """
    require_columns(table, [*_REQUIRED, "p_value", "n"], what="forest table")
    out = pd.DataFrame({"Outcome": table["outcome_label"]})
    if "sex_label" in table.columns:
        out["Sex"] = table["sex_label"]
    out["OR (95 % CI)"] = [
        f"{r.odds_ratio:.2f} ({r.ci_low:.2f}–{r.ci_high:.2f})" if np.isfinite(r.odds_ratio) else "–"
        for r in table.itertuples()
    ]
    out["p"] = [_p_text(p) for p in table["p_value"]]
    out["n"] = table["n"].astype(int)
    out["Events high/low"] = [f"{_count_text(h, min_count)}/{_count_text(lo, min_count)}"
                              for h, lo in zip(table["events_high"], table["events_low"], strict=True)]
    if "adjusted_for" in table.columns:
        out["Adjusted for"] = [", ".join(COVARIATES.get(c, c) for c in str(a).split(", ") if c)
                               for a in table["adjusted_for"]]
    if "error" in table.columns:
        out["Note"] = table["error"]
    return out.reset_index(drop=True)


def _count_text(k: float, min_count: int) -> str:
    return f"<{min_count}" if k < min_count else f"{int(k):,}"


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
