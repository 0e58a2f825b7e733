"""Maintenance of the materialised wide per-participant table (defined in :mod:`store.metrics`).

The wide table is derived data: when the code's definition changes (a new metric, a new structure)
it is rebuilt whole; after an import or a subject commit only the affected eids are recomputed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import duckdb
import pandas as pd

from store.metrics import WIDE_TABLE, wide_select_sql

# Above this many affected eids a full rebuild is cheaper than delete + insert by eid.
_FULL_REBUILD_ABOVE = 20_000
_AFFECTED = "_affected_eids"


def definition_hash() -> str:
    return hashlib.sha256(wide_select_sql().encode()).hexdigest()[:16]


def ensure(con: duckdb.DuckDBPyConnection) -> bool:
    """Rebuild the whole wide table if missing or defined by another code version; True if rebuilt."""
    row = con.execute("SELECT value FROM meta WHERE key = 'wide_definition'").fetchone()
    if row and row[0] == definition_hash():
        return False
    rebuild(con)
    return True


def rebuild(con: duckdb.DuckDBPyConnection, eids: Iterable[int] | None = None) -> None:
    """Recompute the wide rows of ``eids`` (all participants when None). Runs in the caller's transaction."""
    if eids is None:
        con.execute(f"CREATE OR REPLACE TABLE {WIDE_TABLE} AS {wide_select_sql()}")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('wide_definition', ?)", [definition_hash()])
        return
    frame = pd.DataFrame({"eid": pd.Series(list(eids), dtype="int64")})
    rebuild_from(con, frame)


def rebuild_from(con: duckdb.DuckDBPyConnection, eids: pd.DataFrame | str) -> None:
    """Recompute the wide rows for the eids in a DataFrame or a table name (an internal name)."""
    source = "_eids_frame" if isinstance(eids, pd.DataFrame) else eids
    if isinstance(eids, pd.DataFrame):
        con.register("_eids_frame", eids)
    try:
        # fetchall, not fetchone: a result left half-fetched makes DuckDB refuse the unregister below,
        # and an import with no valid rows returns right here
        n = con.execute(f"SELECT count(DISTINCT eid) FROM {source}").fetchall()[0][0]
        if n == 0:
            return
        total = con.execute(f"SELECT count(*) FROM {WIDE_TABLE}").fetchone()[0]
        if n > _FULL_REBUILD_ABOVE and n > total // 4:
            rebuild(con)
            return
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_AFFECTED} AS SELECT DISTINCT eid FROM {source}")
        con.execute(f"DELETE FROM {WIDE_TABLE} WHERE eid IN (SELECT eid FROM {_AFFECTED})")
        con.execute(f"INSERT INTO {WIDE_TABLE} {wide_select_sql(_AFFECTED)}")
        con.execute(f"DROP TABLE {_AFFECTED}")
    finally:
        if isinstance(eids, pd.DataFrame):
            con.unregister("_eids_frame")
