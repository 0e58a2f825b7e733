"""Orthogonal slices (axial, coronal, sagittal) of a Dixon image with the label map over it.

Volumes follow :mod:`engine.imaging.volume` (``data[i, j, k]``, LPS: ``i`` towards the patient's left,
``j`` posterior, ``k`` superior; the fused grids are axis-aligned, so the direction matrix is taken
as the identity for display). Shown in radiological convention: the patient's right on the viewer's
left, anterior up in axial slices, superior up in coronal and sagittal ones. Axes are in millimetres
and locked 1:1, so anisotropic voxels keep their true shape.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.subject import STRUCTURE_COLOURS
from engine.imaging.volume import Volume
from store.structures import BY_LABEL

# axis name -> the voxel axis held fixed
AXES: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}
CHANNELS: dict[str, str] = {"water": "Water", "fat": "Fat", "fat_fraction": "Fat fraction"}
WINDOW_PERCENTILES = (1.0, 99.5)  # grey-level window of water/fat images, robust to a few bright voxels
FAT_FRACTION_WINDOW = (0.0, 1.0)
MAX_LABEL = 27


def _axis(axis: str) -> int:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {list(AXES)}, found {axis!r}")
    return AXES[axis]


def slice_plane(data: np.ndarray, axis: str, index: int) -> np.ndarray:
    """2-D slice ready for a heatmap (rows = vertical screen axis, columns = horizontal).

    axial: columns ``i``, rows ``j``; coronal: columns ``i``, rows ``k``; sagittal: columns ``j``, rows ``k``.
    """
    a = _axis(axis)
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D volume, found shape {data.shape}")
    n = data.shape[a]
    if not 0 <= index < n:
        raise ValueError(f"{axis} slice index must be within 0-{n - 1}, found {index}")
    return np.take(data, index, axis=a).T


def plane_coordinates(volume: Volume, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """World mm of the plane's columns and rows (the two voxel axes that are not held fixed)."""
    a = _axis(axis)
    cols, rows = [d for d in range(3) if d != a]
    coord = [volume.origin[d] + volume.spacing[d] * np.arange(volume.shape[d]) for d in range(3)]
    return coord[cols], coord[rows]


def window(volume: Volume, channel: str) -> tuple[float, float]:
    """Grey-level range: fixed 0-1 for fat fraction, else robust percentiles of the non-zero voxels."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {list(CHANNELS)}, found {channel!r}")
    if channel == "fat_fraction":
        return FAT_FRACTION_WINDOW
    data = np.asarray(volume.data)
    sample = data[::2, ::2, ::2]
    sample = sample[sample > 0]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, WINDOW_PERCENTILES)
    return float(lo), float(hi if hi > lo else lo + 1.0)


def default_index(labels: Volume | None, axis: str) -> int:
    """The slice with the most labelled voxels (the mid-slice without labels): a sagittal slice then
    cuts through a thigh rather than the empty gap at the midline."""
    a = _axis(axis)
    if labels is None:
        raise ValueError("default_index needs a label map")
    data = np.asarray(labels.data)
    other = tuple(d for d in range(3) if d != a)
    counts = np.count_nonzero(data, axis=other)
    return int(np.argmax(counts)) if counts.any() else data.shape[a] // 2


def _label_scale() -> list[list[float | str]]:
    """Discrete colour scale mapping label value v (1..27, zmin 0.5, zmax 27.5) to its structure colour."""
    scale: list[list[float | str]] = []
    for v in range(1, MAX_LABEL + 1):
        lo, hi = (v - 1) / MAX_LABEL, v / MAX_LABEL
        colour = STRUCTURE_COLOURS.get(v, "#888888")
        scale += [[lo, colour], [hi, colour]]
    return scale


def slice_figure(image: Volume, labels: Volume | None, axis: str, index: int, *, channel: str = "water",
                 opacity: float = 0.35, win: tuple[float, float] | None = None, height: int = 420) -> go.Figure:
    """One slice of ``image`` in grey with ``labels`` (if given) drawn over it in structure colours."""
    if labels is not None and labels.shape != image.shape:
        raise ValueError(f"labels {labels.shape} and image {image.shape} must share a grid")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within 0-1, found {opacity}")
    plane = slice_plane(np.asarray(image.data), axis, index).astype(np.float32)
    xs, ys = plane_coordinates(image, axis)
    lo, hi = win or window(image, channel)
    fig = go.Figure(go.Heatmap(z=plane, x=xs, y=ys, colorscale="gray", zmin=lo, zmax=hi, showscale=False,
                               hovertemplate=f"{CHANNELS.get(channel, channel)} %{{z:.3g}}<extra></extra>"))
    if labels is not None and opacity > 0:
        lab = slice_plane(np.asarray(labels.data), axis, index)
        over = np.where(lab > 0, lab, np.nan).astype(np.float32)
        # names by lookup table, empty for background: the hover text costs the browser little
        lookup = np.array([""] + [BY_LABEL[v].name if v in BY_LABEL else "" for v in range(1, 256)], dtype=object)
        names = lookup[np.clip(lab.astype(np.int64), 0, 255)]
        fig.add_trace(go.Heatmap(z=over, x=xs, y=ys, colorscale=_label_scale(), zmin=0.5, zmax=MAX_LABEL + 0.5,
                                 opacity=opacity, showscale=False, customdata=names,
                                 hovertemplate="%{customdata}<extra></extra>", hoverongaps=False))
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title={"text": f"{axis.capitalize()} · slice {index}", "x": 0.0, "font": {"size": 13}},
        xaxis={"visible": False, "constrain": "domain"},
        yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1,
               "autorange": "reversed" if axis == "axial" else True},
        plot_bgcolor="black",
    )
    return fig
