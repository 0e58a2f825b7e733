"""Windowed-sinc smoothing against VTK's filter, the split of a network by owner, and closed surfaces from
the surface-nets path where VTK's own output has cracks."""

import numpy as np
import pytest

from engine.imaging.mesh import build_meshes
from engine.imaging.mesh_kernels import sinc_coefficients, split_by_owner, windowed_sinc
from engine.imaging.volume import Volume


def _noisy_sphere():
    import pyvista as pv

    s = pv.Sphere(radius=10.0, theta_resolution=24, phi_resolution=24)
    pts = np.asarray(s.points, dtype=np.float64) + np.random.default_rng(3).normal(0, 0.3, (s.n_points, 3))
    return pts, np.asarray(s.regular_faces)


def test_windowed_sinc_matches_vtks_filter():
    import pyvista as pv
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter

    pts, faces = _noisy_sphere()
    vtk = vtkWindowedSincPolyDataFilter()
    vtk.SetInputData(pv.PolyData.from_regular_faces(pts, faces))
    vtk.SetNumberOfIterations(20)
    vtk.SetPassBand(0.1)
    vtk.BoundarySmoothingOn()
    vtk.NonManifoldSmoothingOn()
    vtk.FeatureEdgeSmoothingOff()
    vtk.NormalizeCoordinatesOn()
    vtk.Update()
    expected = vtk_to_numpy(vtk.GetOutput().GetPoints().GetData())
    ours = windowed_sinc(pts, faces, iterations=20, pass_band=0.1)
    assert np.abs(ours - expected).max() < 1e-6
    assert np.linalg.norm(ours - pts, axis=1).mean() > 0.1  # it did smooth the 0.3 mm noise
    # a linear filter: it commutes with an affine map of the points
    a = np.array([[0.0, 2.0, 0.0], [-1.5, 0.0, 0.0], [0.0, 0.0, 3.0]])
    moved = windowed_sinc(pts @ a.T + 7.0, faces, iterations=20, pass_band=0.1)
    np.testing.assert_allclose(moved, ours @ a.T + 7.0, atol=1e-9)
    with pytest.raises(ValueError, match="at least 2 iterations, found 1"):
        sinc_coefficients(1, 0.1)


def test_split_by_owner_gives_each_owner_its_faces_and_points():
    pts = np.arange(18, dtype=float).reshape(6, 3)
    faces = np.array([[0, 1, 2], [3, 4, 5], [2, 1, 3], [5, 4, 0]])
    parts = split_by_owner(pts, faces, np.array([7, 9, 7, 9]))
    assert sorted(parts) == [7, 9]
    for owner, rows in ((7, [0, 2]), (9, [1, 3])):
        p, f = parts[owner]
        np.testing.assert_array_equal(p[f], pts[faces[rows]])  # the same triangles, corner for corner
        assert len(p) == len(np.unique(faces[rows]))  # only the points those faces use
    with pytest.raises(ValueError, match=r"one value per face \(4\), found shape \(3,\)"):
        split_by_owner(pts, faces, np.array([1, 2, 3]))


def _edge_counts(faces: np.ndarray) -> tuple[np.ndarray, dict]:
    """Uses of each undirected edge, and the directed-edge counts."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    _, uses = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    keys, counts = np.unique(directed, axis=0, return_counts=True)
    return uses, {tuple(k): c for k, c in zip(keys.tolist(), counts, strict=True)}


def _enclosed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = vertices.astype(np.float64)[faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum()) / 6.0


def test_surface_nets_closes_the_cracks_vtk_leaves_where_voxels_touch_along_an_edge():
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    data = np.zeros((12, 12, 12), np.uint8)
    data[2:6, 2:6, 2:6] = 1
    data[6:10, 6:10, 2:6] = 1  # touches the first cube along one edge only
    # VTK's own output: several points at one voxel-cell centre, which leaves open edges (cracks)
    image = vtkImageData()
    image.SetDimensions(*data.shape)
    image.GetPointData().SetScalars(numpy_to_vtk(data.ravel(order="F").astype(np.uint16), deep=1))
    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    nets.SetValue(0, 1)
    nets.SmoothingOff()
    nets.Update()
    raw = vtk_to_numpy(nets.GetOutput().GetPoints().GetData())
    assert len(np.unique(raw, axis=0)) < len(raw)

    spacing = (2.0, 1.5, 3.0)
    mesh = build_meshes(Volume(data, spacing, (0.0, 0.0, 0.0)), midline=-100.0).meshes[(1, "left")]
    uses, directed = _edge_counts(mesh.faces)
    assert uses.min() >= 2 and (uses % 2 == 0).all()  # no open edge; four faces only along the shared edge
    assert (uses > 2).sum() <= 4
    assert all(directed.get((b, a), 0) == c for (a, b), c in directed.items())  # consistently wound
    voxels_mm3 = int(data.sum()) * np.prod(spacing)
    assert _enclosed_volume(mesh.vertices, mesh.faces) == pytest.approx(voxels_mm3, rel=0.03)


def test_surface_nets_scene_is_closed_manifold_and_within_budget():
    x, y, z = np.indices((30, 30, 30)).astype(float)
    data = np.zeros(x.shape, np.uint8)
    data[(x - 12) ** 2 + (y - 14) ** 2 + (z - 15) ** 2 <= 8.0**2] = 3
    data[18:27, 5:25, 6:24] = 5  # a box that touches the ball
    spacing = (1.2, 1.2, 2.0)
    vol = Volume(data, spacing, (-10.0, 4.0, 50.0))
    full = build_meshes(vol, midline=-100.0)
    budget = full.n_faces // 4
    scene = build_meshes(vol, midline=-100.0, face_budget=budget)
    assert scene.n_faces <= budget and set(scene.meshes) == {(3, "left"), (5, "left")}
    for label, m in ((3, full.meshes[(3, "left")]), (5, full.meshes[(5, "left")])):
        uses, directed = _edge_counts(m.faces)
        assert (uses == 2).all()  # every edge shared by exactly two faces
        assert max(directed.values()) == 1 and all((b, a) in directed for a, b in directed)
        voxels_mm3 = int((data == label).sum()) * np.prod(spacing)
        assert _enclosed_volume(m.vertices, m.faces) == pytest.approx(voxels_mm3, rel=0.03)  # outward: positive
    for m in scene:
        voxels_mm3 = int((data == m.label).sum()) * np.prod(spacing)
        assert _enclosed_volume(m.vertices, m.faces) == pytest.approx(voxels_mm3, rel=0.05)
    threaded = build_meshes(vol, midline=-100.0, face_budget=budget, threads=3)  # decimated 3 at a time
    assert list(threaded.meshes) == list(scene.meshes)
    for key, m in scene.meshes.items():
        np.testing.assert_array_equal(threaded.meshes[key].vertices, m.vertices)
        np.testing.assert_array_equal(threaded.meshes[key].faces, m.faces)
    with pytest.raises(ValueError, match="threads must be a positive integer, found 0"):
        build_meshes(vol, threads=0)
    # a Fortran-ordered label map (as read from NRRD) goes to VTK without a transpose: the same surfaces
    fortran = build_meshes(Volume(np.asfortranarray(data), spacing, (-10.0, 4.0, 50.0)), midline=-100.0)
    for key, m in full.meshes.items():
        f = fortran.meshes[key]
        np.testing.assert_allclose(np.sort(f.vertices, axis=0), np.sort(m.vertices, axis=0), atol=1e-4)
        assert _enclosed_volume(f.vertices, f.faces) == pytest.approx(_enclosed_volume(m.vertices, m.faces), rel=1e-6)
