"""Read access to the newest published snapshot (never the writer's file).

``Reader(home)`` opens the snapshot named by ``CURRENT`` read-only and keeps that one connection for
its (short) life, so all its answers come from one consistent version even if the writer publishes
meanwhile. All values travel as bound parameters; each statement is interrupted after
``timeout_s`` (default: the ``MSMV_QUERY_TIMEOUT_S`` setting; DuckDB has no statement time limit of its own).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from store import compartments, schema, settings, snapshot
from store.errors import QueryTimeoutError, StoreError
from store.fields import FieldSpec, load_mapping
from store.filters import CohortFilter
from store.home import Home
from store.home import home as resolve_home
from store.metrics import COLUMNS, WIDE_TABLE, current_set_order, kind_rank, wide_select_sql

_NULLABLE = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
             pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}  # fmt: skip


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with the dtypes DuckDB's ``.df()`` gives (nullable ints only where NULLs occur,
    dates as datetime64[us]); 2-6x faster than ``.df()`` for the 150-column wide table."""
    cols = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if col.null_count and col.type in _NULLABLE:
            cols[name] = col.to_pandas(types_mapper=_NULLABLE.get)
        elif pa.types.is_date(col.type):
            cols[name] = col.to_pandas(date_as_object=False).astype("datetime64[us]")
        else:
            cols[name] = col.to_pandas()
    return pd.DataFrame(cols, columns=table.column_names)


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    # DuckDB would take 80 % of RAM per connection; several readers may be open at once.
    memory = settings.get("MSMV_READER_MEMORY")
    return duckdb.connect(str(path), read_only=True, config={"memory_limit": memory})


def _wide_relation(filters: CohortFilter | None) -> tuple[str, list[Any]]:
    """The wide table to read and its parameters: the materialised one (each participant's default metric
    source), or computed on the snapshot for the filter's ``metric_source`` (one full wide computation:
    about as long as a rebuild; the dashboard caches it per snapshot)."""
    if filters is None or filters.metric_source is None:
        return WIDE_TABLE, []
    return f"({wide_select_sql(one_source=True)}) AS by_source", [filters.metric_source]


def _where(alias: str, eids: list[int] | None, source: str | None,
           instance: int | None = None) -> tuple[str, list[Any]]:
    """``WHERE`` clause (empty when unfiltered) and its parameters for rows of ``eids``, ``source`` and
    ``instance`` (each None: any), on columns prefixed with ``alias`` (e.g. ``"m."``)."""
    clauses: list[str] = []
    params: list[Any] = []
    if eids is not None:
        clauses.append(f"{alias}eid IN (SELECT unnest(?::BIGINT[]))")
        params.append([int(e) for e in eids])
    if source is not None:
        clauses.append(f"{alias}source = ?")
        params.append(source)
    if instance is not None:
        clauses.append(f"{alias}instance = ?")
        params.append(int(instance))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


