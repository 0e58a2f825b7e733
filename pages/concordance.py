"""Concordance page: the study's Figure 3 (TMV vs DEXA legs lean mass, TVI vs ALMI: r with CI and n) and
AMRA's analysis of the same scans against MSMV's volumes (r, a regression line and Bland-Altman agreement)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dashboard.access import Access, current_access, sign_in_prompt
from dashboard.figures.concordance import (
    KINDS,
    ConcordanceOptions,
    agreement_figure,
    concordance_figure,
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
        x, y, _ = CONCORDANCE_PAIRS[pair]
        left, right = st.columns(2)
        stats = concordance(df, x, y, confidence=options.confidence)
        left.plotly_chart(concordance_figure(df, pair, stats, with_line), width="stretch")
        left.dataframe(format_concordance(stats, options.confidence), hide_index=True, width="stretch")
        if agreement_applies(pair):  # volumes against volumes: a difference means something
            table = agreement(df, x, y, confidence=options.confidence)
            right.plotly_chart(agreement_figure(df, pair, table, options), width="stretch")
            right.dataframe(format_agreement(table, options.confidence), hide_index=True, width="stretch")
    st.caption("Bland-Altman: differences are MSMV minus AMRA, against the mean of the two; the limits of "
               "agreement are the mean difference ± 1.96 SD of the differences.")


def render(df: pd.DataFrame, access: Access) -> None:
    if access.participant_level:
        left, right = st.columns(2)
        kind = left.radio("Display", list(KINDS), format_func=KINDS.get, horizontal=True, key="concordance_kind")
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
        stats = concordance(df, x, y, confidence=options.confidence)  # once: the figure and the table show it
        column.plotly_chart(concordance_figure(df, pair, stats, options), width="stretch")
        column.dataframe(format_concordance(stats, options.confidence), hide_index=True, width="stretch")
    blank = "" if access.participant_level else f" Density bins of fewer than {access.min_group_size} are blank."
    st.caption("Pearson r with Fisher-z 95 % CI; pairs with a missing value are left out." + blank)
    _amra_section(df, options)


def main() -> None:
    df = cohort_page("Concordance")  # the cohort as the access policy lets this visitor see it
    if df is not None:
        render(df, current_access())


main()
