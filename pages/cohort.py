"""Cohort page: Table 1 by sex, the study's Figure 4 and the share below the EWGSOP2 ALMI cut-off."""

from __future__ import annotations

import importlib.util

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.data import per_view
from dashboard.figures.cohort import below_cutoff_chart, figure4
from dashboard.ui import P_VALUE_FORMAT, cohort_page, table_height
from engine.cohort.tables import below_cutoff_trend, table1
from store.metrics import LOW_ALMI_KG_M2
from store.vocabulary import FEMALE, MALE


def _figure4(df: pd.DataFrame) -> list[go.Figure]:
    return figure4(df, almi_cutoffs=LOW_ALMI_KG_M2)


def _below_cutoff(df: pd.DataFrame) -> go.Figure:
    return below_cutoff_chart(below_cutoff_trend(df))


def render(df: pd.DataFrame) -> None:
    st.subheader("Table 1 · characteristics by sex")
    t1 = per_view(table1, df)
    st.dataframe(t1, hide_index=True, width="stretch", height=table_height(len(t1)), column_config=P_VALUE_FORMAT)

    st.subheader("Figure 4 · muscle mass by age and sex")
    men, women = LOW_ALMI_KG_M2[MALE], LOW_ALMI_KG_M2[FEMALE]
    st.caption("Boxes: median and IQR; whiskers 1.5 × IQR (Tukey); dots: outliers; n under each box. Dashed "
               f"lines: EWGSOP2 low-muscle-mass cut-offs (ALMI < {men:g} kg/m² men, < {women:g} kg/m² women).")
    for column, fig in zip(st.columns(3), per_view(_figure4, df), strict=True):
        column.plotly_chart(fig, width="stretch")

    st.subheader("Below the EWGSOP2 ALMI cut-off, by age stratum")
    st.plotly_chart(per_view(_below_cutoff, df), width="stretch")

    if importlib.util.find_spec("dashboard.age_trends") is not None:
        from dashboard.age_trends import render_age_trends

        st.subheader("Age trends")
        render_age_trends(df)


def main() -> None:
    df = cohort_page("Cohort")
    if df is not None:
        render(df)


main()
