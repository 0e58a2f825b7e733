"""Concordance page (the study's Figure 3): TMV vs DEXA legs lean mass and TVI vs ALMI, r with CI and n."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.access import Access, current_access, sign_in_prompt
from dashboard.figures.concordance import KINDS, ConcordanceOptions, concordance_figure, format_concordance
from dashboard.ui import cohort_page
from engine.cohort.tables import CONCORDANCE_PAIRS, concordance


def render(df: pd.DataFrame, access: Access) -> None:
    if access.participant_level:
        left, right = st.columns(2)
        kind = left.radio("Display", list(KINDS), format_func=KINDS.get, horizontal=True, key="concordance_kind")
        by_sex = right.toggle("Colour by sex", value=True, key="concordance_by_sex", disabled=kind == "density")
    else:  # points are participants: a density with its small bins blank instead
        kind, by_sex = "density", False
        sign_in_prompt("see each participant as a point", access, key="concordance_login")
    options = ConcordanceOptions(kind=kind, by_sex=by_sex, min_count=access.min_group_size)
    for column, pair in zip(st.columns(len(CONCORDANCE_PAIRS)), CONCORDANCE_PAIRS, strict=True):
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


def main() -> None:
    df = cohort_page("Concordance")  # the cohort as the access policy lets this visitor see it
    if df is not None:
        render(df, current_access())


main()
