"""Model page figures: the study's Figure 2 for a checkpoint's stored evaluation, and its facts.

Input is the evaluation dict ``msmv evaluate --json`` writes (and a checkpoint sidecar stores under
``metrics["heldout"]``): ``{"classes": {"<label>": {dice, iou, precision, recall}}, "mean_dice", ...}``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall")
COLUMNS: tuple[str, ...] = ("label", "name", *METRICS)


def class_frame(evaluation: dict[str, Any], labels: dict[int, str]) -> pd.DataFrame:
    """One row per class present in the truth: label, name, Dice, IoU, precision, recall (label order)."""
    rows = []
    for key, m in evaluation.get("classes", {}).items():
        if not m.get("present", True) or m.get("dice") is None:
            continue  # absent from the truth: excluded, as from the means
        label = int(key)
        rows.append({"label": label, "name": labels.get(label, f"label {label}"),
                     **{k: m.get(k) for k in METRICS}})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.sort_values("label", ignore_index=True).astype({k: float for k in METRICS})


def dice_iou_bars(df: pd.DataFrame) -> go.Figure:
    """Per-class Dice and IoU bars with dashed lines at their means (Figure 2a)."""
    fig = go.Figure()
    for metric, colour in (("dice", "#1f77b4"), ("iou", "#ff7f0e")):
        fig.add_bar(x=df["name"], y=df[metric], name=metric.upper() if metric == "iou" else "Dice",
                    marker_color=colour, hovertemplate="%{x}: %{y:.3f}<extra>" + metric + "</extra>")
        if len(df):
            mean = float(df[metric].mean())
            fig.add_hline(y=mean, line_dash="dash", line_color=colour,
                          annotation_text=f"mean {metric.upper() if metric == 'iou' else 'Dice'} {mean:.3f}",
                          annotation_position="top left" if metric == "dice" else "bottom left")
    fig.update_layout(barmode="group", yaxis={"title": "score", "range": [0, 1.05]},
                      xaxis={"tickangle": -45}, legend={"orientation": "h", "y": 1.12}, height=460,
                      margin={"t": 60, "b": 140})
    return fig


def precision_recall_scatter(df: pd.DataFrame) -> go.Figure:
    """Precision against recall per class, coloured by Dice (Figure 2b)."""
    fig = go.Figure(go.Scatter(
        x=df["recall"], y=df["precision"], mode="markers+text", text=df["label"].astype(str),
        textposition="top center", customdata=df[["name", "dice"]].to_numpy(),
        marker={"size": 11, "color": df["dice"], "colorscale": "Viridis", "cmin": 0, "cmax": 1,
                "colorbar": {"title": "Dice"}, "line": {"width": 0.5, "color": "#333"}},
        hovertemplate="%{customdata[0]}<br>recall %{x:.3f}<br>precision %{y:.3f}<br>Dice %{customdata[1]:.3f}"
                      "<extra></extra>",
    ))
    lo = float(min(df["recall"].min(), df["precision"].min(), 0.5)) if len(df) else 0.0
    fig.update_layout(xaxis={"title": "recall", "range": [lo - 0.03, 1.02]},
                      yaxis={"title": "precision", "range": [lo - 0.03, 1.02]}, height=460)
    return fig


def metric_heatmap(df: pd.DataFrame) -> go.Figure:
    """Classes × metrics heat map with the values written in (Figure 2c)."""
    z = df[list(METRICS)].to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=[m.upper() if m == "iou" else m.capitalize() for m in METRICS], y=df["name"],
        zmin=0, zmax=1, colorscale="RdYlGn", text=[[f"{v:.2f}" for v in row] for row in z],
        texttemplate="%{text}", hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(yaxis={"autorange": "reversed"}, height=max(300, 24 * len(df) + 80),
                      margin={"l": 160})
    return fig


BIAS_COLUMNS: tuple[str, ...] = ("label", "name", "stage", "mean_pct", "loa_low_pct", "loa_high_pct", "dice")
BIAS_STAGES: tuple[str, ...] = ("before", "after")  # plain argmax, then the sidecar's calibration
TMV_ROW = "TMV"


def bias_frame(volume_bias: dict[str, Any], labels: dict[int, str]) -> pd.DataFrame:
    """Long table of volume bias per structure and TMV, before and after calibration.

    ``volume_bias`` is a sidecar's ``metrics["volume_bias"]``: ``{"before"|"after": {"tmv": {mean_pct,
    loa_low_pct, loa_high_pct}, "mean_dice", "structures": {"<label>": {mean_pct, loa_low_pct, loa_high_pct,
    dice}}}}``. TMV comes first (label 0) with the stage's mean Dice over the structures.
    """
    rows = []
    for stage in BIAS_STAGES:
        table = volume_bias.get(stage)
        if not table:
            continue
        tmv = table.get("tmv", {})
        rows.append({"label": 0, "name": TMV_ROW, "stage": stage, "dice": table.get("mean_dice"),
                     **{k: tmv.get(k) for k in BIAS_COLUMNS[3:6]}})
        for key, m in table.get("structures", {}).items():
            label = int(key)
            rows.append({"label": label, "name": labels.get(label, m.get("name", f"label {label}")),
                         "stage": stage, **{k: m.get(k) for k in BIAS_COLUMNS[3:]}})
    df = pd.DataFrame(rows, columns=list(BIAS_COLUMNS))
    return df.sort_values(["label", "stage"], ignore_index=True).astype({k: float for k in BIAS_COLUMNS[3:]})


def bias_figure(df: pd.DataFrame) -> go.Figure:
    """Mean volume bias (%) per structure with its 95 % limits of agreement, one marker series per stage."""
    fig = go.Figure()
    for stage, colour, shift in (("before", "#999999", -0.18), ("after", "#1f77b4", 0.18)):
        part = df[df["stage"] == stage]
        if part.empty:
            continue
        order = {name: i for i, name in enumerate(dict.fromkeys(df["name"]))}
        y = [order[n] + shift for n in part["name"]]
        fig.add_scatter(
            x=part["mean_pct"], y=y, mode="markers", name=stage, marker={"color": colour, "size": 8},
            error_x={"type": "data", "symmetric": False, "array": part["loa_high_pct"] - part["mean_pct"],
                     "arrayminus": part["mean_pct"] - part["loa_low_pct"], "color": colour, "thickness": 1.2},
            customdata=part[["name", "loa_low_pct", "loa_high_pct", "dice"]].to_numpy(),
            hovertemplate="%{customdata[0]}: %{x:+.1f} % (95 % limits %{customdata[1]:+.1f} to "
                          "%{customdata[2]:+.1f}), Dice %{customdata[3]:.3f}<extra>" + stage + "</extra>",
        )
    names = list(dict.fromkeys(df["name"]))
    fig.add_vline(x=0, line_color="#333", line_width=1)
    fig.update_layout(xaxis={"title": "volume bias, measured vs true (%)", "zeroline": False},
                      yaxis={"tickvals": list(range(len(names))), "ticktext": names, "autorange": "reversed"},
                      height=max(320, 22 * len(names) + 120), legend={"orientation": "h", "y": 1.06},
                      margin={"l": 160})
    return fig


def sidecar_facts(sidecar: dict[str, Any]) -> pd.DataFrame:
    """Key facts of a checkpoint sidecar as a two-column table (what, value)."""
    model = sidecar.get("model", {})
    training = sidecar.get("training", {})
    metrics = sidecar.get("metrics", {})
    heldout = metrics.get("heldout", {})
    size = model.get("img_size", [])
    rows = [
        ("architecture", f"UNETR, patch {'×'.join(map(str, size))}, hidden {model.get('hidden_size')}, "
                         f"MLP {model.get('mlp_dim')}, {model.get('num_heads')} heads, "
                         f"feature size {model.get('feature_size')}"),
        ("structures", str(len(sidecar.get("labels", {})))),
        ("input contrasts", ", ".join(sidecar.get("contrasts", []))),
        ("spacing (mm)", " × ".join(f"{s:g}" for s in sidecar.get("spacing", []))),
        ("intensity window", " – ".join(f"{w:g}" for w in sidecar.get("window", []))),
        ("weights", f"{sidecar.get('weights_dtype', '?')}, SHA-256 {str(sidecar.get('weights_sha256', ''))[:12]}…"),
        ("training data", str(training.get("data", "not recorded"))),
        ("training", f"{training.get('steps', '?')} steps, {training.get('epochs', '?')} epochs, "
                     f"{training.get('minutes', '?')} min, {training.get('parameters', '?')} parameters"),
        ("validation mean Dice", _fmt(metrics.get("validation_mean_dice"))),
        ("held-out mean Dice / IoU", f"{_fmt(heldout.get('mean_dice'))} / {_fmt(heldout.get('mean_iou'))}"),
        ("held-out data", str(metrics.get("heldout_description", "none stored"))),
        ("validated on", str(sidecar.get("validated_on") or "not recorded")),
        ("post-processing", _postprocessing(sidecar.get("calibration", {}))),
        ("sidecar version", str(sidecar.get("version"))),
    ]
    return pd.DataFrame(rows, columns=["what", "value"])


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "—"


def _postprocessing(calibration: dict[str, Any]) -> str:
    offsets = calibration.get("logit_offsets") or {}
    parts = [f"logit offsets for {len(offsets)} classes (range {min(offsets.values()):+.2f} to "
             f"{max(offsets.values()):+.2f})" if offsets else "plain argmax"]
    if calibration.get("largest_component"):
        parts.append(f"largest component per side kept for {len(calibration['largest_component'])} structures")
    if calibration.get("fit_seeds"):
        parts.append(f"fitted on phantom seeds {', '.join(map(str, calibration['fit_seeds']))}")
    return "; ".join(parts)
