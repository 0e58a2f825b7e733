"""Concordance page: the study's Figure 3 (TMV vs DEXA legs lean mass, TVI vs ALMI: r with CI and n) and
AMRA's analysis of the same scans against MSMV's volumes (r, a regression line and Bland-Altman agreement)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.access import Access, current_access, sign_in_prompt
from dashboard.data import per_view
from dashboard.figures.concordance import (
    KINDS,
    POINTS_LIMIT,
    ConcordanceOptions,
    agreement_figure,
    concordance_figure,
    default_kind,
    format_agreement,
    format_concordance,
)
from dashboard.ui import cohort_page
from engine.cohort.tables import (
    AMRA_PAIRS,
    CONCORDANCE_PAIRS,
    DEXA_PAIRS,
    agreement,
    agreement_applies,
    concordance,
)


def _concordance_panel(df: pd.DataFrame, pair: str, options: ConcordanceOptions) -> tuple[go.Figure, pd.DataFrame]:
    """The pair's figure and r table (computed once per view and options: per_view caches them)."""
    x, y, _ = CONCORDANCE_PAIRS[pair]
    stats = concordance(df, x, y, confidence=options.confidence)  # once: the figure and the table show it
    return concordance_figure(df, pair, stats, options), format_concordance(stats, options.confidence)


def _agreement_panel(df: pd.DataFrame, pair: str, options: ConcordanceOptions) -> tuple[go.Figure, pd.DataFrame]:
    """The pair's Bland-Altman figure and its table (cached like :func:`_concordance_panel`)."""
    x, y, _ = CONCORDANCE_PAIRS[pair]
    table = agreement(df, x, y, confidence=options.confidence)
    return agreement_figure(df, pair, table, options), format_agreement(table, options.confidence)


def _amra_section(df: pd.DataFrame, options: ConcordanceOptions) -> None:
    st.subheader("AMRA: a second opinion on the same scans")
    st.caption("AMRA's thigh region is not MSMV's TMV region (TMV also includes the gluteal and core muscles), "
               "its anterior and posterior thigh are its own atlas's, and its volumes are fat-free: these plots "
               "compare the methods, they do not equate them.")
    amra = [CONCORDANCE_PAIRS[pair][0] for pair in AMRA_PAIRS]
    if not all(c in df.columns for c in amra) or not df[amra].notna().any().any():
        st.info("No AMRA values in this cohort: import UK Biobank fields 22403-22406 and 22409 (instance 2) "
                "with the phenotypes to compare MSMV with AMRA.", icon=":material/info:")
        return
    with_line = replace(options, fit_line=True)
    for pair in AMRA_PAIRS:
        left, right = st.columns(2)
        fig, table = per_view(_concordance_panel, df, pair, with_line)
        left.plotly_chart(fig, width="stretch")
        left.dataframe(table, hide_index=True, width="stretch")
        if agreement_applies(pair):  # volumes against volumes: a difference means something
            fig, table = per_view(_agreement_panel, df, pair, options)
            right.plotly_chart(fig, width="stretch")
            right.dataframe(table, hide_index=True, width="stretch")
    st.caption("Bland-Altman: differences are MSMV minus AMRA, against the mean of the two; the limits of "
               "agreement are the mean difference ± 1.96 SD of the differences.")


def render(df: pd.DataFrame, access: Access) -> None:
    if access.participant_level:
        left, right = st.columns(2)
        kind = left.radio("Display", list(KINDS), index=list(KINDS).index(default_kind(len(df))), format_func=KINDS.get,
                          horizontal=True, key="concordance_kind")
        by_sex = right.toggle("Colour by sex", value=True, key="concordance_by_sex", disabled=kind == "density")
    else:  # points are participants: a density with its small bins blank instead
        kind, by_sex = "density", False
        sign_in_prompt("see each participant as a point", access, key="concordance_login")
    options = ConcordanceOptions(kind=kind, by_sex=by_sex, min_count=access.min_group_size)
    for column, pair in zip(st.columns(len(DEXA_PAIRS)), DEXA_PAIRS, strict=True):
        x, y, _ = CONCORDANCE_PAIRS[pair]
        missing = [c for c in ("sex", x, y) if c not in df.columns]
        if missing:
            column.error(f"The cohort table lacks {missing}; rebuild the store.")
            continue
        fig, table = per_view(_concordance_panel, df, pair, options)
        column.plotly_chart(fig, width="stretch")
        column.dataframe(table, hide_index=True, width="stretch")
    blank = "" if access.participant_level else f" Density bins of fewer than {access.min_group_size} are blank."
    many = (f" Above {POINTS_LIMIT:,} participants the plots open as a density (counts binned on the server); "
            "choose Points to draw each participant." if access.participant_level and len(df) > POINTS_LIMIT else "")
    st.caption("Pearson r with Fisher-z 95 % CI; pairs with a missing value are left out." + blank + many)
    _amra_section(df, options)


def main() -> None:
    df = cohort_page("Concordance")  # the cohort as the access policy lets this visitor see it
    if df is not None:
        render(df, current_access())


main()
