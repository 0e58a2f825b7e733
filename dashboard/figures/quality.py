"""Figures and tables of the Quality page: flag counts and the distributions the flags cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.density import histogram
from engine.quality.checks import BY_CODE
from store.export import SMALL_COUNT_THRESHOLD

SUBJECT_URL = "/subject?eid={eid}"  # the Subject page reads ?eid= (pages/subject.py)


def flag_counts_figure(counts: pd.DataFrame, *, height: int = 300) -> go.Figure:
    """Horizontal bars: subjects flagged by each check (``code``, ``check``, ``subjects`` columns)."""
    missing = {"code", "check", "subjects"} - set(counts.columns)
    if missing:
        raise ValueError(f"counts table lacks column(s) {sorted(missing)}; it has {list(counts.columns)}")
    shown = counts.iloc[::-1]  # first check on top
    fig = go.Figure(go.Bar(x=shown["subjects"], y=shown["check"], orientation="h", text=shown["subjects"],
                           textposition="auto", hovertemplate="%{y}: %{x} subjects<extra></extra>"))
    fig.update_layout(height=height, xaxis_title="subjects flagged", margin=dict(l=10, r=10, t=30, b=10),
                      title="Subjects flagged, by check")
    return fig


def distribution_figure(values: pd.Series, *, threshold: float, title: str, x_title: str, nbins: int = 40,
                        height: int = 300) -> go.Figure:
    """Histogram of one QC measure over the subjects, with the flagging threshold as a dashed line.

    Binned on the server (``nbins`` equal-width bins over the values' range, as :func:`numpy.histogram`
    draws them) and drawn as bars: only the counts reach the browser, not one value per subject (about
    6 MB for the three histograms at 500,000 subjects). The annotation counts the subjects beyond the
    threshold; an empty ``values`` draws the line alone.
    """
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    above = int((x > threshold).sum())
    fig = go.Figure()
    if x.size:
        edges, counts = histogram(x, nbins)
        fig.add_trace(go.Bar(  # equally spaced centres: plotly draws each bar (1 - bargap) of a bin wide
            x=(edges[:-1] + edges[1:]) / 2, y=counts,
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            hovertemplate="%{customdata[0]:.3g}–%{customdata[1]:.3g}: %{y} subjects<extra></extra>",
        ))
    fig.add_vline(x=threshold, line_dash="dash", line_color="crimson",
                  annotation_text=f"threshold {threshold:g} · {above:,} above", annotation_position="top right")
    fig.update_layout(height=height, title=title, xaxis_title=x_title, yaxis_title="subjects", bargap=0.05,
                      margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def aggregate_counts(counts: pd.DataFrame, *, min_count: int = SMALL_COUNT_THRESHOLD) -> pd.DataFrame:
    """The counts table with every count between 1 and ``min_count`` - 1 shown as "< min_count" (text)."""
    out = counts[["check", "flags", "subjects"]].copy()
    for col in ("flags", "subjects"):
        out[col] = [f"< {min_count}" if 0 < int(v) < min_count else f"{int(v):,}" for v in counts[col]]
    return out


def flagged_table(flagged: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged subject: link to its Subject page, flag count, the checks and every reason."""
    reasons = flags.groupby("eid")["reason"].agg("\n".join) if len(flags) else pd.Series(dtype=str)
    checks = (flags.groupby("eid")["code"].agg(lambda c: ", ".join(BY_CODE[x].title for x in dict.fromkeys(c)))
              if len(flags) else pd.Series(dtype=str))
    out = pd.DataFrame({
        "eid": flagged["eid"].astype("int64").to_numpy(),
        "subject": [SUBJECT_URL.format(eid=int(e)) for e in flagged["eid"]],
        "flags": flagged["qc_flag_count"].astype("int64").to_numpy(),
        "checks": flagged["eid"].map(checks).fillna("").to_numpy(),
        "reasons": flagged["eid"].map(reasons).fillna("").to_numpy(),
        "low_confidence_share": flagged["low_confidence_share"].to_numpy(),
        "max_abs_z": flagged["max_abs_z"].to_numpy(),
        "max_asymmetry_pct": flagged["max_asymmetry_pct"].to_numpy(),
    })
    return out.reset_index(drop=True)


SCAN_RANGE_MARK = "measured within the scanned range"


def scan_range_marks(labels: pd.Series, edge: frozenset[int] | None) -> pd.Series:
    """Per structure label: :data:`SCAN_RANGE_MARK` where it reaches the scan's first or last slice (with
    "QC flag" where it should lie wholly inside), "" where it lies inside, None where nothing was recorded."""
    from store.structures import expected_inside

    if edge is None:
        return pd.Series([None] * len(labels), index=labels.index, dtype=object)
    return pd.Series([(SCAN_RANGE_MARK + ("" if not expected_inside(int(lab)) else " · QC flag"))
                      if int(lab) in edge else "" for lab in labels], index=labels.index, dtype=object)
