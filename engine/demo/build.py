"""Build the demo store: simulate, write UKB-style files, import them through the store, publish.

Used by ``msmv demo`` and ``benchmarks/demo_build.py``. The files go to ``MSMV_HOME/demo/`` and are
imported with :class:`store.writer.Writer` exactly as real UK Biobank files would be, with every row
flagged ``simulated``.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from engine.demo.cohort import targets as cal
from engine.demo.cohort.draw import ROWS_PER_PARTICIPANT, SimulatedCohort, simulate_cohort, write_demo_files
from store.errors import StoreError, WriterBusyError
from store.home import Home
from store.importers.report import ImportReport
from store.vocabulary import SIMULATED_KIND
from store.writer import Writer

DEMO_SOURCE = "simulated"
DEMO_FOLDER = "demo"
CHUNK_FOLDER = ".import-chunks"
# One metrics import of all 27M rows at 500,000 participants was OOM-killed at 12 GB resident on the
# 23 GB development machine (store importer + wide rebuild in one transaction); importing at most this
# many participants per transaction bounds the memory. Smaller demos import the file as it is.
METRICS_CHUNK_PARTICIPANTS = 100_000
STAGES: tuple[str, ...] = ("simulate", "write", "phantoms", "import phenotypes", "import metrics", "publish")


class StoreExistsError(StoreError):
    """``msmv demo`` would replace a store that already holds data (pass ``force``)."""


@dataclass
class DemoBuild:
    """What :func:`build_demo` did: sizes, the files, seconds per stage and the import reports."""

    n: int
    seed: int
    men: int
    metric_rows: int
    phenotype_csv: Path
    metrics_parquet: Path
    seconds: dict[str, float] = field(default_factory=dict)
    reports: list[ImportReport] = field(default_factory=list)
    store_version: int = 0
    phantom_packages: list[Path] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def store_exists(home: Home) -> bool:
    """True when ``home`` already has a store database or a published snapshot."""
    snapshots = home.snapshots
    has_snapshots = snapshots.is_dir() and any(snapshots.iterdir())
    return home.store_db.exists() or has_snapshots


def _remove_store(home: Home) -> None:
    """Delete the store database and its snapshots, holding the writer lock while doing it."""
    home.ensure()
    fd = os.open(home.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WriterBusyError(
                f"the MSMV store in {home.root} is being written by another process (lock {home.lock}); "
                "stop it before rebuilding the demo"
            ) from None
        db = home.store_db
        for path in (db, db.with_name(db.name + ".wal")):
            path.unlink(missing_ok=True)
        for path in home.snapshots.iterdir():
            if path.is_file():
                path.unlink()
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _metric_chunks(parquet_path: Path, participants: int) -> Iterator[Path]:
    """The metrics file itself, or temporary files of whole row groups (whole participants) each."""
    source = pq.ParquetFile(parquet_path)
    meta = source.metadata
    rows_per_chunk = participants * ROWS_PER_PARTICIPANT
    if meta.num_rows <= rows_per_chunk:
        yield parquet_path
        return
    folder = parquet_path.parent / CHUNK_FOLDER
    folder.mkdir(exist_ok=True)
    groups: list[int] = []
    rows = 0
    part = 0
    for index in range(meta.num_row_groups):
        groups.append(index)
        rows += meta.row_group(index).num_rows
        if rows >= rows_per_chunk or index == meta.num_row_groups - 1:
            path = folder / f"{parquet_path.stem}-part{part:03d}.parquet"
            pq.write_table(source.read_row_groups(groups), path, compression="zstd")
            yield path
            groups, rows, part = [], 0, part + 1
    if not any(folder.iterdir()):
        folder.rmdir()


def phantom_eids(phenotypes: pd.DataFrame, count: int) -> list[int]:
    """The first participants by eid, alternating women and men, for the demo's phantom subjects."""
    by_sex = {sex: phenotypes.loc[phenotypes["31-0.0"] == sex, "eid"].sort_values().tolist() for sex in (0, 1)}
    picked = [by_sex[i % 2][i // 2] for i in range(count) if i // 2 < len(by_sex[i % 2])]
    return [int(e) for e in picked]


def _add_phantoms(home: Home, cohort: SimulatedCohort, count: int, seed: int) -> list[Path]:
    """Phantom packages for ``count`` simulated participants, each sized from that participant's volumes."""
    from engine.demo.phantom.subject import add_demo_phantoms, volumes_from_metrics

    eids = phantom_eids(cohort.phenotypes, count)
    sex = cohort.phenotypes.set_index("eid")["31-0.0"]
    return add_demo_phantoms(home, count=len(eids), seed=seed, eids=eids,
                             volumes_by_eid={e: volumes_from_metrics(cohort.metrics, e) for e in eids},
                             sex_by_eid={e: int(sex[e]) for e in eids})


def build_demo(
    home: Home,
    n: int = cal.N_PARTICIPANTS,
    seed: int = 0,
    *,
    force: bool = False,
    phantoms: int = 0,
    on_stage: Callable[[str], None] | None = None,
) -> DemoBuild:
    """Simulate ``n`` participants, write the demo files and import them into ``home``'s store.

    Raises
    ------
    StoreExistsError
        ``home`` already has a store and ``force`` is false.

    ``phantoms`` imaging subjects (synthetic UKB Dixon packages sized from simulated participants'
    per-structure volumes) are put in the inbox for the engine to process.
    WriterBusyError
        another process holds the store's writer lock.
    """
    if store_exists(home):
        if not force:
            raise StoreExistsError(
                f"{home.root} already holds an MSMV store ({home.store_db}); the demo would replace it. "
                "Pass --force to delete it and build the demo, or choose another --home"
            )
        _remove_store(home)

    seconds: dict[str, float] = {}

    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name)

    t = time.perf_counter()
    stage("simulate")
    cohort = simulate_cohort(n, seed)
    seconds["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("write")
    csv_path, parquet_path = write_demo_files(cohort, home.root / DEMO_FOLDER)
    seconds["write"] = time.perf_counter() - t
    build = DemoBuild(
        n=cohort.n,
        seed=seed,
        men=int(cohort.phenotypes["31-0.0"].sum()),
        metric_rows=len(cohort.metrics),
        phenotype_csv=csv_path,
        metrics_parquet=parquet_path,
        seconds=seconds,
    )
    if phantoms:
        stage("phantoms")
        t = time.perf_counter()
        build.phantom_packages = _add_phantoms(home, cohort, phantoms, seed)
        seconds["phantoms"] = time.perf_counter() - t
    del cohort  # the store holds it from here; free the frames before the import (27M rows at 500k)

    with Writer(home) as writer:
        t = time.perf_counter()
        stage("import phenotypes")
        build.reports.append(writer.import_phenotypes(csv_path, source=DEMO_SOURCE, simulated=True))
        seconds["import phenotypes"] = time.perf_counter() - t

        t = time.perf_counter()
        stage("import metrics")
        for chunk in _metric_chunks(parquet_path, METRICS_CHUNK_PARTICIPANTS):
            try:
                build.reports.append(writer.import_metrics(chunk, source=DEMO_SOURCE, simulated=True,
                                                           kind=SIMULATED_KIND))
            finally:
                if chunk != parquet_path:
                    chunk.unlink(missing_ok=True)
        seconds["import metrics"] = time.perf_counter() - t

        t = time.perf_counter()
        stage("publish")
        build.store_version = writer.publish(force=True)
        seconds["publish"] = time.perf_counter() - t
    return build
