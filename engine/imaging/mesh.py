"""Surface meshes of the segmented structures, one per structure and side, for the Subject page's 3-D view.

Made once by the engine after measurement (``engine.service.pipeline``'s ``mesh`` stage) and kept with the
subject's artifacts as ``meshes.npz``; the dashboard only loads it. Each structure is split left/right at
the mid-sagittal plane of :func:`engine.imaging.measure.midline_x` (the same split as the volumes; a given
``left`` mask replaces it), then the surfaces are drawn by one of :data:`MESH_METHODS`:

- ``"surface-nets"`` (the default): one pass of VTK's ``vtkSurfaceNets3D`` over the whole label map
  draws every structure and side at once (one network of shared points: neighbouring structures meet
  without gaps or overlaps), the copies VTK makes of a point where voxels touch along an edge or corner
  are merged (they left cracks), and one windowed-sinc (Taubin) pass smooths that whole network
  (VTK's filter, run as numba kernels on the arrays: :mod:`engine.imaging.mesh_kernels`). Surface
  nets' own smoothing is off: it is Laplacian, and shrank a 14 mm sphere's volume by a fifth;
- ``"marching-cubes"`` (the earlier method, kept for comparison): per structure and side, the binary
  mask is blurred slightly (so contouring does not draw voxel stairs), contoured at 0.5 with VTK's
  flying edges and Taubin-smoothed (which does not shrink the surface the way Laplacian smoothing does).

Either way the surfaces are decimated with quadric decimation (surface nets: ``meshoptimizer``'s, about
a third of the CPU time of ``fast-simplification``, the earlier choice, on a demo subject; marching
cubes: VTK's, as before) so that the whole scene stays under a
face budget that a browser draws smoothly with plotly ``Mesh3d``. Vertices are LPS world millimetres
(float32), faces are vertex-index triples (int32).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from engine.errors import MeshError
from engine.imaging.measure import midline_x, world_x
from engine.imaging.mesh_kernels import compact, split_by_owner, windowed_sinc
from engine.imaging.volume import Volume
from store.files import atomic_path
from store.structures import BY_LABEL, SIDES

# A whole 3-D scene stays under ~100k faces so the browser draws it smoothly; aim below it so
# decimation's overshoot fits.
MAX_SCENE_FACES = 100_000
DEFAULT_FACE_BUDGET = 90_000
BLUR_SIGMA_VOXELS = 0.6  # Gaussian blur of the binary mask before contouring; < 1 voxel keeps thin muscles
TAUBIN_ITERATIONS = 20
TAUBIN_PASS_BAND = 0.1  # VTK's default; lower smooths more
MIN_DECIMATE_FACES = 200  # smaller surfaces are left alone: decimating them only loses their shape
_PAD = 2  # voxels of background around each cropped mask, so every surface closes
FORMAT_VERSION = 1
MESH_METHODS: tuple[str, ...] = ("surface-nets", "marching-cubes")
DEFAULT_MESH_METHOD = "surface-nets"

Surface = tuple[np.ndarray, np.ndarray]  # points (n, 3) LPS mm, faces (m, 3) vertex indices


@dataclass(frozen=True)
class Mesh:
    """One triangulated surface: ``vertices`` (n, 3) float32 LPS mm, ``faces`` (m, 3) int32."""

    label: int
    side: str
    vertices: np.ndarray
    faces: np.ndarray

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def name(self) -> str:
        s = BY_LABEL.get(self.label)
        return f"{s.name if s else f'Label {self.label}'} ({self.side})"


@dataclass
class SceneMeshes:
    """All surfaces of one subject, keyed by ``(label, side)``, with the midline they were split at."""

    meshes: dict[tuple[int, str], Mesh] = field(default_factory=dict)
    midline_x_mm: float = float("nan")
    midline_source: str = ""

    def __iter__(self) -> Iterator[Mesh]:
        return iter(self.meshes[k] for k in sorted(self.meshes))

    def __len__(self) -> int:
        return len(self.meshes)

    @property
    def n_faces(self) -> int:
        return sum(m.n_faces for m in self.meshes.values())

    @property
    def n_vertices(self) -> int:
        return sum(int(m.vertices.shape[0]) for m in self.meshes.values())


def _surface(mask: np.ndarray, offset: np.ndarray, affine: np.ndarray):  # -> pyvista.PolyData
    """Smoothed iso-surface of a cropped boolean ``mask`` whose voxel (0,0,0) is at index ``offset``."""
    import pyvista as pv

    soft = ndimage.gaussian_filter(mask.astype(np.float32), BLUR_SIGMA_VOXELS) if BLUR_SIGMA_VOXELS else mask
    grid = pv.ImageData(dimensions=mask.shape, spacing=(1.0, 1.0, 1.0), origin=tuple(float(o) for o in offset))
    grid.point_data["mask"] = np.asarray(soft, dtype=np.float32).ravel(order="F")  # VTK: x varies fastest
    surf = _triangles_only(grid.contour([0.5], scalars="mask", method="flying_edges").triangulate().clean())
    if surf.n_cells == 0:
        return surf
    surf = surf.smooth_taubin(n_iter=TAUBIN_ITERATIONS, pass_band=TAUBIN_PASS_BAND)
    # index space -> LPS world (handles any direction matrix, not only axis-aligned grids)
    pts = np.asarray(surf.points, dtype=np.float64)
    surf.points = pts @ affine[:3, :3].T + affine[:3, 3]
    return surf


def _surface_nets(codes: np.ndarray, offset: np.ndarray, affine: np.ndarray) -> dict[int, Surface]:
    """One smoothed surface per nonzero value of ``codes`` (a cropped label grid whose voxel (0,0,0) is at
    index ``offset``), all from one ``vtkSurfaceNets3D`` pass; ``{value: (points LPS mm, faces)}``.

    Each output triangle separates two values (its ``BoundaryLabels``); a triangle faces the first of
    them, so it is reversed for the second, and every surface comes out closed and consistently wound.
    Surface nets puts one point at the centre of each voxel cell the surface crosses, but VTK emits up to
    three copies of some of them, each used by a few triangles: those copies are merged first (each one
    left a crack in the surface), then the whole network is smoothed once (:func:`windowed_sinc`).
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    counts = np.bincount(codes.ravel(order="K"))
    values = [int(v) for v in np.flatnonzero(counts) if v > 0]
    if not values:
        return {}
    image = vtkImageData()
    # VTK's x varies fastest: a Fortran-ordered grid goes as it is; a C-ordered one goes with its axes
    # reversed (no copy), its points' columns read back reversed, and that mirror turns each triangle over
    mirror = not codes.flags.f_contiguous
    codes = np.ascontiguousarray(codes) if mirror else codes
    image.SetDimensions(*(codes.shape[::-1] if mirror else codes.shape))
    scalars = numpy_to_vtk(codes.ravel(order="C" if mirror else "F"), deep=0)
    image.GetPointData().SetScalars(scalars)
    nets = vtkSurfaceNets3D()
    nets.SetInputData(image)
    for i, v in enumerate(values):
        nets.SetValue(i, v)
    nets.SetBackgroundLabel(0)
    nets.SetOutputMeshTypeToTriangles()
    nets.SmoothingOff()  # Laplacian: shrinks small structures (module docstring)
    nets.Update()
    out = nets.GetOutput()
    if out.GetNumberOfCells() == 0:
        return {}
    raw = vtk_to_numpy(out.GetPoints().GetData())  # index space, origin 0: cell centres (i + 1/2, ...)
    raw = raw[:, ::-1] if mirror else raw
    cell = raw.astype(np.int64)  # floor: the coordinates are positive
    key = (cell[:, 0] * codes.shape[1] + cell[:, 1]) * codes.shape[2] + cell[:, 2]
    _, first, point_of = np.unique(key, return_index=True, return_inverse=True)
    tri = point_of[vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3)]
    tri = tri[:, ::-1] if mirror else tri  # each triangle faces VTK's first label now
    pts = windowed_sinc(raw[first], tri, iterations=TAUBIN_ITERATIONS, pass_band=TAUBIN_PASS_BAND)
    pts = (pts + offset) @ affine[:3, :3].T + affine[:3, 3]  # index space -> LPS world (any direction matrix)
    sides = vtk_to_numpy(out.GetCellData().GetArray("BoundaryLabels"))
    owner = np.concatenate([sides[:, 0], sides[:, 1]])
    faces = np.concatenate([tri, tri[:, ::-1]])  # reversed for the second label: outward for both
    keep = owner > 0
    return split_by_owner(pts, faces[keep], owner[keep])


