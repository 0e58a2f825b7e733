"""Figures of the Jobs page: per-stage timings of processed subjects."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from store.vocabulary import JOB_STATUSES, PIPELINE_STAGES


def stage_timing_figure(timings: pd.DataFrame, *, height: int = 320) -> go.Figure:
    """Box per stage of the seconds each finished subject spent in it (``stage``, ``seconds`` columns)."""
    missing = {"stage", "seconds"} - set(timings.columns)
    if missing:
        raise ValueError(f"timings table lacks column(s) {sorted(missing)}; it has {list(timings.columns)}")
    stages = [s for s in PIPELINE_STAGES if s in set(timings["stage"])]
    stages += sorted(set(timings["stage"]) - set(stages))
    fig = go.Figure()
    for name in stages:
        secs = timings.loc[timings["stage"] == name, "seconds"].astype(float)
        fig.add_trace(go.Box(y=secs, name=name, boxmean=True, boxpoints="all" if len(secs) < 50 else False,
                             hovertemplate=f"{name}: %{{y:.2f}} s<extra></extra>"))
    fig.update_layout(height=height, showlegend=False, yaxis_title="seconds per subject",
                      margin=dict(l=10, r=10, t=30, b=10), title="Time per stage")
    return fig


def status_counts(jobs: pd.DataFrame) -> dict[str, int]:
    """Number of jobs per status, every status present (0 when none)."""
    counts = jobs["status"].value_counts() if len(jobs) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in JOB_STATUSES}
