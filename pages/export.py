"""Export page: the sidebar's cohort as CSV or Parquet (chosen columns, data dictionary, JSON sidecar),
and aggregate tables with UK Biobank's small-count suppression for public material.

Participant-level export is offered as :mod:`dashboard.access` decides; aggregate tables stay available.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import data
from dashboard.access import Access, sign_in_prompt
from dashboard.ui import cohort_view
from store.export import (
    DEFAULT_EXPORT_COLUMNS,
    SMALL_COUNT_THRESHOLD,
    aggregate,
    suppress_small_counts,
)
from store.filters import CohortFilter
from store.metrics import COLUMNS

FORMATS = {"csv": "CSV", "parquet": "Parquet"}
GROUP_COLUMNS = ("sex", "age_stratum", "centre", "activity_group", "weak_grip", "low_muscle_mass", "sarcopenia",
                 "probable_sarcopenia", "falls", "died", "source")  # fmt: skip
DEFAULT_GROUPS = ["sex", "age_stratum"]
DEFAULT_VALUES = ["tmv_cm3", "almi"]
PREVIEW_ROWS = 20


def _participant_export(flt: CohortFilter, n: int, root: str, version: int, access: Access) -> None:
    st.subheader("Participant-level export")
    if not access.participant_level:
        sign_in_prompt("export participant-level rows; aggregate tables below stay available", access)
        return
    left, right = st.columns([1, 3])
    fmt = left.radio("Format", list(FORMATS), format_func=FORMATS.get, key="export_format")
    cols = right.multiselect("Columns", list(COLUMNS), default=list(DEFAULT_EXPORT_COLUMNS), key="export_columns",
                             help="eid is always included; see the data dictionary below for each column")
    preview = data.participants(version, flt, ["eid", *[c for c in cols if c != "eid"]], root=root)
    st.dataframe(preview.head(PREVIEW_ROWS), hide_index=True, width="stretch")
    st.caption(f"First {min(PREVIEW_ROWS, n)} of {n:,} rows. The download is a zip with the data, its data "
               "dictionary (column, unit, definition, source field) and a JSON sidecar (filters, row count, "
               "store and software versions).")

    def bundle() -> bytes:  # built only when the button is pressed
        return data.export_bundle(version, fmt, flt, cols or None, root=root)

    st.download_button(f"Download {n:,} rows ({FORMATS[fmt]} + dictionary + sidecar)", data=bundle,
                       file_name=f"msmv_cohort_{fmt}.zip", mime="application/zip", on_click="ignore",
                       icon=":material/download:", type="primary")
    with st.expander("Data dictionary of the chosen columns"):
        dictionary = data.data_dictionary(version, root=root).set_index("column")  # the store's own mapping
        st.dataframe(dictionary.loc[[c for c in ["eid", *cols] if c in dictionary.index]].reset_index()
                     .drop_duplicates("column"), hide_index=True, width="stretch")


def _suppression(column: DeltaGenerator, access: Access) -> tuple[bool, int]:
    """(suppress?, threshold): the visitor's choice, or fixed on for anyone without participant-level access."""
    if not access.participant_level:
        column.caption(f"Small-count suppression: counts below {access.min_group_size}, always on when not "
                       "signed in.")
        return True, access.min_group_size
    threshold = column.number_input("Suppress counts below", min_value=1, max_value=100,
                                    value=SMALL_COUNT_THRESHOLD, step=1, key="export_threshold")
    suppress = column.toggle("Small-count suppression", value=True, key="export_suppress",
                             help="UK Biobank asks that published tables show no cell of fewer than "
                                  f"{SMALL_COUNT_THRESHOLD} participants")
    return suppress, int(threshold)


def _aggregate_tables(df: pd.DataFrame, access: Access) -> None:
    st.subheader("Aggregate table")
    a, b, c = st.columns([2, 2, 1])
    groups = a.multiselect("Group by", [g for g in GROUP_COLUMNS if g in df.columns], default=DEFAULT_GROUPS,
                           key="export_groups")
    numeric = [col for col in df.columns if col != "eid" and pd.api.types.is_numeric_dtype(df[col])
               and not pd.api.types.is_bool_dtype(df[col])]
    values = b.multiselect("Means of", numeric, default=[v for v in DEFAULT_VALUES if v in numeric],
                           key="export_values")
    suppress, threshold = _suppression(c, access)
    if not groups:
        st.info("Choose at least one column to group by.", icon=":material/table_rows:")
        return
    table = aggregate(df, groups, values)
    if suppress:
        table = suppress_small_counts(table, threshold=int(threshold))
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download aggregate table (CSV)", data=table.to_csv(index=False).encode("utf-8"),
                       file_name="msmv_aggregate.csv", mime="text/csv", on_click="ignore", icon=":material/table:")
    if suppress:
        st.caption(f"Counts below {int(threshold)} are shown as \"<{int(threshold)}\" and the means of those groups "
                   "are left empty.")


def main() -> None:
    view = cohort_view("Export")
    if view is None:
        return
    _participant_export(view.filters, len(view.df), view.root, view.version, view.access)
    _aggregate_tables(view.df, view.access)


main()
