"""Subject page figures: 3-D meshes coloured by percentile/fat fraction/structure, 2-D map, slices."""

import numpy as np
import pandas as pd
import pytest

from dashboard.figures.slices import default_index, plane_coordinates, slice_figure, slice_plane, window
from dashboard.figures.subject import (
    STRUCTURE_COLOURS,
    UNKNOWN_COLOUR,
    mesh_figure,
    muscle_map_figure,
    structure_values,
)
from engine.imaging.mesh import Mesh, SceneMeshes
from engine.imaging.volume import Volume
from store.structures import STRUCTURES

TETRA_V = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float32)
TETRA_F = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32)


def _table() -> pd.DataFrame:
    rows = []
    for s in STRUCTURES:
        rows.append({"label": s.label, "name": s.name, "percentile_left": float(s.label), "percentile_right":
                     100.0 - s.label, "fat_fraction": s.label / 100.0})
    df = pd.DataFrame(rows)
    df.loc[df.label == 3, "percentile_left"] = np.nan
    return df


def _scene() -> SceneMeshes:
    meshes = {(lab, side): Mesh(lab, side, TETRA_V + (50 if side == "left" else 0), TETRA_F)
              for lab in (2, 3) for side in ("left", "right")}
    return SceneMeshes(meshes, 25.0, "given")


def test_structure_values_pick_side_percentiles_or_fat_fraction():
    t = _table()
    pct = structure_values(t, "percentile")
    assert pct[(5, "left")] == 5.0 and pct[(5, "right")] == 95.0 and np.isnan(pct[(3, "left")])
    ff = structure_values(t, "fat_fraction")
    assert ff[(7, "left")] == ff[(7, "right")] == 0.07
    assert structure_values(t, "structure") == {}
    with pytest.raises(ValueError, match="colour mode must be one of .* found 'age'"):
        structure_values(t, "age")


def test_mesh_figure_one_trace_per_structure_side_with_legend_groups():
    fig = mesh_figure(_scene(), _table(), "percentile", hidden={3})
    assert [t.type for t in fig.data] == ["mesh3d"] * 4
    by = {(t.name, t.legendgroup, t.showlegend): t for t in fig.data}
    assert len(by) == 4  # one legend entry per structure, both sides in its group
    assert sum(bool(t.showlegend) for t in fig.data) == 2
    rf_left = next(t for t in fig.data if t.name == "Rectus femoris" and "(L)" in t.hovertemplate)
    assert set(rf_left.intensity) == {2.0} and rf_left.cmin == 0 and rf_left.cmax == 100
    np.testing.assert_array_equal(rf_left.x, TETRA_V[:, 0] + 50)
    np.testing.assert_array_equal(rf_left.k, TETRA_F[:, 2])
    vl_left = next(t for t in fig.data if t.name == "Vastus lateralis" and "(L)" in t.hovertemplate)
    assert vl_left.color == UNKNOWN_COLOUR and vl_left.intensity is None  # no percentile: grey
    assert vl_left.visible == "legendonly"
    assert sum(bool(t.showscale) for t in fig.data) == 1
    structure = mesh_figure(_scene(), None, "structure")
    assert {t.color for t in structure.data} == {STRUCTURE_COLOURS[2], STRUCTURE_COLOURS[3]}


def test_muscle_map_has_a_tile_per_structure_and_side():
    fig = muscle_map_figure(_table(), "percentile")
    tiles = fig.data[0]
    assert len(tiles.x) == 2 * 27
    i = list(tiles.y).index("Anterior · Sartorius")
    assert (tiles.x[i], tiles.marker.color[i], tiles.text[i]) == ("Right", 99.0, "99")
    assert (tiles.x[i + 1], tiles.marker.color[i + 1]) == ("Left", 1.0)
    assert fig.data[1].name == "unknown" and list(fig.data[1].y) == ["Anterior · Vastus lateralis"]
    assert len(set(muscle_map_figure(_table(), "structure").data[0].marker.color)) == 27


def test_slices_are_oriented_and_measured_in_mm():
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    vol = Volume(data, (2.0, 3.0, 4.0), (10.0, 20.0, 30.0))
    np.testing.assert_array_equal(slice_plane(data, "axial", 2), data[:, :, 2].T)
    np.testing.assert_array_equal(slice_plane(data, "coronal", 1), data[:, 1, :].T)
    np.testing.assert_array_equal(slice_plane(data, "sagittal", 3), data[3].T)
    xs, ys = plane_coordinates(vol, "sagittal")
    np.testing.assert_allclose(xs, 20.0 + 3.0 * np.arange(5))
    np.testing.assert_allclose(ys, 30.0 + 4.0 * np.arange(6))
    with pytest.raises(ValueError, match="coronal slice index must be within 0-4, found 5"):
        slice_plane(data, "coronal", 5)
    with pytest.raises(ValueError, match="axis must be one of .* found 'oblique'"):
        slice_plane(data, "oblique", 0)


