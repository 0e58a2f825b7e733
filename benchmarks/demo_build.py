"""Seconds to build the demo store (simulate / write / import / publish) at 37,004 and 500,000.

Prints one JSON line per size. Each build goes into a fresh temporary MSMV_HOME that is deleted
afterwards. Usage: ``python -m benchmarks.demo_build [N ...]`` (default: 37004 500000; run as a
module so that ``benchmarks/engine.py`` cannot shadow the ``engine`` package).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time

from engine.demo.build import build_demo
from engine.demo.cohort import targets as cal
from store.home import home

SCALE_N = 500_000  # UK Biobank's full cohort size, the scale benchmark


def _progress(n: int, stage: str, started: float) -> None:
    """A line on stderr as each stage starts, so a run that is killed still shows how far it got."""
    print(
        json.dumps({"n": n, "stage": stage, "at_s": round(time.perf_counter() - started, 2)}),
        file=sys.stderr,
        flush=True,
    )


def run(n: int, seed: int = 0) -> dict[str, object]:
    root = tempfile.mkdtemp(prefix="msmv-demo-bench-")
    try:
        started = time.perf_counter()
        build = build_demo(home(root), n, seed, on_stage=lambda name: _progress(n, name, started))
        wall = time.perf_counter() - started
        store_mb = home(root).store_db.stat().st_size / 1e6
        files_mb = (build.phenotype_csv.stat().st_size + build.metrics_parquet.stat().st_size) / 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "benchmark": "demo_build",
        "n": n,
        "metric_rows": build.metric_rows,
        "seconds": {k: round(v, 2) for k, v in build.seconds.items()},
        "total_s": round(wall, 2),
        "files_mb": round(files_mb, 1),
        "store_mb": round(store_mb, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [cal.N_PARTICIPANTS, SCALE_N]
    for n in sizes:
        print(json.dumps(run(n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