def _triangles_only(surf):  # (pyvista.PolyData) -> pyvista.PolyData
    """The surface's proper triangles alone.

    ``clean()`` merges coincident points, which collapses sliver triangles into lines or points; quadric
    decimation refuses any mesh holding such cells, so they are dropped (they have no area to draw).
    """
    import pyvista as pv

    if surf.n_cells == 0 or (surf.is_all_triangles and surf.n_lines == 0 and surf.n_verts == 0):
        return surf
    polys = np.asarray(surf.faces, dtype=np.int64)  # polygons only: [n, i0, ..., n, ...], all n == 3 here
    tri = polys.reshape(-1, 4)[:, 1:] if polys.size else np.empty((0, 3), dtype=np.int64)
    tri = tri[(tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])]
    faces = np.column_stack([np.full(len(tri), 3, dtype=np.int64), tri]).ravel()
    return pv.PolyData(np.asarray(surf.points), faces=faces).clean(polys_to_lines=False)


def _decimate(surface: Surface, target_faces: int, *, vtk: bool = False) -> Surface:
    """Quadric decimation to about ``target_faces`` (never below :data:`MIN_DECIMATE_FACES`).

    ``meshoptimizer``'s ``simplify`` by default (edge collapses onto existing vertices, so the points stay
    on the smoothed surface; no error limit: the face count decides); ``vtk=True`` is VTK's quadric
    decimation (the earlier method's).
    """
    points, faces = surface
    n = len(faces)
    target = max(target_faces, MIN_DECIMATE_FACES)
    if n <= target:
        return surface
    if vtk:
        import pyvista as pv

        surf = pv.PolyData.from_regular_faces(points, faces).decimate(1.0 - target / n, volume_preservation=True)
        return np.asarray(surf.points), np.asarray(surf.regular_faces)
    import meshoptimizer

    indices = np.ascontiguousarray(faces, dtype=np.uint32).ravel()
    kept = np.empty_like(indices)
    n_kept = meshoptimizer.simplify(kept, indices, np.ascontiguousarray(points, dtype=np.float32),
                                    target_index_count=3 * target, target_error=1.0)
    return compact(points, kept[:n_kept].reshape(-1, 3))


