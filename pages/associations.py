"""Associations page (the study's Figure 5 and Table 2): high vs low tertile ORs of a muscle metric."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.access import Access, current_access
from dashboard.data import per_view
from dashboard.figures.associations import forest_figure, format_forest
from dashboard.ui import cohort_page
from engine.cohort.tables import (
    CI_METHODS,
    COVARIATES,
    DEFAULT_COVARIATES,
    OUTCOMES,
    exposure_columns,
    exposure_options,
    forest_table,
    sex_stratified,
)
from engine.errors import StatsError
from store.export import suppress_small_counts


def _choices() -> tuple[str, list[str], list[str], str]:
    metrics = exposure_options()
    metric = st.selectbox("Metric (exposure)", list(metrics), format_func=metrics.get, key="assoc_metric")
    left, right = st.columns(2)
    outcomes = left.multiselect("Outcomes", list(OUTCOMES), default=list(OUTCOMES), format_func=OUTCOMES.get,
                                key="assoc_outcomes")
    covariates = right.multiselect("Adjust for", list(COVARIATES), default=list(DEFAULT_COVARIATES),
                                   format_func=COVARIATES.get, key="assoc_covariates")
    ci = st.radio("Confidence interval", list(CI_METHODS), format_func=CI_METHODS.get, horizontal=True,
                  key="assoc_ci")
    return metric, outcomes, covariates, ci


def _forests(df: pd.DataFrame, metric: str, outcomes: tuple[str, ...], covariates: tuple[str, ...],
             ci: str) -> tuple[pd.DataFrame, pd.DataFrame, go.Figure, go.Figure]:
    """Both forest tables and their figures (per_view caches them per view and choices)."""
    # Only the columns the models read.
    data = df[[c for c in dict.fromkeys(["sex", *outcomes, *covariates, *exposure_columns(metric)]) if c in df.columns]]
    table = forest_table(data, metric, outcomes, covariates, ci=ci)
    by_sex = sex_stratified(data, metric, outcomes, covariates, ci=ci)
    label = exposure_options()[metric]
    return (table, by_sex, forest_figure(table, title=f"{label}: high vs low tertile"),
            forest_figure(by_sex, title=f"{label}: men and women"))


def render(df: pd.DataFrame, access: Access) -> None:
    metric, outcomes, covariates, ci = _choices()
    if not outcomes:
        st.info("Pick at least one outcome.")
        return
    label = exposure_options()[metric]
    try:
        with st.spinner("Fitting the logistic models…"):
            table, by_sex, forest, forest_by_sex = per_view(_forests, df, metric, tuple(outcomes), tuple(covariates), ci)
    except (StatsError, ValueError) as err:
        st.error(f"Cannot fit the models for {label}: {err}")
        return
    c1, c2 = table["cut_low"].iloc[0], table["cut_high"].iloc[0]
    a, b, c = st.columns(3)
    a.metric("Low tertile", f"< {c1:.4g}")
    b.metric("Middle tertile", f"{c1:.4g} – {c2:.4g}")
    c.metric("High tertile", f"> {c2:.4g}")
    st.plotly_chart(forest, width="stretch")
    st.dataframe(format_forest(table, min_count=access.min_group_size), hide_index=True, width="stretch")
    published = table if access.participant_level else suppress_small_counts(
        table, ["events_high", "events_low"], threshold=access.min_group_size, dependent=[])
    st.download_button("Download table (CSV)", published.to_csv(index=False).encode(), mime="text/csv",
                       file_name=f"msmv_forest_{metric.replace(':', '_')}.csv", key="assoc_csv")
    st.caption(f"Logistic regression, high vs low tertile (middle excluded); {CI_METHODS[ci].lower()} 95 % CI; "
               "Wald p. Events: high/low tertile.")

    st.subheader("By sex")
    st.plotly_chart(forest_by_sex, width="stretch")
    st.dataframe(format_forest(by_sex, min_count=access.min_group_size), hide_index=True, width="stretch")
    inter = by_sex.drop_duplicates("outcome")[["outcome_label", "interaction_p", "interaction_error"]]
    st.dataframe(inter.rename(columns={"outcome_label": "Outcome", "interaction_p": "Sex × exposure interaction p",
                                       "interaction_error": "Note"}), hide_index=True, width="stretch")


def main() -> None:
    df = cohort_page("Associations")  # the cohort as the access policy lets this visitor see it
    if df is not None:
        render(df, current_access())


main()
