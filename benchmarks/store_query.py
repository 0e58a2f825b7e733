"""Store benchmark at UK Biobank scale: import, publish and a filtered cohort query.

Builds a synthetic store of ``--participants`` (default 500,000) with 27 structures x 2 sides each
(27M metric rows) from files generated here with numpy, imports them through :class:`store.Writer`,
then prints JSON lines: import times, publish time (median), and the latency (median of several
runs) of the dashboard's filtered cohort query (sex + age range + BMI range) on the snapshot.

Usage: ``python benchmarks/store_query.py [--participants N] [--home DIR] [--repeats K] [--inputs DIR]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.filters import CohortFilter  # noqa: E402
from store.reader import Reader  # noqa: E402
from store.structures import STRUCTURES  # noqa: E402
from store.writer import Writer  # noqa: E402

SEED = 20251123
QUERY = CohortFilter(sex=(0,), age=(60.0, 70.0), bmi=(20.0, 30.0))
NARROW_COLUMNS = ["eid", "sex", "age", "bmi", "tmv_cm3", "tvi", "pa_ratio", "almi", "weak_grip", "sarcopenia"]


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def write_phenotypes(path: Path, n: int, rng: np.random.Generator) -> None:
    eid = np.arange(1_000_001, 1_000_001 + n)
    sex = rng.integers(0, 2, n)
    height = np.where(sex == 1, rng.normal(176, 7, n), rng.normal(163, 6, n)).round(1)
    weight = (height / 100) ** 2 * rng.normal(26.5, 4, n)
    cols = {
        "eid": eid,
        "31-0.0": sex,
        "21003-2.0": rng.integers(45, 83, n),
        "50-2.0": height,
        "21002-2.0": weight.round(1),
        "21001-2.0": (weight / (height / 100) ** 2).round(2),
        "46-2.0": np.where(sex == 1, rng.normal(38, 8, n), rng.normal(24, 5, n)).round(0),
        "47-2.0": np.where(sex == 1, rng.normal(39, 8, n), rng.normal(25, 5, n)).round(0),
        "2296-2.0": rng.integers(1, 4, n),
        "22032-0.0": rng.integers(0, 3, n),
        "54-2.0": rng.choice([11025, 11026, 11027, 11028], n),
        "23250-2.0": rng.normal(3000, 600, n).round(0),  # grams, as UKB exports them
        "23254-2.0": rng.normal(3100, 600, n).round(0),
        "23267-2.0": rng.normal(9500, 1500, n).round(0),
        "23271-2.0": rng.normal(9600, 1500, n).round(0),
    }
    pacsv.write_csv(pa.table(cols), path)


def write_metrics(path: Path, n: int, rng: np.random.Generator) -> None:
    k = len(STRUCTURES) * 2
    labels = np.array([s.label for s in STRUCTURES for _ in (0, 1)], dtype=np.int16)
    sides = np.tile(np.array([0, 1], dtype=np.int8), len(STRUCTURES))
    table = pa.table({
        "eid": np.repeat(np.arange(1_000_001, 1_000_001 + n), k),
        "structure": np.tile(labels, n),
        "side": pa.DictionaryArray.from_arrays(np.tile(sides, n), pa.array(["left", "right"])),
        "volume_cm3": rng.gamma(20.0, 10.0, n * k).round(2),
        "fat_fraction": rng.beta(2, 18, n * k).round(4),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=2_000_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--home", type=Path, help="store folder (default: a temporary one, removed after)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inputs", type=Path, help="keep the generated input files here and reuse them")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="msmv-bench-") as tmp:
        root = args.home or Path(tmp) / "home"
        rng = np.random.default_rng(SEED)
        n = args.participants
        inputs = args.inputs or Path(tmp)
        inputs.mkdir(parents=True, exist_ok=True)
        phen, metrics = inputs / f"phenotypes-{n}.csv", inputs / f"metrics-{n}.parquet"
        if not (phen.exists() and metrics.exists()):
            t = time.perf_counter()
            write_phenotypes(phen, n, rng)
            write_metrics(metrics, n, rng)
            emit(benchmark="store.generate_inputs", participants=n, seconds=round(time.perf_counter() - t, 2))

        with Writer(root) as w:
            rep = w.import_phenotypes(phen)
            emit(benchmark="store.import_phenotypes", rows=rep.rows_imported, errors=rep.n_errors,
                 seconds=round(rep.seconds, 2))  # fmt: skip
            rep = w.import_metrics(metrics)
            emit(benchmark="store.import_metrics", rows=rep.rows_imported, errors=rep.n_errors,
                 seconds=round(rep.seconds, 2))  # fmt: skip
            publish_s = []
            for i in range(3):
                w.add_job(f"/bench/{i}.zip")
                t = time.perf_counter()
                w.publish(force=True)
                publish_s.append(time.perf_counter() - t)
            size_mb = w.home.store_db.stat().st_size / 2**20
            emit(benchmark="store.publish", participants=n, db_mb=round(size_mb, 1),
                 median_s=round(statistics.median(publish_s), 3), runs=[round(s, 3) for s in publish_s])  # fmt: skip

        for label, columns in (("all_columns", None), ("narrow_columns", NARROW_COLUMNS)):
            times, rows = [], 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                with Reader(root) as r:  # open + query + close: what one dashboard load does
                    rows = len(r.participants(QUERY, columns=columns))
                times.append(time.perf_counter() - t)
            emit(benchmark=f"store.cohort_query.{label}", participants=n, filter=QUERY.to_query_params(),
                 rows=rows, columns=len(columns) if columns else "all", median_s=round(statistics.median(times), 3),
                 min_s=round(min(times), 3))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
