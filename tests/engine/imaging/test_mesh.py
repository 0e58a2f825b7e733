"""Surface meshes: geometry in world space, left/right split at the midline, face budget, npz round trip."""

import numpy as np
import pytest

from engine.errors import MeshError
from engine.imaging.mesh import build_meshes, load_meshes, save_meshes
from engine.imaging.volume import Volume

SPACING = (2.0, 2.0, 3.0)
ORIGIN = (-40.0, 10.0, 100.0)


def _grid(shape=(40, 30, 24)) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-centre world coordinates (x, y, z each of ``shape``) for SPACING/ORIGIN, identity direction."""
    idx = np.indices(shape).astype(float)
    return tuple(o + s * i for o, s, i in zip(ORIGIN, SPACING, idx, strict=True))


def _enclosed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """|Σ v0 · (v1 × v2)| / 6 (divergence theorem) over a closed triangle mesh."""
    v = vertices.astype(np.float64)[faces]
    return abs(float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum()) / 6.0)


def _sphere_and_box() -> tuple[Volume, dict]:
    x, y, z = _grid()
    data = np.zeros(x.shape, np.uint8)
    centre, radius = np.array([-10.0, 40.0, 135.0]), 14.0
    data[(x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius**2] = 4
    box = (x >= 10) & (x <= 30) & (y >= 20) & (y <= 50) & (z >= 118) & (z <= 160)
    data[box] = 21
    return Volume(data, SPACING, ORIGIN), {"centre": centre, "radius": radius, "box_voxels": int(box.sum())}


def test_sphere_surface_sits_where_the_mask_is_in_world_space():
    vol, truth = _sphere_and_box()
    scene = build_meshes(vol, midline=-100.0)  # LPS x > midline everywhere: all on the left side
    sphere = scene.meshes[(4, "left")]
    assert (4, "right") not in scene.meshes
    assert sphere.vertices.dtype == np.float32 and sphere.faces.dtype == np.int32
    np.testing.assert_allclose(sphere.vertices.mean(axis=0), truth["centre"], atol=1.0)
    radii = np.linalg.norm(sphere.vertices - truth["centre"], axis=1)
    assert abs(np.median(radii) - truth["radius"]) < 2.0  # within one voxel
    expected = 4 / 3 * np.pi * truth["radius"] ** 3
    assert _enclosed_volume(sphere.vertices, sphere.faces) == pytest.approx(expected, rel=0.12)


def test_structures_are_split_at_the_midline():
    vol, truth = _sphere_and_box()
    mid = 19.0  # through the box (x 10..30): LPS x > mid is the patient's left
    scene = build_meshes(vol, midline=mid)
    left, right = scene.meshes[(21, "left")], scene.meshes[(21, "right")]
    assert left.vertices[:, 0].min() > mid - SPACING[0]
    assert right.vertices[:, 0].max() < mid + SPACING[0]
    box_mm3 = truth["box_voxels"] * np.prod(SPACING)
    both = _enclosed_volume(left.vertices, left.faces) + _enclosed_volume(right.vertices, right.faces)
    assert both == pytest.approx(box_mm3, rel=0.15)
    assert scene.midline_x_mm == mid and scene.midline_source == "given"
    assert scene.meshes[(4, "right")].name == "Vastus medialis (right)"


def test_scene_stays_within_the_face_budget():
    vol, _ = _sphere_and_box()
    full = build_meshes(vol, midline=19.0)
    budget = full.n_faces // 3
    small = build_meshes(vol, midline=19.0, face_budget=budget)
    assert small.n_faces <= budget < full.n_faces
    assert set(small.meshes) == set(full.meshes)


def test_npz_round_trip_is_exact(tmp_path):
    vol, _ = _sphere_and_box()
    scene = build_meshes(vol, midline=19.0)
    back = load_meshes(save_meshes(scene, tmp_path / "meshes.npz"))
    assert set(back.meshes) == set(scene.meshes)
    for key, m in scene.meshes.items():
        np.testing.assert_array_equal(back.meshes[key].vertices, m.vertices)
        np.testing.assert_array_equal(back.meshes[key].faces, m.faces)
    assert back.midline_x_mm == 19.0 and back.n_faces == scene.n_faces


def test_bad_inputs_are_named(tmp_path):
    vol, _ = _sphere_and_box()
    with pytest.raises(ValueError, match="face_budget must be a positive integer, found 0"):
        build_meshes(vol, face_budget=0)
    with pytest.raises(TypeError, match="label map must hold integers, found dtype float32"):
        build_meshes(vol.with_data(vol.data.astype(np.float32)))
    with pytest.raises(ValueError, match=r"saved as .npz, found 'm.vtp'"):
        save_meshes(build_meshes(vol, midline=0.0), tmp_path / "m.vtp")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(MeshError, match="not an MSMV mesh file"):
        load_meshes(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MeshError, match="cannot read meshes"):
        load_meshes(tmp_path / "junk.npz")


def test_collapsed_cells_are_dropped_so_decimation_accepts_the_surface():
    import pyvista as pv

    from engine.imaging.mesh import _decimate, _triangles_only

    # a closed octahedron (8 triangles) plus what clean() leaves of sliver triangles: a degenerate
    # triangle (a repeated vertex), a line and a vertex cell
    pts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    tris = [(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)]
    faces = np.array([[3, *t] for t in tris] + [[3, 0, 0, 2]]).ravel()
    surf = pv.PolyData(pts, faces=faces, lines=np.array([2, 0, 1]), verts=np.array([1, 5]))
    assert surf.n_cells == 11
    with pytest.raises(pv.core.errors.NotAllTrianglesError):
        surf.decimate(0.5)
    kept = _triangles_only(surf)
    assert kept.n_cells == 8 and kept.n_lines == 0 and kept.n_verts == 0
    assert kept.area == pytest.approx(8 * np.sqrt(3) / 2)  # eight equilateral faces of side sqrt(2)
    fine = kept.subdivide(3)
    fine = (np.asarray(fine.points), np.asarray(fine.regular_faces))  # 512 faces decimate without an error
    assert len(_decimate(fine, 100, vtk=True)[1]) <= 400
    assert len(_decimate(fine, 100)[1]) <= 400


def test_a_left_mask_replaces_the_midline_split():
    vol, truth = _sphere_and_box()
    _, y, _ = _grid()
    cut = 34.0  # through the box (y 20..50) along y, which no midline in x could give
    scene = build_meshes(vol, left=y < cut, midline=19.0)
    left, right = scene.meshes[(21, "left")], scene.meshes[(21, "right")]
    assert left.vertices[:, 1].max() < cut + SPACING[1] and right.vertices[:, 1].min() > cut - SPACING[1]
    assert left.vertices[:, 0].min() < 12.0 and right.vertices[:, 0].max() > 28.0  # both span the box in x
    box_mm3 = truth["box_voxels"] * np.prod(SPACING)
    both = _enclosed_volume(left.vertices, left.faces) + _enclosed_volume(right.vertices, right.faces)
    assert both == pytest.approx(box_mm3, rel=0.15)
    assert scene.midline_source == "left mask" and scene.midline_x_mm == 19.0
    assert np.isnan(build_meshes(vol, left=y < cut).midline_x_mm)
    with pytest.raises(ValueError, match=r"left mask shape \(40, 30\) differs from the label map's \(40, 30, 24\)"):
        build_meshes(vol, left=np.ones((40, 30), bool))
    with pytest.raises(TypeError, match="left must be a boolean mask, found dtype float64"):
        build_meshes(vol, left=y)


def _two_touching_boxes() -> tuple[Volume, np.ndarray, np.ndarray]:
    """Labels 7 and 8: two boxes sharing the face at voxel x index 20, both left of a midline at -100."""
    data = np.zeros((40, 30, 24), np.uint8)
    data[8:20, 5:25, 4:20] = 7
    data[20:32, 5:25, 4:20] = 8
    return Volume(data, SPACING, ORIGIN), data == 7, data == 8


def test_surface_nets_draws_touching_labels_as_two_closed_meshes_on_their_voxels():
    vol, seven, eight = _two_touching_boxes()
    scene = build_meshes(vol, midline=-100.0)  # the default method
    assert set(scene.meshes) == {(7, "left"), (8, "left")}
    x, y, z = _grid()
    half = np.array(SPACING) / 2
    for label, mask in ((7, seven), (8, eight)):
        m = scene.meshes[(label, "left")]
        # the mask's outer faces: voxel centres +- half a voxel; the surface lies within one voxel of them
        lo = np.array([c[mask].min() for c in (x, y, z)]) - half
        hi = np.array([c[mask].max() for c in (x, y, z)]) + half
        np.testing.assert_array_less(np.abs(m.vertices.min(axis=0) - lo), np.array(SPACING))
        np.testing.assert_array_less(np.abs(m.vertices.max(axis=0) - hi), np.array(SPACING))
        mm3 = int(mask.sum()) * np.prod(SPACING)
        assert _enclosed_volume(m.vertices, m.faces) == pytest.approx(mm3, rel=0.05)
    # they meet at the shared face x = ORIGIN + 19.5 voxels = -1 mm: 7 below it, 8 above it
    shared = ORIGIN[0] + 19.5 * SPACING[0]
    assert scene.meshes[(7, "left")].vertices[:, 0].max() == pytest.approx(shared, abs=0.5)
    assert scene.meshes[(8, "left")].vertices[:, 0].min() == pytest.approx(shared, abs=0.5)


def test_surface_nets_splits_sides_and_keeps_labels_wanted():
    vol, seven, _ = _two_touching_boxes()
    mid = ORIGIN[0] + 13.5 * SPACING[0]  # through box 7 (x index 8..19) at index 13.5
    scene = build_meshes(vol, midline=mid, labels_wanted=(7,))
    assert set(scene.meshes) == {(7, "left"), (7, "right")}
    left, right = scene.meshes[(7, "left")], scene.meshes[(7, "right")]
    assert left.vertices[:, 0].min() == pytest.approx(mid, abs=0.5)
    assert right.vertices[:, 0].max() == pytest.approx(mid, abs=0.5)
    n_left = int((seven & (np.indices(seven.shape)[0] >= 14)).sum())  # x index 14..19: x > mid
    assert _enclosed_volume(left.vertices, left.faces) == pytest.approx(n_left * np.prod(SPACING), rel=0.05)


def test_the_earlier_marching_cubes_method_stays_selectable():
    vol, truth = _sphere_and_box()
    nets = build_meshes(vol, midline=19.0)
    cubes = build_meshes(vol, midline=19.0, method="marching-cubes")
    assert set(cubes.meshes) == set(nets.meshes)
    expected = 4 / 3 * np.pi * truth["radius"] ** 3
    for scene in (nets, cubes):
        sphere = scene.meshes[(4, "right")]
        assert _enclosed_volume(sphere.vertices, sphere.faces) == pytest.approx(expected, rel=0.12)
    with pytest.raises(ValueError, match=r"method must be one of \('surface-nets', 'marching-cubes'\), found 'mc'"):
        build_meshes(vol, method="mc")
