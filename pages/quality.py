"""Quality page: QC flags of the imaged subjects, how many each check raised, who is flagged and why,
and the distributions the thresholds cut (engine/quality/checks.py declares them)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.access import Access, current_access, sign_in_prompt
from dashboard.figures.quality import aggregate_counts, distribution_figure, flag_counts_figure, flagged_table
from dashboard.ui import published_snapshot, table_height
from engine.quality import QualityReport
from engine.quality.checks import ASYMMETRY_PCT_MAX, CHECKS, LOW_CONFIDENCE_SHARE_MAX, VOLUME_Z_MAX
from store.export import SMALL_COUNT_THRESHOLD


def _checks_table() -> pd.DataFrame:
    return pd.DataFrame([(c.title, c.code, "" if c.threshold is None else f"{c.threshold:g} {c.unit}".strip(), c.why)
                         for c in CHECKS], columns=["check", "code", "threshold", "what raises it"])


def _flagged(report: QualityReport) -> None:
    st.subheader("Flagged subjects")
    table = flagged_table(report.flagged, report.flags)
    if table.empty:
        st.success("No imaged subject raises a QC flag.", icon=":material/check_circle:")
        return
    st.caption("Sortable: click a column header. The link opens the subject's page.")
    st.dataframe(table, hide_index=True, width="stretch", height=table_height(min(len(table), 15)),
                 key="quality_flagged", column_config={
                     "eid": st.column_config.NumberColumn("eid", format="%d"),
                     "subject": st.column_config.LinkColumn("Subject page", display_text="open"),
                     "flags": st.column_config.NumberColumn("Flags", format="%d"),
                     "checks": st.column_config.TextColumn("Checks"),
                     "reasons": st.column_config.TextColumn("Reasons (with the numbers)", width="large"),
                     "low_confidence_share": st.column_config.NumberColumn("Low-confidence share", format="%.3f"),
                     "max_abs_z": st.column_config.NumberColumn("Largest |z|", format="%.1f"),
                     "max_asymmetry_pct": st.column_config.NumberColumn("Largest L/R asymmetry %", format="%.0f"),
                 })


def _distributions(report: QualityReport) -> None:
    st.subheader("What the thresholds cut")
    s = report.subjects
    a, b, c = st.columns(3)
    share = s["low_confidence_share"].dropna()
    a.plotly_chart(distribution_figure(share, threshold=LOW_CONFIDENCE_SHARE_MAX, title="Segmentation confidence",
                                       x_title="share of body voxels with low confidence"), width="stretch",
                   key="quality_confidence")
    if share.empty:
        a.caption("No subject segmented since confidence is recorded (imported label maps have none).")
    b.plotly_chart(distribution_figure(s["max_abs_z"], threshold=VOLUME_Z_MAX, title="Largest structure |z|",
                                       x_title="largest |z| of a structure volume"), width="stretch",
                   key="quality_z")
    c.plotly_chart(distribution_figure(s["max_asymmetry_pct"], threshold=ASYMMETRY_PCT_MAX,
                                       title="Largest structure L/R asymmetry", x_title="%"), width="stretch",
                   key="quality_asymmetry")


def render(report: QualityReport, access: Access) -> None:
    n, flagged = len(report.subjects), len(report.flagged)
    c = st.columns(3)
    c[0].metric("Imaged subjects", f"{n:,}")
    shown = f"{flagged:,}" if access.participant_level or flagged == 0 or flagged >= SMALL_COUNT_THRESHOLD \
        else f"< {SMALL_COUNT_THRESHOLD}"
    c[1].metric("Flagged", shown)
    c[2].metric("Share flagged", f"{flagged / n:.1%}" if n and access.participant_level else "–")
    counts = report.counts()
    left, right = st.columns([3, 2])
    if access.participant_level:
        left.plotly_chart(flag_counts_figure(counts), width="stretch", key="quality_counts")
        right.dataframe(counts[["check", "flags", "subjects"]], hide_index=True, width="stretch")
    else:
        right.dataframe(aggregate_counts(counts), hide_index=True, width="stretch")
    with st.expander("The checks and their thresholds"):
        st.dataframe(_checks_table(), hide_index=True, width="stretch")
    if not access.participant_level:
        sign_in_prompt("see the flagged subjects and the distributions behind the flags", access, key="quality_login")
        return
    _flagged(report)
    _distributions(report)


def main() -> None:
    st.title("Quality")
    snapshot = published_snapshot()
    if snapshot is None:
        return
    root, version = snapshot
    report = data.quality(version, root=root)
    if report.subjects.empty:
        st.info("No imaged subject in the store yet: QC flags are computed from stored imaging results.",
                icon=":material/fact_check:")
        return
    st.caption("Flags are computed from the stored results (no re-segmentation); the sidebar's “Exclude "
               "QC-flagged subjects” leaves these subjects out of every analysis page and export.")
    render(report, current_access())


main()
