"""Small SQL helpers shared by the importers (identifier quoting, reading a file as a text table)."""

from __future__ import annotations

from pathlib import Path

import duckdb

# Text that means "no value" in exported tables (R, pandas, spreadsheets); not an error.
MISSING_TOKENS: tuple[str, ...] = ("na", "nan", "null", "none", ".")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")


def quote(identifier: str) -> str:
    """A double-quoted SQL identifier (file column names can hold any character)."""
    return '"' + identifier.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# Whole numbers a DOUBLE may hold that the SQL integer type can take: a cast outside these bounds
# raises (it does not give NULL), and one such cell would abort a whole import. Powers of two are
# exact doubles, so the bounds are exact.
INTEGER_BOUNDS: dict[str, tuple[float, float]] = {
    "BIGINT": (-(2.0**63), 2.0**63),
    "INTEGER": (-(2.0**31), 2.0**31),
}


def integer_sql(expr: str, sql_type: str = "BIGINT") -> str:
    """``expr`` as ``sql_type`` when it is a whole number ("1000001" or "1000001.0") that fits, else NULL."""
    if sql_type not in INTEGER_BOUNDS:
        raise ValueError(f"sql_type must be one of {sorted(INTEGER_BOUNDS)}, found {sql_type!r}")
    low, high = INTEGER_BOUNDS[sql_type]
    d = f"TRY_CAST({expr} AS DOUBLE)"
    return (f"CASE WHEN isfinite({d}) AND {d} = round({d}) AND {d} >= {low!r} AND {d} < {high!r} "
            f"THEN CAST({d} AS {sql_type}) END")


def too_large_sql(expr: str, sql_type: str = "BIGINT") -> str:
    """True when ``expr`` is a whole number too large (either sign) for ``sql_type``."""
    low, high = INTEGER_BOUNDS[sql_type]
    d = f"TRY_CAST({expr} AS DOUBLE)"
    return f"(isfinite({d}) AND {d} = round({d}) AND ({d} < {low!r} OR {d} >= {high!r}))"


def coded_missing_tokens() -> str:
    return ", ".join(quote_literal(t) for t in MISSING_TOKENS)


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def _reader(path: Path, *, text: bool) -> str:
    if is_parquet(path):
        return "read_parquet(?, file_row_number = true)"
    return f"read_csv(?, header = true, all_varchar = {'true' if text else 'false'})"


def header(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Column names of a CSV/TSV (delimiter sniffed) or Parquet file."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_reader(path, text=True)}", [str(path)]).fetchall()
    except duckdb.Error as err:
        raise ValueError(f"{path.name}: cannot read as CSV/TSV/Parquet: {err}") from err
    return [r[0] for r in rows if r[0] != "file_row_number"]


def read_table(con: duckdb.DuckDBPyConnection, table: str, path: Path, columns: list[str], *, text: bool) -> None:
    """Create temp ``table`` with ``"row"`` (1 = first data row) and ``columns`` of the file.

    ``text`` reads CSV cells as text (validation happens in SQL); Parquet keeps its types.
    """
    cols = ", ".join(quote(c) for c in dict.fromkeys(columns))
    if is_parquet(path):
        row = "file_row_number + 1"
    else:
        row = "row_number() OVER ()"  # DuckDB scans in file order (preserve_insertion_order)
    try:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {table} AS SELECT {row} AS "row", {cols} FROM {_reader(path, text=text)}',
            [str(path)],
        )
    except duckdb.Error as err:
        raise ValueError(f"{path.name}: cannot read as CSV/TSV/Parquet: {err}") from err
