"""Wide-table rebuild benchmark: the full ``CREATE OR REPLACE TABLE participant_wide`` on a copy of a store.

Copies ``MSMV_HOME``'s store (e.g. one built with ``msmv demo`` into a temporary MSMV_HOME) to a temporary
file, so the store itself is never touched, then times :func:`store.wide.rebuild` (every participant) and
the recomputation of one participant's row (:func:`store.wide.rebuild_from`, as a subject commit does).
Prints JSON lines: participants, each repeat's seconds and the median.

Usage: ``MSMV_HOME=DIR python benchmarks/wide_rebuild.py [--repeats K]``
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

from store import wide  # noqa: E402
from store.home import home as resolve_home  # noqa: E402
from store.metrics import WIDE_TABLE  # noqa: E402


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    home = resolve_home(None)
    with tempfile.TemporaryDirectory(prefix="msmv-wide-bench-") as tmp:
        copy = Path(tmp) / "store.duckdb"
        shutil.copyfile(home.store_db, copy)
        con = duckdb.connect(str(copy))
        n = con.execute(f"SELECT count(*) FROM {WIDE_TABLE}").fetchone()[0]
        full, one = [], []
        eid = con.execute(f"SELECT min(eid) FROM {WIDE_TABLE}").fetchone()[0]
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            wide.rebuild(con)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            wide.rebuild(con, [eid])
            one.append(time.perf_counter() - t0)
        con.close()
    emit(participants=n, full_rebuild_s=[round(t, 3) for t in full], full_rebuild_median_s=round(statistics.median(full), 3))
    emit(participants=n, one_eid_s=[round(t, 4) for t in one], one_eid_median_s=round(statistics.median(one), 4))


if __name__ == "__main__":
    main()
