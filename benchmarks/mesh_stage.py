"""Benchmark: the engine's mesh stage (``engine.imaging.mesh.build_meshes``) on one UKB-size label map.

Times the default method (``--methods surface-nets marching-cubes`` adds the earlier one, ~14 CPU-s a run)
on one label map, methods alternating, and prints per method the median wall and CPU seconds (``time.process_time``) of ``--repeats`` runs, the faces and
vertices of the scene against the face budget, and the surfaces' closure (edges used by one face: cracks;
by more than two: where voxels of one structure touch along an edge). Goal for the default method: well
under 1 s per subject on the 2-core development machine. Wall times swing 1.5-2x there with other work:
read the CPU seconds beside them.

The label map is a NRRD file (``--labels``, e.g. a processed subject's ``labels.nrrd``) or else the truth
labels of a demo phantom on its fused grid (``--seed``; 226 x 176 x 278 voxels at 2.232 x 2.232 x 3 mm).

    .venv/bin/python benchmarks/mesh_stage.py [--labels labels.nrrd | --seed 0] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.imaging.measure import midline_x  # noqa: E402
from engine.imaging.mesh import DEFAULT_FACE_BUDGET, MESH_METHODS, SceneMeshes, build_meshes  # noqa: E402
from engine.imaging.volume import Volume, read_nrrd  # noqa: E402

GOAL_S = 1.0


def _label_map(args: argparse.Namespace) -> Volume:
    if args.labels:
        return read_nrrd(args.labels)
    from engine.demo.phantom.anatomy import sample_anatomy
    from engine.demo.phantom.render import truth_labels

    rng = np.random.default_rng(args.seed)
    return truth_labels(sample_anatomy(rng, sex=int(rng.integers(0, 2)), seed=args.seed))


def _edge_uses(scene: SceneMeshes) -> tuple[int, int]:
    """Edges used by one face and by more than two, over every surface of ``scene``."""
    open_edges = seams = 0
    for m in scene:
        e = np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]), axis=1)
        _, uses = np.unique(e[:, 0].astype(np.int64) * len(m.vertices) + e[:, 1], return_counts=True)
        open_edges += int((uses == 1).sum())
        seams += int((uses > 2).sum())
    return open_edges, seams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", help="a label map (NRRD); default: a demo phantom's truth labels")
    parser.add_argument("--seed", type=int, default=0, help="demo phantom seed (without --labels)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=[MESH_METHODS[0]], choices=MESH_METHODS)
    parser.add_argument("--threads", type=int, default=1, help="build_meshes(threads=...): surfaces decimated at once")
    args = parser.parse_args(argv)
    labels = _label_map(args)
    midline, _ = midline_x(labels)
    print(json.dumps({"grid": list(labels.shape), "spacing_mm": list(labels.spacing),
                      "structures": int(len(np.flatnonzero(np.bincount(labels.data.ravel(order="K")))) - 1)}))
    for method in args.methods:  # warm: numba's cached kernels load, VTK's modules import
        build_meshes(labels, midline=midline, method=method, threads=args.threads)
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in args.methods}
    scenes: dict[str, SceneMeshes] = {}
    for _ in range(args.repeats):
        for method in args.methods:
            wall, cpu = time.perf_counter(), time.process_time()
            scenes[method] = build_meshes(labels, midline=midline, method=method, threads=args.threads)
            times[method].append((time.perf_counter() - wall, time.process_time() - cpu))
    for method in args.methods:
        scene = scenes[method]
        open_edges, seams = _edge_uses(scene)
        wall = statistics.median(t[0] for t in times[method])
        cpu = statistics.median(t[1] for t in times[method])
        print(json.dumps({"method": method, "threads": args.threads, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                          "wall_runs_s": [round(t[0], 3) for t in times[method]],
                          "cpu_runs_s": [round(t[1], 3) for t in times[method]],
                          "surfaces": len(scene), "faces": scene.n_faces, "vertices": scene.n_vertices,
                          "face_budget": DEFAULT_FACE_BUDGET, "open_edges": open_edges, "seam_edges": seams,
                          **({"goal_s": GOAL_S, "goal_met_cpu": cpu < GOAL_S} if method == MESH_METHODS[0] else {})}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
