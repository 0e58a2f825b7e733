"""Cohort page: Table 1 by sex, the study's Figure 4 and the share below the EWGSOP2 ALMI cut-off."""

from __future__ import annotations

import importlib.util

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.access import Access, sign_in_prompt
from dashboard.data import per_view
from dashboard.figures.cohort import BoxPlotOptions, below_cutoff_chart, figure4
from dashboard.ui import P_VALUE_FORMAT, cohort_view, table_height
from engine.cohort.tables import below_cutoff_trend, table1
from store.metrics import LOW_ALMI_KG_M2
from store.vocabulary import FEMALE, MALE


def _below_cutoff(df: pd.DataFrame) -> go.Figure:
    return below_cutoff_chart(below_cutoff_trend(df))


def render(df: pd.DataFrame, access: Access) -> None:
    # per_view caches by function name and view; the view key holds access.min_group_size, so these
    # closures over the access level never share a cache entry across levels.
    def _table1(frame: pd.DataFrame) -> pd.DataFrame:
        return table1(frame, min_count=access.min_group_size)

    def _figure4(frame: pd.DataFrame) -> list[go.Figure]:
        return figure4(frame, almi_cutoffs=LOW_ALMI_KG_M2,
                       options=BoxPlotOptions(show_outliers=access.participant_level))

    st.subheader("Table 1 · characteristics by sex")
    t1 = per_view(_table1, df)
    st.dataframe(t1, hide_index=True, width="stretch", height=table_height(len(t1)), column_config=P_VALUE_FORMAT)

    st.subheader("Figure 4 · muscle mass by age and sex")
    men, women = LOW_ALMI_KG_M2[MALE], LOW_ALMI_KG_M2[FEMALE]
    dots = "dots: outliers" if access.participant_level else "outliers not drawn"
    st.caption(f"Boxes: median and IQR; whiskers 1.5 × IQR (Tukey); {dots}; n under each box. Dashed "
               f"lines: EWGSOP2 low-muscle-mass cut-offs (ALMI < {men:g} kg/m² men, < {women:g} kg/m² women).")
    for column, fig in zip(st.columns(3), per_view(_figure4, df), strict=True):
        column.plotly_chart(fig, width="stretch")
    if not access.participant_level:
        sign_in_prompt(f"see outlier points and groups of fewer than {access.min_group_size} participants",
                       access, key="cohort_login")

    st.subheader("Below the EWGSOP2 ALMI cut-off, by age stratum")
    st.plotly_chart(per_view(_below_cutoff, df), width="stretch")

    if importlib.util.find_spec("dashboard.age_trends") is not None:
        from dashboard.age_trends import render_age_trends

        st.subheader("Age trends")
        render_age_trends(df)


def main() -> None:
    view = cohort_view("Cohort")
    if view is not None:
        render(view.df, view.access)


main()
