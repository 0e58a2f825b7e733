"""The Cohort page's "Age trends" section: decline per decade by sex and the below-cut-off trend test."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.data import per_view
from dashboard.figures.trends import decline_figure
from engine.cohort.tables import age_trends, below_cutoff_tests


def _format_declines(trends: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Metric": trends["label"],
        "Sex": trends["sex_label"],
        "n": trends["n"].astype(int),
        "Change per decade": trends["estimate"].map(lambda v: f"{v:.4g}"),
        "95 % CI": [f"{lo:.4g} to {hi:.4g}" for lo, hi in zip(trends["ci_low"], trends["ci_high"], strict=True)],
        "Note": trends["error"],
    })


def _format_tests(tests: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Group": tests["group"],
        "n": tests["n"].astype(int),
        "Age strata": tests["strata"],
        "z": tests["z"].map(lambda v: f"{v:.2f}"),
        "p": tests["p_value"].map(lambda p: "< 0.001" if p < 0.001 else f"{p:.3f}"),
        "Note": tests["error"],
    })


def _declines(df: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    trends = age_trends(df)
    return decline_figure(trends), _format_declines(trends)


def _tests(df: pd.DataFrame) -> pd.DataFrame:
    return _format_tests(below_cutoff_tests(df))


def render_age_trends(df: pd.DataFrame) -> None:
    """Decline per decade (10·β₁ of metric ~ age, 95 % CI) for ALMI, TMV and TVI by sex, and the
    Cochran–Armitage test for the share below the EWGSOP2 ALMI cut-off across age strata."""
    fig, declines = per_view(_declines, df)  # computed once per view, not on every rerun
    st.plotly_chart(fig, width="stretch")
    st.dataframe(declines, hide_index=True, width="stretch")
    st.markdown("**Cochran–Armitage trend test** — share below the EWGSOP2 ALMI cut-off across the age "
                "strata 50–59 … 80+ (scores 1–4; N-denominator form, as R's `prop.trend.test`; z > 0: "
                "the share rises with age).")
    st.dataframe(per_view(_tests, df), hide_index=True, width="stretch")
