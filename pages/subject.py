"""Subject page: one participant's muscles in 3-D, their muscle map against a same-sex ±5-year reference
group, orthogonal slices with the label overlay, a per-structure table and a one-page PDF report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.access import current_access, sign_in_prompt
from dashboard.figures.quality import scan_range_marks
from dashboard.figures.slices import AXES, CHANNELS, default_index, slice_figure, window
from dashboard.figures.subject import COLOUR_MODES, mesh_figure, muscle_map_figure
from dashboard.markup import literal
from dashboard.ui import SIMULATED_BANNER, published_snapshot, table_height
from engine.cohort.reference import (
    AGE_BAND_YEARS,
    DERIVED_METRICS,
    compare,
    ewgsop2_status,
    reference_group,
    structure_table,
    subject_row,
)
from engine.cohort.report import report_content, report_pdf
from engine.cohort.visits import VisitChange
from engine.segmentation.checkpoint import VALIDATION_KEY
from store.metrics import BY_NAME, column_title
from store.structures import COMPARTMENTS, STRUCTURES
from store.version import code_version
from store.vocabulary import EID_MAX_DIGITS, SEX_WORDS, parse_eid, source_title

_EID_KEY = "subject_eid"


def _structure_format() -> dict[str, st.column_config.Column]:
    return {
        "name": st.column_config.TextColumn("Structure"),
        "compartment": st.column_config.TextColumn("Compartment"),
        "left_cm3": st.column_config.NumberColumn("Left cm³", format="%.1f"),
        "right_cm3": st.column_config.NumberColumn("Right cm³", format="%.1f"),
        "asymmetry_pct": st.column_config.NumberColumn("L/R asymmetry %", format="%.1f"),
        "fat_fraction": st.column_config.NumberColumn("Fat fraction", format="%.3f"),
        "percentile": st.column_config.ProgressColumn("Percentile", min_value=0, max_value=100, format="%.0f"),
        "z_score": st.column_config.NumberColumn("z", format="%.2f"),
        "n_ref": st.column_config.NumberColumn("n ref", format="%d"),
        "scan_range": st.column_config.TextColumn("Scanned range", help="Structures reaching the first or last "
                                                  "slice may continue beyond the scan: their volume is measured "
                                                  "within the scanned range"),
    }


def _choose_eid(all_eids: pd.Series, processed: list[int]) -> int | None:
    """Participant ID from the text box, the processed list or the URL (``?eid=``), in that order."""
    if _EID_KEY not in st.session_state:
        # a URL value is cut before it reaches the widget: a participant ID is a few digits long
        first = str(processed[0]) if processed else str(int(all_eids.iloc[0]))
        st.session_state[_EID_KEY] = (st.query_params.get("eid") or "")[:2 * EID_MAX_DIGITS] or first
    left, right = st.columns([1, 2])

    def pick() -> None:
        if st.session_state.get("subject_pick"):
            st.session_state[_EID_KEY] = str(st.session_state["subject_pick"])

    right.selectbox("Processed imaging packages", [None, *processed], key="subject_pick", on_change=pick,
                    format_func=lambda e: "choose…" if e is None else str(e),
                    help="Participants whose Dixon package was segmented and measured by the engine")
    text = left.text_input("Participant ID (eid)", key=_EID_KEY).strip()
    eid = parse_eid(text)
    if eid is None:
        st.error(f"A participant ID is a whole number of at most {EID_MAX_DIGITS} digits; found "
                 f"“{literal(text, limit=40)}”.")
        return None
    if not (all_eids == eid).any():
        st.error(f"Participant {eid} is not in the store.")
        return None
    st.query_params["eid"] = str(eid)
    return eid


def _reference(df: pd.DataFrame, eid: int) -> tuple[int, str, pd.DataFrame, pd.DataFrame]:
    """Reference group size and description, the structure table and the derived metrics against the group
    (per_view computes them once per participant and snapshot: each scans the whole cohort)."""
    group = reference_group(df, eid)
    return (group.n, group.description, structure_table(df, eid),
            compare(df, eid, [c for c in DERIVED_METRICS if c in df.columns]))


def _summary(row: pd.Series, df: pd.DataFrame, eid: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    n_ref, description, table, derived = data.per_view(_reference, df, eid)
    sex = SEX_WORDS.get(int(row["sex"]), "?").capitalize() if pd.notna(row.get("sex")) else "unknown"
    c = st.columns(4)
    c[0].metric("Sex · age", f"{sex} · {row['age']:.0f}" if pd.notna(row.get("age")) else sex)
    c[1].metric("Reference group", f"{n_ref:,}", help=f"{description}: same sex, age ±{AGE_BAND_YEARS:g} "
                "years, the participant excluded")
    tmv = derived.set_index("column").loc["tmv_cm3"] if "tmv_cm3" in set(derived["column"]) else None
    tmv_metric = BY_NAME["tmv_cm3"]
    c[2].metric(tmv_metric.label, f"{row['tmv_cm3']:,.0f} {tmv_metric.unit}" if pd.notna(row.get("tmv_cm3")) else "–",
                delta=None if tmv is None or pd.isna(tmv["percentile"]) else f"{tmv['percentile']:.0f}th percentile",
                delta_color="off")
    c[3].metric("EWGSOP2", ewgsop2_status(row).split(" (")[0].capitalize(), help=ewgsop2_status(row))
    st.caption(f"Reference group: {description}.")
    return table, derived, description


def _compartments(row: pd.Series, table: pd.DataFrame) -> None:
    """A source that labels whole thigh compartments (TotalSegmentator): their volumes and the P/A ratio,
    since its muscles, and so TMV, are not measured one by one."""
    st.subheader("Thigh compartments")
    st.caption("This source labels the thigh compartments as whole regions, not their muscles: the compartment "
               "volumes and the P/A ratio come from those regions; its individual thigh muscles and TMV are not "
               "measured.")
    c = st.columns(4)
    for col, name in zip(c[:3], ("anterior_cm3", "medial_cm3", "posterior_cm3"), strict=True):
        col.metric(BY_NAME[name].label, f"{row[name]:,.0f} {BY_NAME[name].unit}" if pd.notna(row.get(name)) else "–")
    c[3].metric(BY_NAME["pa_ratio"].label, f"{row['pa_ratio']:.3f}" if pd.notna(row.get("pa_ratio")) else "–")
    columns = {"compartment": st.column_config.TextColumn("Compartment"),
               "left_cm3": st.column_config.NumberColumn("Left cm³", format="%.1f"),
               "right_cm3": st.column_config.NumberColumn("Right cm³", format="%.1f"),
               "volume_cm3": st.column_config.NumberColumn("Total cm³", format="%.1f")}
    st.dataframe(table[list(columns)], hide_index=True, width="stretch", column_config=columns,
                 key="subject_compartments_table")


def _checkpoint_note(artifacts: dict[str, str]) -> None:
    """What the checkpoint that segmented this participant was validated on (its label map's header says)."""
    if "labels" not in artifacts:
        return
    note = data.volume(artifacts["labels"]).meta.get(VALIDATION_KEY)
    if note:
        st.info(f"{note} The volumes below come from its label map.", icon=":material/verified:")


@st.fragment  # changing the colouring reruns only this part
def _views(table: pd.DataFrame, artifacts: dict[str, str]) -> None:
    mode = st.radio("Colour by", list(COLOUR_MODES), format_func=COLOUR_MODES.get, horizontal=True,
                    key="subject_colour")
    has_3d = "meshes" in artifacts
    if has_3d:
        view3d, map2d = st.columns([3, 2])
        scene = data.meshes(artifacts["meshes"])
        shown = view3d.multiselect("Compartments", list(COMPARTMENTS), default=[c for c in COMPARTMENTS if c != "bone"],
                                   key="subject_compartments")
        hidden = {s.label for s in STRUCTURES if s.compartment not in shown}
        view3d.plotly_chart(mesh_figure(scene, table, mode, hidden=hidden), width="stretch", key="subject_3d")
        view3d.caption(f"{scene.n_faces:,} faces · {len(scene)} surfaces · midline from {scene.midline_source}; "
                       "click a legend entry to show or hide a structure.")
    else:
        map2d = st.container()
        st.info("No 3-D surfaces for this participant (no processed imaging): the muscle map is drawn as a "
                "schematic.", icon=":material/view_in_ar_off:")
    map2d.plotly_chart(muscle_map_figure(table, mode), width="stretch", key="subject_map")


@st.fragment  # moving a slider redraws the slices, not the 3-D view
def _slices(artifacts: dict[str, str]) -> None:
    channels = [c for c in CHANNELS if c in artifacts]
    if "labels" not in artifacts or not channels:
        return
    st.subheader("Orthogonal slices")
    a, b = st.columns([2, 1])
    channel = a.radio("Image", channels, format_func=CHANNELS.get, horizontal=True, key="subject_channel")
    opacity = b.slider("Label overlay opacity", 0.0, 1.0, 0.35, 0.05, key="subject_opacity")
    image = data.volume(artifacts[channel])
    labels = data.volume(artifacts["labels"])
    win = window(image, channel)
    for col, axis in zip(st.columns(3), AXES, strict=True):
        n = image.shape[AXES[axis]]
        idx = col.slider(axis.capitalize(), 0, n - 1, default_index(labels, axis), key=f"subject_slice_{axis}")
        col.plotly_chart(slice_figure(image, labels, axis, idx, channel=channel, opacity=opacity, win=win),
                         width="stretch", key=f"subject_slice_fig_{axis}")


def _tables(row: pd.Series, table: pd.DataFrame, derived: pd.DataFrame, group: str, simulated: bool) -> None:
    st.subheader("Structures")
    columns = _structure_format()
    st.dataframe(table[list(columns)], hide_index=True, width="stretch", column_config=columns,
                 height=table_height(len(table)))
    st.subheader("Derived metrics against the reference group")
    shown = derived.assign(metric=derived["column"].map(column_title))
    st.dataframe(shown[["metric", "value", "percentile", "z_score", "n_ref", "ref_mean", "ref_sd"]], hide_index=True,
                 width="stretch", column_config={
                     "metric": "Metric", "value": st.column_config.NumberColumn("Value", format="%.3g"),
                     "percentile": st.column_config.NumberColumn("Percentile", format="%.0f"),
                     "z_score": st.column_config.NumberColumn("z", format="%.2f"),
                     "n_ref": st.column_config.NumberColumn("n ref", format="%d"),
                     "ref_mean": st.column_config.NumberColumn("Group mean", format="%.3g"),
                     "ref_sd": st.column_config.NumberColumn("Group SD", format="%.3g")})
    content = report_content(row, table, derived, group_description=group, simulated=simulated)
    st.download_button("Download one-page report (PDF)", data=lambda: report_pdf(content,
                       software_version=code_version()), file_name=f"msmv_report_{int(row['eid'])}.pdf",
                       mime="application/pdf", icon=":material/picture_as_pdf:", on_click="ignore")


def _visits(change: VisitChange | None) -> None:
    """Both imaging visits side by side, with the change per structure (per year when dated)."""
    if change is None:
        return
    st.subheader("Imaging visits")
    st.caption(f"Instance {change.first} to instance {change.last}: {change.interval_text()}. The views above "
               "show the cohort's visit; this table shows each structure at both (left + right).")
    per_year = change.years is not None
    columns = {
        "name": st.column_config.TextColumn("Structure"),
        "compartment": st.column_config.TextColumn("Compartment"),
        "first_cm3": st.column_config.NumberColumn(f"Visit {change.first} cm³", format="%.1f"),
        "last_cm3": st.column_config.NumberColumn(f"Visit {change.last} cm³", format="%.1f"),
        "change_cm3": st.column_config.NumberColumn("Change cm³", format="%+.1f"),
        "change_pct": st.column_config.NumberColumn("Change %", format="%+.1f"),
        **({"change_per_year_cm3": st.column_config.NumberColumn("Change cm³/year", format="%+.1f")}
           if per_year else {}),
    }
    st.dataframe(change.table[list(columns)], hide_index=True, width="stretch", column_config=columns,
                 height=table_height(len(change.table)), key="subject_visits")


def main() -> None:
    st.title("Subject")
    if not current_access().participant_level:
        sign_in_prompt("see a participant's record and report")
        return
    snapshot = published_snapshot()
    if snapshot is None:
        return
    root, version = snapshot
    df = data.participants(version, None, root=root)
    if df.empty:
        st.info("The store holds no participant yet.", icon=":material/person_off:")
        return
    eid = _choose_eid(df["eid"], data.processed_eids(version, root=root))
    if eid is None:
        return
    row = subject_row(df, eid)
    simulated = bool(row.get("simulated")) if pd.notna(row.get("simulated")) else False
    if simulated:
        st.warning(SIMULATED_BANNER, icon=":material/science:")
    table, derived, group = _summary(row, df, eid)
    shown_visit = row.get("imaging_instance")
    edge = data.edge_labels(version, eid, instance=None if pd.isna(shown_visit) else int(shown_visit), root=root)
    table = table.assign(scan_range=scan_range_marks(table["label"], edge))
    source = row.get("metric_source")  # the views show the segmentation behind the values on display
    source = None if pd.isna(source) else str(source)
    if source is not None:
        st.caption(f"MRI values from {source_title(source, str(row.get('metric_source_kind')))}")
    artifacts = data.artifacts(version, eid, instance=None if pd.isna(shown_visit) else int(shown_visit),
                               source=source, root=root)
    if pd.notna(row.get("compartment_level")) and bool(row["compartment_level"]):
        _compartments(row, data.compartment_volumes(version, eid, instance=int(shown_visit), source=source, root=root))
    _checkpoint_note(artifacts)
    _views(table, artifacts)
    _slices(artifacts)
    _tables(row, table, derived, group, simulated)
    _visits(data.visits(version, eid, root=root))


main()
