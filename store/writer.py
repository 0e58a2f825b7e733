"""The store's single writer (docs/architecture.md, "The store protocol").

``with Writer(home) as w:`` takes an exclusive OS lock on ``home.lock`` (``flock``), opens the
writer's DuckDB file, applies migrations and keeps the wide table current. Every change runs in one
transaction, bumps ``store_version`` and is followed by a (rate-limited) :meth:`Writer.publish`, so
readers only ever see whole batches. Leaving the ``with`` block publishes anything still pending.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from store import compartments as compartment_rows
from store import schema, settings, snapshot, wide, withdrawals
from store.errors import DiskFullError, StoreError, WriterBusyError
from store.fields import load_mapping, mapping_origin
from store.files import sha256_file
from store.home import Home
from store.home import home as resolve_home
from store.importers.phenotypes import import_phenotypes
from store.importers.report import ImportReport
from store.importers.structure_metrics import import_structure_metrics
from store.structures import SIDES, structure
from store.version import code_version
from store.vocabulary import (
    ENGINE_KIND,
    FIRST_IMAGING_INSTANCE,
    JOB_STATUSES,
    kind_of_source,
)
from store.withdrawals import WithdrawalReport

_JOB_FIELDS: tuple[str, ...] = ("eid", "instance", "input_path", "input_sha256", "status", "stage", "attempts",
                                "error", "seconds", "timings")  # fmt: skip
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Writer:
    """The one process allowed to change the store. Use as a context manager."""

    def __init__(self, home: Home | str | os.PathLike[str] | None = None) -> None:
        self.home = home if isinstance(home, Home) else resolve_home(home)
        self._lock_fd: int | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._published_version = -1
        self._last_publish = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Writer:
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the error that ended the block is the one to report
            pass  # (a publish after a full disk fails the same way; the lock is released regardless)

    def open(self) -> None:
        self.home.ensure()
        self._acquire_lock()
        try:
            self._con = self._connect()
            schema.migrate(self._con)
            rebuilt = self._in_transaction(lambda con: wide.ensure(con))
            current = snapshot.current_path(self.home, missing_ok=True)
            if current is not None and current.name == snapshot.snapshot_name(self.version):
                if rebuilt:  # a new metric or cohort visit setting: readers must get a new version
                    self._in_transaction(lambda con: None, bump=True)
                else:
                    self._published_version = self.version
        except BaseException:
            self.close(publish=False)
            raise

    def close(self, publish: bool = True) -> None:
        try:
            if self._con is not None and publish and self.version != self._published_version:
                self.publish(force=True)
        finally:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._release_lock()

    def _acquire_lock(self) -> None:
        fd = os.open(self.home.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise WriterBusyError(
                f"the MSMV store in {self.home.root} is being written by {who} (lock {self.home.lock}); "
                "wait for it to finish or stop it (only one writer at a time)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError("the writer is not open; use `with Writer(home) as w:`")
        return self._con

    @property
    def version(self) -> int:
        """The store version: a counter bumped by every committed change."""
        return int(self.con.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()[0])

    # -- transactions ----------------------------------------------------------------------------
    def _in_transaction(self, work: Callable[[duckdb.DuckDBPyConnection], T], *, bump: bool = False) -> T:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            result = work(con)
            if bump:
                con.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE key = 'store_version'"
                )
            con.execute("COMMIT")
        except BaseException as err:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:  # a failed COMMIT has already ended (or invalidated) the transaction
                pass
            if _disk_full(err):
                raise DiskFullError(
                    f"the disk holding the MSMV store ({self.home.store_db.parent}) is full (No space left on "
                    "device): nothing of this change was stored and readers keep the last published "
                    "snapshot; free some space and run it again") from err
            raise
        return result

    @contextmanager
    def _batch(self) -> Iterator[None]:
        yield
        self.publish()

    def _new_provenance(self, con: duckdb.DuckDBPyConnection, prov: dict[str, Any]) -> int:
        """Insert a provenance row (or find the identical one) and return its id."""
        kind = str(prov.get("kind") or "unknown")
        values = [kind, prov.get("input_sha256"), prov.get("model_sha256"),
                  prov.get("code_version") or code_version()]  # fmt: skip
        details = json.dumps(prov.get("details"), sort_keys=True, default=str) if prov.get("details") else None
        row = con.execute(
            """SELECT id FROM provenance WHERE kind = ? AND input_sha256 IS NOT DISTINCT FROM ?
            AND model_sha256 IS NOT DISTINCT FROM ? AND code_version IS NOT DISTINCT FROM ?
            AND details IS NOT DISTINCT FROM ?""",
            [*values, details],
        ).fetchone()
        if row:
            return int(row[0])
        new_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM provenance").fetchone()[0]
        con.execute("INSERT INTO provenance VALUES (?, ?, ?, ?, ?, ?, ?)", [new_id, *values, details, _now()])
        return int(new_id)

    def _error_file(self, report: ImportReport) -> None:
        """Write the error report next to the store, named by the store version the import made."""
        if report.n_errors:
            path = self.home.store_db.parent / f"import-errors-v{report.store_version}-{report.kind}-{report.path.stem}.csv"
            report.errors.to_csv(path, index=False)
            report.error_path = path

    # -- imports ---------------------------------------------------------------------------------
    def import_phenotypes(
        self,
        path: str | os.PathLike[str],
        mapping: str | os.PathLike[str] | dict | None = None,
        source: str = "ukb",
        simulated: bool = False,
    ) -> ImportReport:
        """Upsert participants from a UKB phenotype CSV/TSV; see :mod:`store.importers.phenotypes`.

        ``mapping`` is a TOML file or dict like ``store/fields.toml``; default: ``$MSMV_HOME/fields.toml``
        if present, else the shipped file.
        """
        started = time.perf_counter()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such phenotype file: {path}")
        if mapping is None and (self.home.root / "fields.toml").is_file():
            mapping = self.home.root / "fields.toml"
        fields = load_mapping(mapping)
        origin = mapping_origin(mapping)

        def work(con: duckdb.DuckDBPyConnection) -> ImportReport:
            report, affected = import_phenotypes(
                con, path, fields, source=source, simulated=simulated, mapping_origin=origin
            )
            wide.rebuild_from(con, affected)
            return report

        report = self._in_transaction(work, bump=True)
        return self._finish(report, started)

    def import_metrics(
        self, path: str | os.PathLike[str], source: str = "ukb", simulated: bool = False, kind: str | None = None
    ) -> ImportReport:
        """Upsert per-structure metrics from CSV/Parquet; see :mod:`store.importers.structure_metrics`.

        ``kind`` is the source's kind (:data:`store.vocabulary.SOURCE_KINDS`); default ``simulated`` for
        simulated values, else ``metrics-import``.
        """
        started = time.perf_counter()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such metrics file: {path}")
        digest = sha256_file(path)

        def work(con: duckdb.DuckDBPyConnection) -> ImportReport:
            prov = self._new_provenance(con, {"kind": "import-metrics", "input_sha256": digest,
                                              "details": {"file": path.name}})  # fmt: skip
            report, affected = import_structure_metrics(
                con, path, source=source, simulated=simulated, provenance_id=prov, kind=kind
            )
            wide.rebuild_from(con, affected)
            return report

        report = self._in_transaction(work, bump=True)
        return self._finish(report, started)

    def _finish(self, report: ImportReport, started: float) -> ImportReport:
        report.store_version = self.version
        self._error_file(report)
        self.publish(force=True)
        report.seconds = time.perf_counter() - started
        return report

    # -- engine results --------------------------------------------------------------------------
    def commit_subject(
        self,
        eid: int,
        metrics: list[dict[str, Any]],
        artifacts: list[dict[str, Any]],
        provenance: dict[str, Any],
        job_id: str | None = None,
        *,
        instance: int = FIRST_IMAGING_INSTANCE,
        source: str = "msmv",
        simulated: bool = False,
        compartments: list[dict[str, Any]] | None = None,
        kind: str | None = None,
    ) -> int:
        """Store one subject's results in one transaction (all or nothing); return the provenance id.

        ``metrics``: dicts with ``structure`` (label or name), ``side`` and ``volume_cm3``
        (``fat_fraction`` optional). ``artifacts``: dicts with ``kind``, ``path`` and ``sha256``.
        ``provenance``: ``kind``, ``input_sha256``, ``model_sha256``, ``code_version``, ``details``.
        ``compartments``: dicts with ``compartment``, ``side``, ``volume_cm3`` (``fat_fraction`` optional) for a
        source that labels whole compartments (:mod:`store.compartments`); they replace the source's earlier ones.
        ``instance`` is the UK Biobank imaging visit (2 first, 3 repeat): each visit keeps its own rows.
        ``kind`` is the source's kind (:data:`store.vocabulary.SOURCE_KINDS`; default ``simulated`` for
        simulated values, else ``engine``): every source keeps its own metric set and artifacts beside the
        others', and the MSMV_SOURCE_PREFERENCE order of kinds picks the default one. Committing the same
        eid, instance and source again replaces that source's rows and its artifacts of the same kinds. The job ``job_id``, if given, is marked done in the same transaction. A
        withdrawn participant is refused (:class:`store.errors.WithdrawnError`) and nothing is stored.
        """
        rows = _metric_rows(eid, metrics)
        kind = kind_of_source(kind, simulated=simulated, otherwise=ENGINE_KIND)
        comp_rows = compartment_rows.rows(compartments or [])
        arts = _artifact_rows(artifacts)
        instance = _instance(instance)

        def work(con: duckdb.DuckDBPyConnection) -> int:
            withdrawals.refuse(con, eid)
            prov = self._new_provenance(con, provenance)
            key = [eid, instance, source]
            con.execute("DELETE FROM structure_metrics WHERE eid = ? AND instance = ? AND source = ?", key)
            con.executemany(
                """INSERT INTO structure_metrics (eid, label, side, volume_cm3, fat_fraction, source, provenance_id,
                instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [(eid, lab, side, vol, ff, source, prov, instance) for lab, side, vol, ff in rows],
            )
            compartment_rows.replace(con, eid, instance, source, comp_rows, prov)
            con.execute("DELETE FROM metric_sets WHERE eid = ? AND instance = ? AND source = ?", key)
            con.execute(
                """INSERT INTO metric_sets (eid, source, source_kind, simulated, provenance_id, written_at, instance)
                VALUES (?, ?, ?, ?, ?, ?, ?)""", [eid, source, kind, simulated, prov, _now(), instance])
            for art_kind, path, sha in arts:
                con.execute("DELETE FROM artifacts WHERE eid = ? AND instance = ? AND kind = ? AND source = ?",
                            [eid, instance, art_kind, source])
                con.execute(
                    """INSERT INTO artifacts (eid, kind, path, sha256, provenance_id, created, instance, source)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)""", [eid, art_kind, path, sha, prov, _now(), instance, source])
            if job_id is not None:
                self._set_job(con, job_id, {"status": "done", "eid": eid, "instance": instance})
            wide.rebuild(con, [eid])
            return prov

        with self._batch():
            return self._in_transaction(work, bump=True)

    # -- jobs ------------------------------------------------------------------------------------
    def add_job(
        self,
        input_path: str | os.PathLike[str],
        eid: int | None = None,
        input_sha256: str | None = None,
        job_id: str | None = None,
        instance: int | None = None,
    ) -> str:
        """Queue a job; return its id (a new UUID unless given).

        ``instance`` is the imaging visit the package holds (from its UK Biobank file name); with an
        eid and no instance the job is the first imaging visit's.
        """
        job_id = job_id or uuid.uuid4().hex
        now = _now()
        if instance is None and eid is not None:
            instance = FIRST_IMAGING_INSTANCE
        instance = None if instance is None else _instance(instance)

        def work(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(
                """INSERT INTO jobs (job_id, eid, instance, input_path, input_sha256, status, attempts, created,
                updated) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?)""",
                [job_id, eid, instance, str(input_path), input_sha256, now, now],
            )

        with self._batch():
            self._in_transaction(work, bump=True)
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Change a job's ``status``, ``stage``, ``attempts``, ``error``, ``seconds``, ``timings`` (dict) or eid."""
        with self._batch():
            self._in_transaction(lambda con: self._set_job(con, job_id, fields), bump=True)

    def _set_job(self, con: duckdb.DuckDBPyConnection, job_id: str, fields: dict[str, Any]) -> None:
        unknown = sorted(set(fields) - set(_JOB_FIELDS))
        if unknown:
            raise ValueError(f"unknown job field(s) {unknown}; expected some of {', '.join(_JOB_FIELDS)}")
        if "status" in fields and fields["status"] not in JOB_STATUSES:
            raise ValueError(f"job status must be one of {', '.join(JOB_STATUSES)}, found {fields['status']!r}")
        values = dict(fields)
        if "timings" in values and not isinstance(values["timings"], str | None):
            values["timings"] = json.dumps(values["timings"], sort_keys=True)
        sets = ", ".join(f"{k} = ?" for k in values)
        found = con.execute(
            f"UPDATE jobs SET {sets}{', ' if sets else ''}updated = ? WHERE job_id = ?",
            [*values.values(), _now(), job_id],
        ).fetchone()[0]
        if found == 0:
            raise StoreError(f"no job with id {job_id!r}")

    def jobs(self) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM jobs ORDER BY created, job_id").df()

    # -- withdrawals -----------------------------------------------------------------------------
    def is_withdrawn(self, eid: int) -> bool:
        """True when ``eid`` withdrew: nothing of theirs may be stored (the engine checks before it does)."""
        return withdrawals.withdrawn_on(self.con, eid) is not None

    def withdrawn(self) -> pd.DataFrame:
        """The recorded withdrawals: ``eid`` and ``withdrawn_on`` (all that is kept of them)."""
        return self.con.execute("SELECT eid, withdrawn_on FROM withdrawals ORDER BY eid").df()

    def withdraw(self, eids: list[int], *, problems: list[str] | None = None) -> WithdrawalReport:
        """Remove every trace of participants who withdrew and record the withdrawals (eid and date).

        Their rows go in one transaction, then their files (:func:`store.withdrawals.remove_files`) and
        error-report rows; the store file is rewritten, since DuckDB leaves deleted values in freed
        pages, and re-published as the only snapshot (older snapshots still hold them). A reader
        with an older snapshot open keeps its open file until it closes.
        """
        report = WithdrawalReport(eids=sorted({int(e) for e in eids}), problems=list(problems or []))
        for eid in report.eids:
            if eid <= 0:
                raise ValueError(f"eid must be a positive integer, found {eid}")
        today = _now().date()
        report.rows, named = self._in_transaction(
            lambda con: withdrawals.remove_rows(con, report.eids, today), bump=True)
        report.files = withdrawals.remove_files(self.home, report.eids, named)
        report.error_reports = withdrawals.scrub_error_reports(self.home, report.eids)
        self._compact()
        older = [p for _, p in snapshot.available(self.home)]
        self.publish(force=True)
        current = snapshot.current_path(self.home)
        for path in older:
            if path != current:
                path.unlink(missing_ok=True)
                report.snapshots_removed += 1
        report.store_version = self.version
        return report

    def _compact(self) -> None:
        """Rewrite the store file into a fresh one (``COPY FROM DATABASE``) and swap it in: a deleted
        row's values stay in DuckDB's freed blocks until overwritten, and withdrawn data must not."""
        con = self.con
        con.execute("CHECKPOINT")
        name = con.execute("SELECT current_database()").fetchone()[0]
        fresh = self.home.store_db.with_name(f".{self.home.store_db.name}.compact.{os.getpid()}")
        fresh.unlink(missing_ok=True)
        try:
            con.execute("ATTACH ? AS _compact", [str(fresh)])
            con.execute(f'COPY FROM DATABASE "{name}" TO _compact')
            con.execute("DETACH _compact")
            con.close()
            self._con = None
            os.replace(fresh, self.home.store_db)
        finally:
            fresh.unlink(missing_ok=True)
            if self._con is None:
                self._con = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        memory = settings.get("MSMV_STORE_MEMORY")  # DuckDB would take 80 % of RAM
        return duckdb.connect(str(self.home.store_db), config={"memory_limit": memory})

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, force: bool = False) -> int:
        """Publish a read snapshot of the current version if it changed; return the published version.

        Without ``force`` at most one publish per ``MSMV_PUBLISH_INTERVAL_S`` seconds (each copies the
        whole file); a skipped publish happens on a later call or when the writer closes.
        """
        version = self.version
        if version == self._published_version:
            return version
        if not force and time.monotonic() - self._last_publish < settings.get("MSMV_PUBLISH_INTERVAL_S"):
            return self._published_version
        try:
            self.con.execute("CHECKPOINT")
            snapshot.install(self.home, self.home.store_db, version)  # atomic: the old snapshot stays
        except (duckdb.Error, OSError) as err:
            if not _disk_full(err):
                raise
            raise DiskFullError(
                f"the disk holding the MSMV store ({self.home.store_db.parent}) is full (No space left on "
                f"device): version {version} is stored but not published, so readers keep the last "
                "published snapshot; free some space and it is published on the next write") from err
        self._published_version = version
        self._last_publish = time.monotonic()
        return version


