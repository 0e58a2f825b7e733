"""Agreement page: two metric sources (MSMV's engine, imported label maps or metrics, simulated values)
compared on the participants both measured: Pearson r, ICC(2,1) and Bland-Altman limits per structure and
for TMV and the P/A ratio, with a Bland-Altman plot of the chosen one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.access import sign_in_prompt
from dashboard.figures.concordance import ConcordanceOptions
from dashboard.figures.method_agreement import bland_altman_figure, format_agreement_table
from dashboard.ui import CohortView, cohort_view, table_height
from engine.cohort.agreement import AGREEMENT_METRICS, agreement_table
from store.metrics import BY_NAME

NO_PAIR = ("Method agreement needs two metric sources for the same participants. Run the engine on phantoms "
           "(`msmv demo --phantoms N`, then `msmv engine`), import another tool's label maps (`msmv "
           "import-labels`) or a metrics file (`msmv import-metrics --source NAME`).")


def _choose(view: CohortView) -> tuple[str, str, dict[str, str]] | None:
    titles = dict(data.options(view.version, root=view.root).metric_sources)  # default order first
    if len(titles) < 2:
        st.info(NO_PAIR, icon=":material/compare_arrows:")
        return None
    names = list(titles)
    left, right = st.columns(2)
    first = left.selectbox("First source", names, format_func=titles.get, key="agreement_first")
    others = [n for n in names if n != first]
    second = right.selectbox("Second source", others, format_func=titles.get, key="agreement_second")
    return first, second, titles


def render(view: CohortView) -> None:
    chosen = _choose(view)
    if chosen is None:
        return
    first, second, titles = chosen
    access = view.access
    pairs = data.source_pairs(view.version, view.filters, first, second, root=view.root,
                              min_cell=access.min_group_size)
    if len(pairs) < max(2, access.min_group_size):
        small = "" if access.participant_level else f" (at least {access.min_group_size} are needed here)"
        st.info(f"{len(pairs):,} participant(s) of this cohort have values from both {titles[first]} and "
                f"{titles[second]} at the same imaging visit{small}. {NO_PAIR}", icon=":material/compare_arrows:")
        return
    st.caption(f"{len(pairs):,} participants measured by both {titles[first]} and {titles[second]} at the same "
               "imaging visit (the earliest with results, or the MSMV_COHORT_VISIT setting's).")
    table = agreement_table(pairs)
    metric = st.selectbox("Bland–Altman plot of", list(AGREEMENT_METRICS), format_func=lambda m: BY_NAME[m].title,
                          key="agreement_metric")
    if access.participant_level:
        options = ConcordanceOptions()
    else:  # points are participants: a density with its small bins blank instead
        options = ConcordanceOptions(kind="density", by_sex=False, min_count=access.min_group_size)
        sign_in_prompt("see each participant as a point", access, key="agreement_login")
    row = table.set_index("metric", drop=False).loc[metric]
    if row["n"] < access.min_group_size:
        st.info(f"Fewer than {access.min_group_size} participants have {BY_NAME[metric].label} from both sources.")
    else:
        st.plotly_chart(bland_altman_figure(pairs, row, (first, second), options), width="stretch")
    st.subheader("All structures, TMV and P/A ratio")
    shown: pd.DataFrame = format_agreement_table(table, min_count=access.min_group_size)
    st.dataframe(shown, hide_index=True, width="stretch", height=table_height(len(shown)))
    st.caption(f"Differences are {second} minus {first}; 95 % limits of agreement: mean difference ± 1.96 SD. "
               "ICC(2,1): two-way random effects, absolute agreement, single measures (Shrout & Fleiss 1979), "
               "so a constant offset between the sources lowers it while r stays high. Volumes are both sides; "
               "a structure one source does not measure has no statistic.")


def main() -> None:
    view = cohort_view("Method agreement")
    if view is not None:
        render(view)


main()