class Reader:
    """Read-only view of one published snapshot. Use as a context manager or call :meth:`close`."""

    def __init__(self, home: Home | str | os.PathLike[str] | None = None, *, timeout_s: float | None = None):
        self.home = home if isinstance(home, Home) else resolve_home(home)
        self.timeout_s: float = settings.get("MSMV_QUERY_TIMEOUT_S") if timeout_s is None else timeout_s
        self.path: Path = snapshot.current_path(self.home)  # raises NoSnapshotError
        try:
            self._con: duckdb.DuckDBPyConnection | None = _connect(self.path)
        except duckdb.IOException:
            # CURRENT moved on and the old file was pruned between reading CURRENT and opening it.
            self.path = snapshot.current_path(self.home)
            self._con = _connect(self.path)
        try:
            schema.check_readable(self._con)
            self.version = int(self._scalar("SELECT value FROM meta WHERE key = 'store_version'"))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- plumbing --------------------------------------------------------------------------------
    def _run(self, sql: str, params: list[Any] | None = None, fetch: str = "df") -> Any:
        """Execute and fetch (``df``, ``arrow``, ``one`` or ``all``) under the time limit."""
        if self._con is None:
            raise StoreError("the reader is closed")
        con = self._con
        timer = threading.Timer(self.timeout_s, con.interrupt)
        timer.start()
        try:
            if fetch == "arrow":
                return con.sql(sql, params=params or None).to_arrow_table()
            cur = con.execute(sql, params or [])
            if fetch == "df":
                return cur.df()
            rows = cur.fetchall()  # always fetch everything: DuckDB refuses new work on an unfinished result
            return rows[0] if fetch == "one" else rows
        except duckdb.InterruptException as err:
            raise QueryTimeoutError(f"query took longer than {self.timeout_s:g} s and was stopped") from err
        finally:
            timer.cancel()

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a parameterised read-only query on the snapshot (for store-side modules)."""
        return self._run(sql, params)

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        return self._run(sql, params, "one")[0]

    # -- public reads ----------------------------------------------------------------------------
    def participants(self, filters: CohortFilter | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Wide per-participant table (one row per eid, sorted by eid), optionally filtered.

        Raises ``ValueError`` for a column that is not in the data dictionary.
        """
        return _to_frame(self._run(*self._participants_sql(filters, columns), "arrow"))

    def participants_arrow(self, filters: CohortFilter | None = None, columns: list[str] | None = None) -> pa.Table:
        """As :meth:`participants`, as an Arrow table (exact types; used by exports)."""
        return self._run(*self._participants_sql(filters, columns), "arrow")

    @staticmethod
    def _participants_sql(filters: CohortFilter | None, columns: list[str] | None) -> tuple[str, list[Any]]:
        cols = list(columns) if columns is not None else list(COLUMNS)
        unknown = [c for c in cols if c not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; see store.metrics.data_dictionary() for the columns")
        relation, params = _wide_relation(filters)
        where, more = (filters or CohortFilter()).where()
        select = ", ".join(f'"{c}"' for c in cols) if cols else "eid"
        return f"SELECT {select} FROM {relation} WHERE {where} ORDER BY eid", params + more

    def count(self, filters: CohortFilter | None = None) -> int:
        relation, params = _wide_relation(filters)
        where, more = (filters or CohortFilter()).where()
        return int(self._scalar(f"SELECT count(*) FROM {relation} WHERE {where}", params + more))

    def metric_sources(self) -> pd.DataFrame:
        """The stored metric sources: ``source``, ``source_kind``, ``simulated`` (any of its sets),
        ``participants`` (distinct eids), ``latest`` (when it was last written); in the default order of
        kinds (:func:`store.metrics.source_preference`), then by name. A name written under two kinds is
        listed under each."""
        return self.query(
            f"""SELECT source, source_kind, bool_or(simulated) AS simulated, count(DISTINCT eid) AS participants,
                max(written_at) AS latest
            FROM metric_sets GROUP BY source, source_kind
            ORDER BY {kind_rank()}, source"""
        )

    def paired_volumes(self, source_a: str, source_b: str) -> pd.DataFrame:
        """Per-structure volumes (both sides summed, cm³) of the participants both sources measured:
        ``eid, instance, label, key, volume_a, volume_b``, one imaging visit per eid (the earliest both
        share). A structure one source did not measure is left out for that participant."""
        return self.query(
            """WITH shared AS (
                SELECT a.eid, min(a.instance) AS instance FROM metric_sets a JOIN metric_sets b
                ON a.eid = b.eid AND a.instance = b.instance WHERE a.source = ? AND b.source = ? GROUP BY a.eid
            ), vols AS (
                SELECT m.eid, m.label, m.source, sum(m.volume_cm3) AS v FROM structure_metrics m
                JOIN shared s ON s.eid = m.eid AND s.instance = m.instance WHERE m.source IN (?, ?)
                GROUP BY m.eid, m.label, m.source
            )
            SELECT s.eid, s.instance, a.label, st.key, a.v AS volume_a, b.v AS volume_b
            FROM shared s JOIN vols a ON a.eid = s.eid AND a.source = ?
            JOIN vols b ON b.eid = s.eid AND b.label = a.label AND b.source = ?
            JOIN structures st ON st.label = a.label
            ORDER BY s.eid, a.label""",
            [source_a, source_b, source_a, source_b, source_a, source_b],
        )

    def structure_metrics(self, eids: list[int] | None = None, *, all_sources: bool = False,
                          source: str | None = None) -> pd.DataFrame:
        """Long per-structure rows with the imaging visit (``instance``), structure key, name and compartment.

        Every imaging visit is returned. By default only each visit's default metric set (the preferred
        kind, then the latest written: :func:`store.metrics.current_set_order`); ``all_sources`` returns
        every stored source, ``source`` the one of that name.
        """
        current = "" if all_sources or source is not None else f"""JOIN (
            SELECT eid, instance, source FROM metric_sets
            QUALIFY row_number() OVER (PARTITION BY eid, instance ORDER BY {current_set_order()}) = 1
        ) cur ON cur.eid = m.eid AND cur.instance = m.instance AND cur.source = m.source"""
        where, params = _where("m.", eids, source)
        return self.query(
            f"""SELECT m.eid, m.instance, m.label, s.key, s.name, s.compartment, m.side, m.volume_cm3,
                m.fat_fraction, m.source, m.provenance_id
            FROM structure_metrics m JOIN structures s USING (label) {current} {where}
            ORDER BY m.eid, m.instance, m.label, m.side, m.source""",
            params,
        )

    def compartment_metrics(self, eids: list[int] | None = None, *, source: str | None = None,
                            instance: int | None = None) -> pd.DataFrame:
        """Whole-compartment volumes (:mod:`store.compartments`: :data:`~store.compartments.COLUMNS`) of every
        stored source, or of ``source`` and/or imaging visit ``instance``; none on a store from before the table."""
        if not self._scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [compartments.TABLE]):
            return pd.DataFrame(columns=list(compartments.COLUMNS))
        where, params = _where("", eids, source, instance)
        return self.query(f"SELECT {', '.join(compartments.COLUMNS)} FROM {compartments.TABLE} {where} "
                          "ORDER BY eid, instance, source, compartment, side", params)

    def jobs(self, status: str | None = None) -> pd.DataFrame:
        if status is None:
            return self.query("SELECT * FROM jobs ORDER BY created, job_id")
        return self.query("SELECT * FROM jobs WHERE status = ? ORDER BY created, job_id", [status])

    def artifacts(self, eid: int, instance: int | None = None, *, source: str | None = None) -> pd.DataFrame:
        """An eid's artifact rows: of one imaging visit, or of every visit (by instance) when None; of one
        metric source (its name), or of every source when None (each source keeps its own files)."""
        clauses, params = ["eid = ?"], [int(eid)]
        if instance is not None:
            clauses.append("instance = ?")
            params.append(int(instance))
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        return self.query(f"SELECT * FROM artifacts WHERE {' AND '.join(clauses)} ORDER BY instance, kind, source",
                          params)

    def visit_dates(self, eid: int) -> pd.DataFrame:
        """``instance, visit_date`` of each imaging visit with a date on record for ``eid`` (field 53)."""
        return self.query("SELECT instance, visit_date FROM visit_dates WHERE eid = ? ORDER BY instance", [int(eid)])

    def withdrawn(self) -> pd.DataFrame:
        """The recorded withdrawals: ``eid`` and ``withdrawn_on``."""
        return self.query("SELECT eid, withdrawn_on FROM withdrawals ORDER BY eid")

    def provenance(self, ids: list[int] | None = None, *, eid: int | None = None) -> pd.DataFrame:
        """Provenance rows by id, or those behind an eid's metrics and artifacts; all when neither."""
        if eid is not None:
            return self.query(
                """SELECT * FROM provenance WHERE id IN (
                    SELECT provenance_id FROM metric_sets WHERE eid = ?
                    UNION SELECT provenance_id FROM artifacts WHERE eid = ?) ORDER BY id""",
                [int(eid), int(eid)],
            )
        if ids is not None:
            return self.query(
                "SELECT * FROM provenance WHERE id IN (SELECT unnest(?::BIGINT[])) ORDER BY id",
                [[int(i) for i in ids]],
            )
        return self.query("SELECT * FROM provenance ORDER BY id")

    def imaging_provenance(self, eid: int | None = None) -> pd.DataFrame:
        """``eid, instance, source, source_kind, kind, details`` of each imaging visit's default metric set
        (as :meth:`structure_metrics` picks it), of everyone or of ``eid``; ``details`` is the provenance's
        JSON text (the engine's summary: swapped stations, confidence, structures at the scan's ends ...)."""
        where, params = ("WHERE ms.eid = ?", [int(eid)]) if eid is not None else ("", [])
        return self.query(
            f"""SELECT ms.eid, ms.instance, ms.source, ms.source_kind, p.kind, p.details
            FROM metric_sets ms LEFT JOIN provenance p ON p.id = ms.provenance_id {where}
            QUALIFY row_number() OVER (PARTITION BY ms.eid, ms.instance ORDER BY {current_set_order("ms")}) = 1
            ORDER BY ms.eid, ms.instance""",
            params,
        )

    def is_simulated(self) -> bool:
        """True when any stored participant or metric set is simulated (the dashboard shows a banner)."""
        return bool(self._scalar(f"SELECT coalesce(bool_or(simulated), false) FROM {WIDE_TABLE}"))

    def field_mapping(self) -> dict[str, FieldSpec]:
        """The field mapping behind the stored phenotypes: for each variable, the entry of the latest
        import that stored it (recorded with the import), else the shipped ``store/fields.toml``."""
        mapping = load_mapping()
        rows = self._run("SELECT mapping FROM imports WHERE kind = 'phenotypes' ORDER BY id", fetch="all")
        for (recorded,) in rows:
            mapping.update(load_mapping(json.loads(recorded or "{}")))
        return mapping

    def summary(self) -> dict[str, Any]:
        """Counts for ``msmv status``: version, participants, with imaging, simulated, jobs by status."""
        row = self._run(
            f"""SELECT count(*), count(*) FILTER (WHERE has_imaging), coalesce(bool_or(simulated), false)
            FROM {WIDE_TABLE}""",
            fetch="one",
        )
        jobs = dict(self._run("SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status", fetch="all"))
        return {
            "version": self.version,
            "snapshot": str(self.path),
            "participants": int(row[0]),
            "with_imaging": int(row[1]),
            "simulated": bool(row[2]),
            "jobs": {k: int(v) for k, v in jobs.items()},
        }
