"""Benchmark: one UKB-size Dixon package → four fused NRRD files, and resampling against scipy.

1. whole subject: ``read_package`` (zip → 4 stations × 4 contrasts), ``fuse`` (numba trilinear onto the
   global grid, overlaps averaged) and ``write_fused`` (four gzip NRRD files), timed separately;
   goal <= 3 s in all on the 2-core development machine;
2. resampling alone: our kernel against ``scipy.ndimage.map_coordinates(order=1)`` doing the same work
   (every station, every contrast, only over the output slices the station can reach, coordinates
   computed once per station and shared by its contrasts, overlaps averaged), as a ratio; goal >= 8x.

The package is a phantom subject (``engine.demo.phantom.subject``: real UKB matrix sizes, noise, 6 stations ×
4 contrasts, ~50 MB zip); without it, the test DICOM factory's package at UKB matrix sizes. Prints JSON lines (seconds = median of ``--repeats``).

    .venv/bin/python benchmarks/fusion.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.imaging.dicom.read import read_package  # noqa: E402
from engine.imaging.fusion.fuse import COVERAGE_EPS, fuse, global_grid, resample_onto, write_fused  # noqa: E402
from engine.imaging.volume import Volume  # noqa: E402
from store.vocabulary import CONTRASTS  # noqa: E402

GOAL_SUBJECT_S = 3.0
GOAL_RATIO = 8.0


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU (all threads of this process) seconds of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def make_package(folder: Path) -> tuple[Path, str]:
    """A UKB-layout zip for one subject: a phantom (``engine.demo.phantom.subject``) if available, else the test factory's."""
    path = folder / "1000001_20201_2_0.zip"
    try:
        from engine.demo.phantom.subject import sample_anatomy, write_ukb_zip
    except ImportError:  # the phantom generator is optional here
        from tests.engine.imaging.dicom.dicom_factory import ukb_size_specs, write_zip

        return write_zip(path, ukb_size_specs(), workdir=folder / "files"), "dicom_factory"
    anatomy = sample_anatomy(np.random.default_rng(0), sex=1)
    return write_ukb_zip(anatomy, 1000001, path, seed=0), "engine.demo.phantom.subject"


def scipy_resample(grid: Volume, stations: Sequence[Sequence[Volume]]) -> list[np.ndarray]:
    """The same resampling with scipy.ndimage.map_coordinates (order 1), for comparison."""
    n_contrasts = len(stations[0])
    acc = np.zeros((n_contrasts, *grid.shape), dtype=np.float32)
    weight = np.zeros(grid.shape, dtype=np.float32)
    inv_grid = np.linalg.inv(grid.affine)
    for vols in stations:
        geo = vols[0]
        n = np.asarray(geo.shape, dtype=float) - 1
        corners = np.array([[a, b, c, 1.0] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
        ks = (corners @ (inv_grid @ geo.affine).T)[:, 2]
        k0, k1 = max(int(np.floor(ks.min())), 0), min(int(np.ceil(ks.max())), grid.shape[2] - 1)
        ijk = np.indices((grid.shape[0], grid.shape[1], k1 - k0 + 1), dtype=np.float64)
        ijk[2] += k0
        m = (np.linalg.inv(geo.affine) @ grid.affine)[:3]
        coords = np.tensordot(m[:, :3], ijk, axes=1) + m[:, 3, None, None, None]
        inside = np.all((coords > -COVERAGE_EPS) & (coords < n[:, None, None, None] + COVERAGE_EPS), axis=0)
        np.clip(coords, 0, n[:, None, None, None], out=coords)
        weight[:, :, k0:k1 + 1] += inside
        for c, vol in enumerate(vols):
            sampled = ndimage.map_coordinates(vol.data, coords, order=1, mode="nearest")
            acc[c, :, :, k0:k1 + 1] += np.where(inside, sampled, 0)
    return [np.divide(a, weight, out=np.zeros_like(a), where=weight > 0) for a in acc]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        zip_path, origin = make_package(folder)
        # warm-up (numba JIT / cache load, imports) so that the timings show steady-state work; CPU
        # seconds are printed too because this machine is shared and wall time depends on its load
        warm = read_package(zip_path)
        fuse(warm, device="cpu")
        read_s, read_cpu = _median_time(lambda: read_package(zip_path), args.repeats)
        package = read_package(zip_path)
        fused = fuse(package, device="cpu")
        resample_s, resample_cpu = _median_time(lambda: fuse(package, device="cpu"), args.repeats)
        write_s, write_cpu = _median_time(lambda: write_fused(fused, folder / "out"), args.repeats)
        grid_vol = next(iter(fused.values()))
        total = read_s + resample_s + write_s
        print(json.dumps({
            "benchmark": "fusion_subject", "source": origin, "zip_mb": round(zip_path.stat().st_size / 1e6, 1),
            "stations": [st.number for st in package.stations], "grid": list(grid_vol.shape),
            "read_s": round(read_s, 3), "resample_s": round(resample_s, 3), "write_s": round(write_s, 3),
            "total_s": round(total, 3), "cpu_s": {"read": round(read_cpu, 3), "resample": round(resample_cpu, 3),
                                                  "write": round(write_cpu, 3)},
            "load_average_1min": round(os.getloadavg()[0], 1), "cores": os.cpu_count(),
            "goal_s": GOAL_SUBJECT_S, "meets_goal": total <= GOAL_SUBJECT_S,
        }))
        stacks = [[st.volumes[c] for c in CONTRASTS] for st in package.stations]
        grid = global_grid([vols[0] for vols in stacks])
        ours = resample_onto(grid, stacks, device="cpu")
        ref = scipy_resample(grid, stacks)
        max_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, ref, strict=True))
        ours_s, ours_cpu = _median_time(lambda: resample_onto(grid, stacks, device="cpu"), args.repeats)
        scipy_s, scipy_cpu = _median_time(lambda: scipy_resample(grid, stacks), args.repeats)
        print(json.dumps({
            "benchmark": "fusion_resample_vs_scipy", "voxels": int(np.prod(grid.shape)), "contrasts": len(CONTRASTS),
            "ours_s": round(ours_s, 4), "scipy_map_coordinates_s": round(scipy_s, 4),
            "ratio": round(scipy_s / ours_s, 1), "cpu_s": {"ours": round(ours_cpu, 3), "scipy": round(scipy_cpu, 3)},
            "load_average_1min": round(os.getloadavg()[0], 1),
            "goal_ratio": GOAL_RATIO, "meets_goal": scipy_s / ours_s >= GOAL_RATIO, "max_abs_difference": max_diff,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
