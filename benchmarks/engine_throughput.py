"""Engine throughput with the demo checkpoint: per-stage seconds, subjects per hour for 1 and 2 local
workers and a 2-worker Dask LocalCluster, the speed-up against the earlier pipeline, and an estimate
(with its arithmetic) for 100,000 subjects on a Dask cluster of N workers. Prints JSON lines, then the
estimate in words.

    .venv/bin/python -m benchmarks.engine_throughput [--subjects 2] [--configs local-1,local-2,dask-2]
        [--runtime onnx|torch] [--mesh surface-nets|marching-cubes] [--baseline] [--cluster 10,50,200]

``--runtime`` and ``--mesh`` choose this run's pipeline (defaults: the engine's, ONNX Runtime and surface
nets); ``--baseline`` also runs the earlier choices (``--runtime torch --mesh marching-cubes``, one
thread per worker as MSMV_ENGINE_THREADS was) with one local worker on the same packages, so one run
prints the speed-up (the in-memory hand-over between stages and the one-pass stray removal are not
switchable, so the baseline has them too: the speed-up understates the whole change). Every configuration gets its own MSMV_HOME and the same packages; the ONNX export
is made once before timing (a home exports a checkpoint once, ever). ``mean_subject_s`` is the sum of
one subject's stage seconds as the engine records them (the steady state); ``wall_s`` also holds
starting the worker processes (imports), which a long run pays once. On a shared machine the figures
are noisy: ``load_avg_1m`` says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.phantom.subject import add_demo_phantoms  # noqa: E402
from engine.imaging.mesh import DEFAULT_MESH_METHOD, MESH_METHODS  # noqa: E402
from engine.service.coordinator import Engine  # noqa: E402
from engine.service.jobs import stage_timings  # noqa: E402
from engine.service.pipeline import PipelineOptions  # noqa: E402
from store.home import home as make_home  # noqa: E402
from store.reader import Reader  # noqa: E402

UKB_PARTICIPANTS = 100_000  # imaged UK Biobank participants (issue 16)
STAGES = ("ingest", "fuse", "segment", "measure", "mesh")


def run_config(name: str, packages: list[Path], base: Path, onnx: Path, options: dict, **engine_kw) -> dict:
    """Process ``packages`` in a fresh home under ``base`` with one engine configuration."""
    h = make_home(base / name).ensure()
    if onnx.is_dir():
        shutil.copytree(onnx, h.onnx_cache, dirs_exist_ok=True)
    for p in packages:
        shutil.copy(p, h.inbox / p.name)
    opts = PipelineOptions(home=str(h.root), **options)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    stats = Engine(h, options=opts, **engine_kw).run(once=True)
    wall = time.perf_counter() - t0
    with Reader(h) as r:
        timings = stage_timings(r.jobs(status="done"))
    per_stage = (timings.groupby("stage")["seconds"].mean().reindex(list(STAGES)).round(2).to_dict()
                 if len(timings) else {})
    per_subject = float(timings.groupby("job_id")["seconds"].sum().mean()) if len(timings) else float("nan")
    return {"bench": "engine", "config": name, "runtime": opts.runtime, "mesh": opts.mesh_method,
            "threads": opts.torch_threads or "auto", "subjects": len(packages), "done": stats.done,
            "failed": stats.failed, "wall_s": round(wall, 1),
            "subjects_per_hour_wall": round(3600 * stats.done / wall, 1) if stats.done else 0.0,
            "mean_subject_s": round(per_subject, 2), "stage_s": per_stage,
            "load_avg_1m": round(load, 1)}


def workers_of(name: str) -> int:
    return int(name.split("-")[1])


def steady_rate(result: dict) -> float:
    """Subjects per hour of a configuration at steady state: its workers, each one subject per
    ``mean_subject_s`` (the stage seconds measured with that many workers sharing the machine)."""
    return 3600.0 * workers_of(result["config"]) / result["mean_subject_s"]


def estimate(results: dict[str, dict], cluster: list[int]) -> list[str]:
    """The 100,000-subject estimate in words, with its arithmetic, from the measured per-worker figure."""
    source = results.get("dask-2") or results.get("local-2") or results.get("local-1")
    if source is None or not source["done"]:
        return ["no configuration finished a subject: no estimate"]
    n = workers_of(source["config"])
    per_worker_s = source["mean_subject_s"]  # seconds per subject of one worker while n share 2 cores
    cores_per_worker = max(1, (os.cpu_count() or 2) // n)
    lines = [f"Estimate for {UKB_PARTICIPANTS:,} subjects, from {source['config']}: one worker ({cores_per_worker} "
             f"core(s), {n} workers on this {os.cpu_count()}-core machine) takes {per_worker_s:.1f} s per subject "
             f"= {3600 / per_worker_s:.0f} subjects/hour."]
    for workers in cluster:
        hours = UKB_PARTICIPANTS * per_worker_s / workers / 3600
        lines.append(f"  N = {workers:>4} workers: {UKB_PARTICIPANTS:,} x {per_worker_s:.1f} s / {workers} = "
                     f"{UKB_PARTICIPANTS * per_worker_s / workers:,.0f} s = {hours:,.1f} h ({hours / 24:,.2f} days)")
    lines.append("  Assumes workers like these (same cores, same load, demo checkpoint), packages already on shared "
                 "storage, and the single store writer keeping up (its commit time per subject is not measured "
                 "here); with the full study model the segment stage is benchmarks/full_model.py's instead.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default="local-1,local-2,dask-2")
    ap.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    ap.add_argument("--mesh", choices=MESH_METHODS, default=DEFAULT_MESH_METHOD)
    ap.add_argument("--threads", type=int, default=0, help="threads per worker (0: cores shared among workers)")
    ap.add_argument("--baseline", action="store_true",
                    help="also run the earlier pipeline (torch, marching cubes, 1 thread) on local-1")
    ap.add_argument("--cluster", default="10,50,200", help="worker counts N for the 100k estimate")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="msmv-bench-engine-") as tmp:
        base = Path(tmp)
        src = make_home(base / "src").ensure()
        t0 = time.perf_counter()
        packages = add_demo_phantoms(src, count=args.subjects, seed=args.seed, progress=False)
        print(json.dumps({"bench": "engine", "step": "phantoms", "subjects": args.subjects,
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        onnx = base / "onnx"
        from engine.segmentation.checkpoint import active_checkpoint
        from engine.segmentation.infer import load_segmenter

        load_segmenter(active_checkpoint(src.root), runtime="onnx", onnx_cache=onnx)  # the one-off export
        options = {"runtime": args.runtime, "mesh_method": args.mesh, "torch_threads": args.threads}
        results: dict[str, dict] = {}
        for name in args.configs.split(","):
            if name == "dask-2":
                from distributed import LocalCluster

                with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
                    out = run_config(name, packages, base, onnx, options, scheduler=cluster.scheduler_address)
            else:
                out = run_config(name, packages, base, onnx, options, workers=workers_of(name))
            results[name] = out
            print(json.dumps(out), flush=True)
        if args.baseline:
            earlier = {"runtime": "torch", "mesh_method": "marching-cubes", "torch_threads": 1}
            base_out = run_config("local-1-earlier", packages, base, onnx, earlier, workers=1)
            print(json.dumps(base_out), flush=True)
            now = results.get("local-1")
            if now and now["done"] and base_out["done"]:
                print(json.dumps({"bench": "engine", "speedup_local_1": {
                    "mean_subject_s": [base_out["mean_subject_s"], now["mean_subject_s"]],
                    "x": round(base_out["mean_subject_s"] / now["mean_subject_s"], 2),
                    "stage_x": {s: round(base_out["stage_s"][s] / now["stage_s"][s], 2)
                                for s in STAGES if now["stage_s"].get(s)}}}), flush=True)
        rates = {k: round(steady_rate(v), 1) for k, v in results.items() if v["done"]}
        print(json.dumps({"bench": "engine", "steady_subjects_per_hour": rates}), flush=True)
        print("\n".join(estimate(results, [int(n) for n in args.cluster.split(",")])), flush=True)


if __name__ == "__main__":
    main()
