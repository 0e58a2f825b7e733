"""Wide-table rebuild benchmark: the full ``CREATE OR REPLACE TABLE participant_wide`` on a copy of a store.

Copies the store of ``--home`` (or, without it, of a demo store of ``--n`` participants built here with
``engine.demo.build.build_demo``, as ``msmv demo``) to a temporary file, so no store is touched, then times :func:`store.wide.rebuild` (every participant) and
the recomputation of one participant's row (:func:`store.wide.rebuild` with one eid, as a subject commit
does). Prints JSON lines: participants, each repeat's wall-clock seconds and the median, and the median CPU
seconds of this process (all DuckDB threads), which shared cores disturb less than the wall clock.

Usage: ``python -m benchmarks.wide_rebuild [--home DIR | --n N] [--repeats K]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.demo.build import build_demo  # noqa: E402
from engine.demo.cohort.targets import N_PARTICIPANTS  # noqa: E402
from store import wide  # noqa: E402
from store.home import home as resolve_home  # noqa: E402
from store.metrics import WIDE_TABLE  # noqa: E402


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="an MSMV_HOME whose store to copy (default: build a demo store)")
    ap.add_argument("--n", type=int, default=N_PARTICIPANTS, help="participants of the demo store built without --home")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="msmv-wide-bench-") as tmp:
        home = resolve_home(args.home) if args.home else resolve_home(Path(tmp) / "demo")
        if args.home is None:
            t0 = time.perf_counter()
            build_demo(home, args.n, seed=0)
            emit(what="demo_store", participants=args.n, build_s=round(time.perf_counter() - t0, 1))
        copy = Path(tmp) / "store.duckdb"
        shutil.copyfile(home.store_db, copy)
        con = duckdb.connect(str(copy))
        n = con.execute(f"SELECT count(*) FROM {WIDE_TABLE}").fetchone()[0]
        eid = con.execute(f"SELECT min(eid) FROM {WIDE_TABLE}").fetchone()[0]
        runs: dict[str, list[tuple[float, float]]] = {"full_rebuild": [], "one_eid": []}
        for _ in range(args.repeats):
            for name, eids in (("full_rebuild", None), ("one_eid", [eid])):
                t0, c0 = time.perf_counter(), time.process_time()
                wide.rebuild(con, eids)
                runs[name].append((time.perf_counter() - t0, time.process_time() - c0))
        con.close()
    for name, times in runs.items():
        emit(what=name, participants=n, wall_s=[round(w, 3) for w, _ in times],
             wall_median_s=round(statistics.median(w for w, _ in times), 3),
             cpu_median_s=round(statistics.median(c for _, c in times), 3))


if __name__ == "__main__":
    main()
