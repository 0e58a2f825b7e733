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
        ("sidecar version", str(sidecar.get("version"))),
    ]
    return pd.DataFrame(rows, columns=["what", "value"])


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "—"