def _decimate_all(surfaces: dict[tuple[int, str], Surface], targets: dict[tuple[int, str], int], vtk: bool,
                  threads: int) -> dict[tuple[int, str], Surface]:
    """:func:`_decimate` of every surface to its target; the surface-nets path on up to ``threads`` threads
    (``meshoptimizer`` releases the GIL), largest surfaces first; each result is the same as on one thread."""
    keys = sorted(surfaces, key=lambda k: -len(surfaces[k][1]))
    if vtk or threads <= 1 or len(keys) < 2:
        return {k: _decimate(surfaces[k], targets[k], vtk=vtk) for k in surfaces}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = dict(zip(keys, pool.map(lambda k: _decimate(surfaces[k], targets[k]), keys), strict=True))
    return {k: done[k] for k in surfaces}


def _sided_marching_cubes(
    data: np.ndarray, left: np.ndarray, wanted: list[int], affine: np.ndarray
) -> dict[tuple[int, str], Surface]:
    """Per structure and side: blurred binary mask, flying edges, Taubin smoothing (the earlier method)."""
    objects = ndimage.find_objects(data.astype(np.int32, copy=False))
    surfaces: dict[tuple[int, str], Surface] = {}
    for label in wanted:
        box = objects[label - 1]
        if box is None:
            continue
        lo = np.array([max(s.start - _PAD, 0) for s in box])
        hi = np.array([min(s.stop + _PAD, n) for s, n in zip(box, data.shape, strict=True)])
        crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        mask = data[crop] == label
        side_left = left[crop]
        for side in SIDES:
            part = mask & (side_left if side == "left" else ~side_left)
            if not part.any():
                continue
            # pad so a structure touching the grid's edge still gets a closed surface
            padded = np.pad(part, _PAD)
            surf = _surface(padded, lo - _PAD, affine)
            if surf.n_cells:
                surfaces[(label, side)] = (np.asarray(surf.points), np.asarray(surf.regular_faces))
    return surfaces


