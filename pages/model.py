"""Model: the active checkpoint's facts and its stored held-out evaluation (the study's Figure 2)."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.figures.model import (
    TMV_ROW,
    bias_figure,
    bias_frame,
    class_frame,
    dice_iou_bars,
    metric_heatmap,
    precision_recall_scatter,
    sidecar_facts,
)
from engine.errors import CheckpointError
from engine.segmentation.checkpoint import validation_note


def main() -> None:
    st.title("Model")
    try:
        path, sidecar = data.checkpoint()
    except (CheckpointError, FileNotFoundError) as err:
        st.warning(f"No usable segmentation checkpoint: {err}", icon=":material/model_training:")
        return
    st.caption(f"Active checkpoint `{path.name}` — set another with `MSMV_HOME/checkpoints/active` "
               "(a symlink to, or a file naming, a `.pt` with its `.json` sidecar).")
    st.info(validation_note(sidecar.get("validated_on", "")), icon=":material/verified:")
    st.dataframe(sidecar_facts(sidecar), hide_index=True, width="stretch")
    labels = {int(k): v for k, v in sidecar.get("labels", {}).items()}
    _volume_bias(sidecar.get("metrics", {}).get("volume_bias"), labels)
    evaluation = sidecar.get("metrics", {}).get("heldout")
    if not evaluation:
        st.info("This checkpoint stores no held-out evaluation; run `msmv evaluate --json` on held-out "
                "subjects and store it under `metrics.heldout` in the sidecar.")
        return
    df = class_frame(evaluation, labels)
    st.subheader("Per-class Dice and IoU")
    st.plotly_chart(dice_iou_bars(df), width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("Precision and recall")
        st.plotly_chart(precision_recall_scatter(df), width="stretch")
    with right:
        st.subheader("All metrics per class")
        st.plotly_chart(metric_heatmap(df), width="stretch")
    absent = evaluation.get("absent", [])
    if absent:
        st.caption("Absent from the ground truth (excluded from the means): "
                   + ", ".join(labels.get(int(a), str(a)) for a in absent))


def _volume_bias(volume_bias: dict | None, labels: dict[int, str]) -> None:
    """Measured against true volumes on held-out phantoms: TMV table and per-structure bias figure."""
    if not volume_bias:
        return
    df = bias_frame(volume_bias, labels)
    st.subheader("Volume bias against the truth")
    st.caption(f"{len(volume_bias.get('report_seeds', []))} held-out phantoms (seeds "
               f"{', '.join(map(str, volume_bias.get('report_seeds', [])))}) through "
               f"`{volume_bias.get('path', 'the whole path')}`; calibration fitted on other phantoms (seeds "
               f"{', '.join(map(str, volume_bias.get('fit_seeds', [])))}). Bias is (measured − true) / true; "
               "bars are 95 % limits of agreement; before = plain argmax, after = the stored post-processing.")
    tmv = df[df["name"] == TMV_ROW][["stage", "mean_pct", "loa_low_pct", "loa_high_pct", "dice"]]
    st.dataframe(tmv, hide_index=True, width="stretch", column_config={
        "stage": "TMV", "mean_pct": st.column_config.NumberColumn("Mean bias %", format="%+.2f"),
        "loa_low_pct": st.column_config.NumberColumn("95 % limit low", format="%+.2f"),
        "loa_high_pct": st.column_config.NumberColumn("95 % limit high", format="%+.2f"),
        "dice": st.column_config.NumberColumn("Mean Dice", format="%.3f")})
    st.plotly_chart(bias_figure(df), width="stretch")


main()