def test_slice_figure_overlays_labels_without_background():
    data = np.random.default_rng(0).uniform(0, 100, (8, 9, 10)).astype(np.float32)
    labels = np.zeros((8, 9, 10), np.uint8)
    labels[2:4, 3:6, 5] = 27
    img, lab = Volume(data, (1.0, 1.0, 2.0)), Volume(labels, (1.0, 1.0, 2.0))
    fig = slice_figure(img, lab, "axial", 5, channel="water")
    base, over = fig.data
    np.testing.assert_array_equal(base.z, data[:, :, 5].T)
    z = np.asarray(over.z, dtype=float)
    assert np.nansum(z == 27) == 6 and np.isnan(z).sum() == 8 * 9 - 6
    assert over.customdata[3][2] == "Femur"
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.autorange == "reversed"
    lo, hi = window(img, "water")
    assert lo == pytest.approx(np.percentile(data[::2, ::2, ::2], 1.0))
    assert window(img, "fat_fraction") == (0.0, 1.0)
    with pytest.raises(ValueError, match="must share a grid"):
        slice_figure(img, Volume(labels[:4], (1.0, 1.0, 2.0)), "axial", 0)


def test_default_slice_is_the_one_with_most_labels():
    labels = np.zeros((6, 7, 8), np.uint8)
    labels[4, 1:6, 2:7] = 3  # a sagittal plate at i = 4
    labels[1, 2, 3] = 5
    vol = Volume(labels, (1.0, 1.0, 1.0))
    assert default_index(vol, "sagittal") == 4
    assert default_index(vol, "axial") == 3  # k = 3 holds 5 + 1 labelled voxels
    assert default_index(Volume(np.zeros((6, 7, 8), np.uint8), (1.0, 1.0, 1.0)), "coronal") == 3


def test_fit_eye_matches_the_closed_form_for_a_cube():
    from dashboard.figures.subject import PLOTLY_TAN_HALF_FOV, fit_eye

    eye = fit_eye((100.0, 100.0, 100.0), (0.0, -1.0, 0.0), margin=1.0, aspect=1.0)
    # the front face (half-size 0.5) sits at d - 0.5 and must subtend tan(half fov)
    assert eye["y"] == pytest.approx(-(0.5 + 0.5 / PLOTLY_TAN_HALF_FOV))
    assert eye["x"] == pytest.approx(0.0) and eye["z"] == pytest.approx(0.0)


def test_fit_eye_reproduces_the_distance_measured_in_chromium():
    from dashboard.figures.subject import fit_eye

    # measured: a 200 x 150 x 500 mm box seen from (0, -3, 0) filled 253.5 of 300 half-height pixels
    eye = fit_eye((200.0, 150.0, 500.0), (0.0, -1.0, 0.0), margin=253.5 / 300, aspect=1.0)
    assert -eye["y"] == pytest.approx(3.0, rel=0.02)


def test_the_default_camera_is_fitted_to_the_scene():
    from dashboard.figures.subject import PLOTLY_TAN_HALF_FOV, fit_eye, mesh_figure
    from engine.imaging.mesh import Mesh, SceneMeshes

    def box_scene(height: float) -> SceneMeshes:
        v = np.array([[0, 0, 0], [300, 0, 0], [0, 200, 0], [0, 0, height]], dtype=np.float32)
        f = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], dtype=np.int32)
        return SceneMeshes({(1, "left"): Mesh(1, "left", v, f)})

    eye = mesh_figure(box_scene(600.0), None, "structure").layout.scene.camera.eye
    assert (eye.x, eye.y, eye.z) == pytest.approx(tuple(fit_eye((300.0, 200.0, 600.0)).values()))
    # a wide, flat box in a frame half as wide as tall: the width binds (closed form, normalised
    # half-extents 2, 0.25, 0.25 over the geometric mean 200 mm)
    wide = fit_eye((800.0, 100.0, 100.0), (0.0, -1.0, 0.0), margin=1.0, aspect=0.5)
    assert wide["y"] == pytest.approx(-(0.25 + 2.0 / (PLOTLY_TAN_HALF_FOV * 0.5)))
    with pytest.raises(ValueError, match="three positive lengths"):
        fit_eye((0.0, 1.0, 1.0))
