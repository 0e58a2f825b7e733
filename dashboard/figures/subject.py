"""Figures of the Subject page: the 3-D muscle map (plotly ``Mesh3d``) and its 2-D schematic.

Both colour each structure and side by one of three things: the person's volume percentile in their
reference group (:func:`engine.cohort.reference.structure_table`), the structure's fat fraction, or a fixed
colour per structure. The 3-D view draws the surfaces made by :mod:`engine.imaging.mesh`; one legend entry per
structure toggles both of its sides. The 2-D map is what subjects without imaging (simulated
participants) get: one tile per structure and side, grouped by compartment.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.imaging.mesh import SceneMeshes
from store.structures import BY_LABEL, COMPARTMENTS, STRUCTURES

COLOUR_MODES: dict[str, str] = {
    "percentile": "Volume percentile",
    "fat_fraction": "Fat fraction",
    "structure": "Structure",
}
# Low percentiles (small muscles) red, high blue: a diverging scale centred on the group median.
PERCENTILE_SCALE = "RdBu"
PERCENTILE_RANGE = (0.0, 100.0)
FAT_SCALE = "YlOrBr"
FAT_RANGE = (0.0, 0.3)  # fat fraction: healthy muscle ≈ 0.02-0.10; 0.3 and above shows as the darkest
UNKNOWN_COLOUR = "#b8b8b8"
BONE_COLOURS = {26: "#e3dccb", 27: "#efe9d9"}
_PALETTE = [c for c in qualitative.Alphabet + qualitative.Dark24 if c not in BONE_COLOURS.values()]
STRUCTURE_COLOURS: dict[int, str] = {
    s.label: BONE_COLOURS.get(s.label, _PALETTE[i]) for i, s in enumerate(STRUCTURES)
}
# Anterior view: the camera looks along +y (LPS: from the front), slightly from above, z up, so the
# patient's right is on the viewer's left as in a radiological display. Only the direction is fixed;
# the distance is fitted to each scene (:func:`fit_eye`).
ANTERIOR_VIEW = (0.0, -1.0, 0.16)
ANTERIOR_EYE = {"x": 0.0, "y": -2.2, "z": 0.35}  # a cube-shaped scene's view, used when there is no mesh
# plotly.js draws an ``aspectmode="data"`` scene as a box of half-extents 0.5 * aspectratio, where the
# aspect ratios are the axis ranges over their geometric mean, seen through a perspective camera whose
# half-height of view is 0.445 x the eye's distance (measured in Chromium: a 200 x 150 x 500 box seen
# from 3, 4 and 6 units fills 254, 186 and 121 of 300 half-height pixels, as this model predicts).
PLOTLY_TAN_HALF_FOV = 0.445
FIT_MARGIN = 0.9  # the scene fills at most 90 % of the half-height: room for the title and colour bar
# Width / height of the 3-D plot area the fit assumes: the Subject page's 3-D column with its legend of 27
# structures beside the scene is narrower than it is tall; a wider frame only adds room at the sides.
FRAME_ASPECT = 0.7
SIDE_SHORT = {"left": "L", "right": "R"}
VERTEX_DECIMALS = 1  # 0.1 mm is far below a voxel; rounding shortens the JSON sent to the browser


def fit_eye(extent_mm: tuple[float, float, float], view: tuple[float, float, float] = ANTERIOR_VIEW, *,
            margin: float = FIT_MARGIN, aspect: float = FRAME_ASPECT) -> dict[str, float]:
    """Camera eye (plotly scene units) along ``view`` from which a box of ``extent_mm`` fits in the frame.

    ``aspect``: width / height of the plot area (the field of view is vertical; the horizontal one
    scales with it), so the fit holds for any frame at least that wide. Raises ``ValueError`` for a
    degenerate extent.
    """
    ext = np.asarray(extent_mm, dtype=float)
    if ext.shape != (3,) or not np.all(np.isfinite(ext)) or np.any(ext <= 0):
        raise ValueError(f"extent must be three positive lengths in mm, found {extent_mm!r}")
    half = 0.5 * ext / np.cbrt(np.prod(ext))
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    back = np.asarray(view, dtype=float)
    back = back / np.linalg.norm(back)  # from the centre towards the eye
    right = np.cross(back, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, back)
    # a corner at offset c projects to (c.right, c.up) / (d - c.back); it fits when both are within t
    t = PLOTLY_TAN_HALF_FOV * margin
    lateral = np.maximum(np.abs(corners @ right) / aspect, np.abs(corners @ up))
    d = float(np.max(corners @ back + lateral / t))
    return {axis: float(v) for axis, v in zip("xyz", back * d, strict=True)}


def _mode(mode: str) -> str:
    if mode not in COLOUR_MODES:
        raise ValueError(f"colour mode must be one of {list(COLOUR_MODES)}, found {mode!r}")
    return mode


def structure_values(table: pd.DataFrame, mode: str) -> dict[tuple[int, str], float]:
    """The number each (label, side) is coloured by: side percentile, or the structure's fat fraction.

    ``table`` is :func:`engine.cohort.reference.structure_table`'s frame. Empty for ``mode="structure"``.
    """
    _mode(mode)
    if mode == "structure":
        return {}
    out: dict[tuple[int, str], float] = {}
    for r in table.itertuples(index=False):
        for side in ("left", "right"):
            v = getattr(r, f"percentile_{side}") if mode == "percentile" else r.fat_fraction
            out[(int(r.label), side)] = float(v) if v is not None and pd.notna(v) else float("nan")
    return out


def _scale(mode: str) -> tuple[str, tuple[float, float], str]:
    if mode == "percentile":
        return PERCENTILE_SCALE, PERCENTILE_RANGE, "Percentile"
    return FAT_SCALE, FAT_RANGE, "Fat fraction"


def _value_text(mode: str, value: float) -> str:
    if mode == "structure" or math.isnan(value):
        return "" if mode == "structure" else "unknown"
    return f"{value:.0f}th percentile" if mode == "percentile" else f"fat fraction {value:.3f}"


def mesh_figure(scene: SceneMeshes, table: pd.DataFrame | None, mode: str = "percentile", *,
                hidden: set[int] | None = None, height: int = 640) -> go.Figure:
    """The subject's surfaces as ``Mesh3d`` traces, one per structure and side.

    ``hidden``: labels drawn but switched off (``visible="legendonly"``), so a click on the legend
    brings them back. Continuous modes colour each trace uniformly through ``intensity`` so a single
    colour bar explains them; a structure without a value is grey.
    """
    _mode(mode)
    values = structure_values(table, mode) if table is not None and mode != "structure" else {}
    scale, (cmin, cmax), bar_title = _scale(mode)
    hidden = hidden or set()
    fig = go.Figure()
    shown_legend: set[int] = set()
    bar_drawn = False
    for mesh in scene:
        s = BY_LABEL.get(mesh.label)
        name = s.name if s else f"Label {mesh.label}"
        v = values.get((mesh.label, mesh.side), float("nan"))
        verts = np.round(mesh.vertices, VERTEX_DECIMALS)
        # indices as uint16 when they fit: half the bytes sent to the browser for the faces
        faces = mesh.faces.astype(np.uint16) if len(verts) <= np.iinfo(np.uint16).max else mesh.faces
        trace = dict(
            x=verts[:, 0], y=verts[:, 1], z=verts[:, 2],
            i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
            name=name, legendgroup=f"label{mesh.label}", showlegend=mesh.label not in shown_legend,
            visible="legendonly" if mesh.label in hidden else True,
            hovertemplate=f"{name} ({SIDE_SHORT.get(mesh.side, mesh.side)})<br>{_value_text(mode, v)}<extra></extra>",
            flatshading=False, lighting={"ambient": 0.55, "diffuse": 0.7, "specular": 0.15, "roughness": 0.6},
        )
        if mode == "structure" or math.isnan(v):
            trace["color"] = STRUCTURE_COLOURS.get(mesh.label, UNKNOWN_COLOUR) if mode == "structure" \
                else UNKNOWN_COLOUR
        else:
            trace.update(intensity=np.full(len(verts), v, dtype=np.float32), intensitymode="vertex",
                         colorscale=scale, cmin=cmin, cmax=cmax, showscale=not bar_drawn,
                         colorbar={"title": {"text": bar_title, "side": "top"}, "orientation": "h", "len": 0.5,
                                   "thickness": 12, "x": 0.35, "y": -0.02, "yanchor": "top"})
            bar_drawn = True
        shown_legend.add(mesh.label)
        fig.add_trace(go.Mesh3d(**trace))
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 30, "b": 60},
        scene={"aspectmode": "data", "camera": {"eye": _scene_eye(scene), "up": {"x": 0, "y": 0, "z": 1}},
               "xaxis": {"visible": False}, "yaxis": {"visible": False}, "zaxis": {"visible": False}},
        legend={"title": {"text": "Structures (click to toggle)"}, "itemsizing": "constant"},
        title={"text": f"3-D muscle map · {COLOUR_MODES[mode].lower()}", "x": 0.0},
        uirevision="subject-3d",  # keep the user's camera when the colouring changes
    )
    return fig


def _scene_eye(scene: SceneMeshes) -> dict[str, float]:
    if not len(scene):
        return ANTERIOR_EYE
    points = np.concatenate([m.vertices for m in scene])
    extent = np.ptp(points, axis=0)
    return fit_eye(tuple(np.maximum(extent, 1.0))) if len(points) else ANTERIOR_EYE


def muscle_map_figure(table: pd.DataFrame, mode: str = "percentile", *, height: int = 720) -> go.Figure:
    """2-D schematic: one tile per structure (rows, grouped by compartment) and side (R | L columns)."""
    _mode(mode)
    values = structure_values(table, mode)
    scale, (cmin, cmax), bar_title = _scale(mode)
    order = [s for c in COMPARTMENTS for s in STRUCTURES if s.compartment == c]
    rows = [f"{s.compartment.capitalize()} · {s.name}" for s in order]
    xs, ys, colours, texts, hovers = [], [], [], [], []
    for s, row in zip(order, rows, strict=True):
        for side, column in (("right", "Right"), ("left", "Left")):  # radiological: right on the left
            v = values.get((s.label, side), float("nan"))
            xs.append(column)
            ys.append(row)
            colours.append(v)
            texts.append("" if mode == "structure" or math.isnan(v) else
                         (f"{v:.0f}" if mode == "percentile" else f"{v:.2f}"))
            hovers.append(f"{s.name} ({side})<br>{_value_text(mode, v) if mode != 'structure' else s.compartment}")
    marker: dict = {"symbol": "square", "size": 22, "line": {"width": 0.5, "color": "#555"}}
    if mode == "structure":
        marker["color"] = [STRUCTURE_COLOURS[s.label] for s in order for _ in (0, 1)]
    else:
        known = [c if not math.isnan(c) else None for c in colours]
        marker.update(color=[c if c is not None else cmin for c in known], colorscale=scale, cmin=cmin, cmax=cmax,
                      showscale=True, colorbar={"title": {"text": bar_title}, "len": 0.5})
        # unknown tiles drawn grey on top, so they never read as the bottom of the scale
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers+text", marker=marker, text=texts,
                               textfont={"size": 9}, hovertext=hovers, hoverinfo="text", showlegend=False))
    if mode != "structure":
        unknown = [i for i, c in enumerate(colours) if math.isnan(c)]
        if unknown:
            fig.add_trace(go.Scatter(x=[xs[i] for i in unknown], y=[ys[i] for i in unknown], mode="markers",
                                     marker={**{k: marker[k] for k in ("symbol", "size", "line")},
                                             "color": UNKNOWN_COLOUR},
                                     hovertext=[hovers[i] for i in unknown], hoverinfo="text", name="unknown"))
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 70, "b": 10},
        title={"text": f"Muscle map · {COLOUR_MODES[mode].lower()}", "x": 0.0},
        xaxis={"categoryorder": "array", "categoryarray": ["Right", "Left"], "side": "top"},
        yaxis={"categoryorder": "array", "categoryarray": rows[::-1], "tickfont": {"size": 10}},
        plot_bgcolor="white",
    )
    return fig
