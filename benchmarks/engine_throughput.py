"""Engine throughput: subjects per hour with the demo checkpoint, 1 and 2 local workers and a 2-worker
Dask LocalCluster, plus the share of time per stage. Prints JSON lines.

    .venv/bin/python -m benchmarks.engine_throughput [--subjects 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.phantom.subject import add_demo_phantoms  # noqa: E402
from engine.service.coordinator import Engine  # noqa: E402
from engine.service.jobs import stage_timings  # noqa: E402
from store.home import home as make_home  # noqa: E402
from store.reader import Reader  # noqa: E402


def run_config(name: str, packages: list[Path], base: Path, **engine_kw) -> dict:
    h = make_home(base / name).ensure()
    for p in packages:
        shutil.copy(p, h.inbox / p.name)
    t0 = time.perf_counter()
    stats = Engine(h, **engine_kw).run(once=True)
    wall = time.perf_counter() - t0
    with Reader(h) as r:
        timings = stage_timings(r.jobs(status="done"))
    shares = (timings.groupby("stage")["seconds"].sum() / timings["seconds"].sum()).round(3).to_dict()
    return {"bench": "engine", "config": name, "subjects": len(packages), "done": stats.done,
            "failed": stats.failed, "wall_s": round(wall, 1),
            "subjects_per_hour": round(3600 * stats.done / wall, 1) if stats.done else 0.0,
            "mean_subject_s": round(sum(stats.seconds) / max(len(stats.seconds), 1), 1), "stage_share": shares}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default="local-1,local-2,dask-2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="msmv-bench-engine-") as tmp:
        base = Path(tmp)
        src = make_home(base / "src").ensure()
        t0 = time.perf_counter()
        packages = add_demo_phantoms(src, count=args.subjects, seed=args.seed, progress=False)
        print(json.dumps({"bench": "engine", "step": "phantoms", "subjects": args.subjects,
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        for name in args.configs.split(","):
            if name == "dask-2":
                from distributed import LocalCluster

                with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
                    out = run_config(name, packages, base, scheduler=cluster.scheduler_address)
            else:
                out = run_config(name, packages, base, workers=int(name.split("-")[1]))
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
