"""A small published store in a temporary MSMV_HOME, built the way ``msmv demo`` builds one:
the seeded simulated cohort written as UKB-style files and imported through the store Writer."""

from __future__ import annotations

from pathlib import Path

from engine.simulate import simulate_cohort, write_demo_files
from store.home import Home, home
from store.writer import Writer


def build_demo_store(root: Path, n: int = 300, seed: int = 11) -> Home:
    h = home(root).ensure()
    cohort = simulate_cohort(n=n, seed=seed)
    csv, parquet = write_demo_files(cohort, root / "demo")
    with Writer(h) as w:
        w.import_phenotypes(csv, source="simulated", simulated=True)
        w.import_metrics(parquet, source="simulated", simulated=True)
        w.publish(force=True)
    return h