def _disk_full(err: BaseException) -> bool:
    """True for a write that failed because the disk is full (DuckDB reports it in its message only)."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    return isinstance(err, duckdb.Error) and "No space left on device" in str(err)


def _metric_rows(eid: int, metrics: list[dict[str, Any]]) -> list[tuple[int, str, float, float | None]]:
    """Validate engine metric dicts before the transaction starts (TypeError/ValueError on bad input)."""
    if isinstance(eid, bool) or not isinstance(eid, int) or eid <= 0:
        raise ValueError(f"eid must be a positive integer, found {eid!r}")
    out, seen = [], set()
    for i, m in enumerate(metrics):
        try:
            s = structure(m["structure"])
            side = str(m["side"]).strip().lower()
            side = {"l": "left", "r": "right"}.get(side, side)
            vol = float(m["volume_cm3"])
            ff = m.get("fat_fraction")
            ff = None if ff is None else float(ff)
        except KeyError as err:
            raise ValueError(f"metrics[{i}] lacks {err}; expected structure, side, volume_cm3") from err
        if side not in SIDES:
            raise ValueError(f"metrics[{i}]: side must be left or right, found {m['side']!r}")
        if not vol >= 0:
            raise ValueError(f"metrics[{i}]: volume_cm3 must be >= 0, found {vol}")
        if ff is not None and not 0.0 <= ff <= 1.0:
            raise ValueError(f"metrics[{i}]: fat_fraction must be within 0-1, found {ff}")
        if (s.label, side) in seen:
            raise ValueError(f"metrics[{i}]: {s.key} {side} given twice")
        seen.add((s.label, side))
        out.append((s.label, side, vol, ff))
    return out


def _instance(instance: int) -> int:
    if isinstance(instance, bool) or not isinstance(instance, int) or instance < 0:
        raise ValueError(f"instance must be a UK Biobank assessment instance (an integer >= 0), found {instance!r}")
    return instance


def _artifact_rows(artifacts: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    out = []
    for i, a in enumerate(artifacts):
        if "kind" not in a or "path" not in a:
            raise ValueError(f"artifacts[{i}] needs kind and path, found keys {sorted(a)}")
        out.append((str(a["kind"]), str(a["path"]), a.get("sha256")))
    return out
