"""Model: the active checkpoint's facts and its stored held-out evaluation (the study's Figure 2)."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.figures.model import (
    class_frame,
    dice_iou_bars,
    metric_heatmap,
    precision_recall_scatter,
    sidecar_facts,
)
from engine.errors import CheckpointError


def main() -> None:
    st.title("Model")
    try:
        path, sidecar = data.checkpoint()
    except (CheckpointError, FileNotFoundError) as err:
        st.warning(f"No usable segmentation checkpoint: {err}", icon=":material/model_training:")
        return
    st.caption(f"Active checkpoint `{path.name}` — set another with `MSMV_HOME/checkpoints/active` "
               "(a symlink to, or a file naming, a `.pt` with its `.json` sidecar).")
    st.dataframe(sidecar_facts(sidecar), hide_index=True, width="stretch")
    evaluation = sidecar.get("metrics", {}).get("heldout")
    if not evaluation:
        st.info("This checkpoint stores no held-out evaluation; run `msmv evaluate --json` on held-out "
                "subjects and store it under `metrics.heldout` in the sidecar.")
        return
    labels = {int(k): v for k, v in sidecar.get("labels", {}).items()}
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


main()