def _sided_surface_nets(
    data: np.ndarray, left: np.ndarray, inside: np.ndarray, affine: np.ndarray
) -> dict[tuple[int, str], Surface]:
    """Every wanted structure and side (``inside``: their voxels) from one surface-nets pass: each side of a
    label gets its own code (``2 * label - 1`` left, ``2 * label`` right), so the two halves of a structure
    are two closed surfaces."""
    if not inside.any():
        return {}
    box = [np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    lo = np.array([b[0] for b in box])
    crop = tuple(slice(int(b[0]), int(b[-1]) + 1) for b in box)
    order = "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"  # as the labels: no transpose
    codes = np.zeros(tuple(b[-1] - b[0] + 1 + 2 * _PAD for b in box), np.uint16, order=order)  # background all round,
    inner = tuple(slice(_PAD, _PAD + c.stop - c.start) for c in crop)  # so a structure at the edge still closes
    np.multiply(data[crop], 2, out=codes[inner], dtype=np.uint16, casting="unsafe")
    codes[inner] -= left[crop]
    codes[inner] *= inside[crop]
    by_code = _surface_nets(codes, lo - _PAD, affine)
    return {((code + 1) // 2, "left" if code % 2 else "right"): surf for code, surf in by_code.items()}


def _left_of(labels: Volume, midline: float) -> np.ndarray:
    """``world_x(labels) > midline`` (LPS x grows towards the patient's left, :mod:`engine.imaging.measure`);
    when x varies along the first grid axis alone, a broadcast view of one column, the same values."""
    m = labels.direction * np.asarray(labels.spacing)
    if m[0, 1] != 0 or m[0, 2] != 0:
        return world_x(labels) > midline
    x = np.float32(labels.origin[0]) + (m[0, 0] * np.arange(labels.shape[0], dtype=np.float32))
    return np.broadcast_to((x > midline)[:, None, None], labels.shape)


def _present_labels(data: np.ndarray) -> list[int]:
    """The positive values in an integer label map, ascending (a bincount: no sort of the whole volume)."""
    if data.size == 0:
        return []
    if data.dtype not in (np.uint8, np.uint16) and (int(data.min()) < 0 or int(data.max()) > 65535):
        return [int(v) for v in np.unique(data) if v > 0]
    return [int(v) for v in np.flatnonzero(np.bincount(data.ravel(order="K"))) if v > 0]


def build_meshes(
    labels: Volume,
    *,
    face_budget: int = DEFAULT_FACE_BUDGET,
    labels_wanted: tuple[int, ...] | None = None,
    midline: float | None = None,
    left: np.ndarray | None = None,
    method: str = DEFAULT_MESH_METHOD,
    threads: int = 1,
) -> SceneMeshes:
    """Surfaces of every structure present in ``labels``, split left/right, the scene within ``face_budget``.

    ``midline``: the mid-sagittal ``x`` (LPS mm); estimated with :func:`engine.imaging.measure.midline_x` when
    ``None``. ``left``: a boolean mask on the label grid, True on the patient's left, that replaces the midline
    split (label maps whose values carry their side); the scene then records ``midline_source`` "left mask"
    (and ``midline`` if given, else NaN). Raises ``ValueError`` for a non-positive budget or a ``left`` mask of
    another shape, ``TypeError`` for a non-integer label map or a non-boolean ``left``. ``method``: one of
    :data:`MESH_METHODS` (module docstring). ``threads``: how many surfaces the surface-nets path decimates
    at once (a worker's share of the cores, ``engine.service.pipeline.worker_threads``); the scene is the
    same for any number.
    """
    if method not in MESH_METHODS:
        raise ValueError(f"method must be one of {MESH_METHODS}, found {method!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, found {threads!r}")
    if isinstance(face_budget, bool) or not isinstance(face_budget, int) or face_budget <= 0:
        raise ValueError(f"face_budget must be a positive integer, found {face_budget!r}")
    data = np.asarray(labels.data)
    if not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"a label map must hold integers, found dtype {data.dtype}")
    if left is not None:
        left = np.asarray(left)
        if left.dtype != np.bool_:
            raise TypeError(f"left must be a boolean mask, found dtype {left.dtype}")
        if left.shape != data.shape:
            raise ValueError(f"left mask shape {left.shape} differs from the label map's {data.shape}")
        source = "left mask"
        midline = float("nan") if midline is None else midline
    else:
        source = "given"
        if midline is None:
            midline, source = midline_x(labels)
        left = _left_of(labels, midline)
    present = _present_labels(data)
    wanted = present if labels_wanted is None else [v for v in present if v in set(labels_wanted)]
    if method == "surface-nets":
        inside = data > 0 if wanted == present else np.isin(data, wanted)
        surfaces = _sided_surface_nets(data, left, inside, labels.affine)
    else:
        surfaces = _sided_marching_cubes(data, left, wanted, labels.affine)
    vtk = method == "marching-cubes"  # the earlier method whole, VTK's decimation included
    total = sum(len(f) for _, f in surfaces.values())
    if total > face_budget:
        share = face_budget / total  # every surface keeps the same share of its faces
        surfaces = _decimate_all(surfaces, {k: int(len(s[1]) * share) for k, s in surfaces.items()}, vtk, threads)
        total = sum(len(f) for _, f in surfaces.values())
        if total > face_budget:  # small surfaces were kept whole: take the excess from the large ones
            big = {k: s for k, s in surfaces.items() if len(s[1]) > MIN_DECIMATE_FACES}
            excess = total - face_budget
            big_total = sum(len(f) for _, f in big.values())
            surfaces.update(_decimate_all(
                big, {k: int(len(s[1]) * (1.0 - excess / big_total) * 0.97) for k, s in big.items()}, vtk, threads))
    meshes = {k: Mesh(k[0], k[1], np.asarray(p, dtype=np.float32), np.asarray(f, dtype=np.int32).reshape(-1, 3))
              for k, (p, f) in surfaces.items()}
    scene = SceneMeshes(meshes, float(midline), source)
    if scene.n_faces > face_budget:
        raise MeshError(f"scene has {scene.n_faces} faces after decimation, above the budget of {face_budget}")
    return scene


def save_meshes(scene: SceneMeshes, path: str | os.PathLike[str]) -> Path:
    """Write ``scene`` as one compressed ``.npz`` (``v_<label>_<side>``, ``f_<label>_<side>``, ``meta``)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"meshes are saved as .npz, found {path.name!r}")
    arrays: dict[str, np.ndarray] = {}
    for (label, side), m in scene.meshes.items():
        arrays[f"v_{label}_{side}"] = m.vertices.astype(np.float32, copy=False)
        arrays[f"f_{label}_{side}"] = m.faces.astype(np.int32, copy=False)
    meta = {"format_version": FORMAT_VERSION, "midline_x_mm": scene.midline_x_mm,
            "midline_source": scene.midline_source, "n_faces": scene.n_faces}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path, suffix=".tmp.npz") as tmp:  # savez appends .npz to any other name
        np.savez_compressed(tmp, **arrays)
    return path


def load_meshes(path: str | os.PathLike[str]) -> SceneMeshes:
    """Read a scene written by :func:`save_meshes`; ``MeshError`` names a file that is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise MeshError(f"cannot read meshes from {path}: {err}") from err
    if "meta" not in files:
        raise MeshError(f"{path} is not an MSMV mesh file (no 'meta' entry; found {sorted(files)[:5]})")
    meta = json.loads(files.pop("meta").tobytes().decode("utf-8"))
    scene = SceneMeshes(midline_x_mm=float(meta.get("midline_x_mm", "nan")),
                        midline_source=str(meta.get("midline_source", "")))
    for key, verts in files.items():
        if not key.startswith("v_"):
            continue
        _, label, side = key.split("_", 2)
        faces = files.get(f"f_{label}_{side}")
        if faces is None:
            raise MeshError(f"{path}: vertices {key} have no faces entry")
        scene.meshes[(int(label), side)] = Mesh(int(label), side, verts, faces)
    return scene
