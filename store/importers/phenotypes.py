"""Import UK Biobank phenotype tables (CSV/TSV, ukbconv or RAP column names) into ``participants``.

All work is vectorised SQL in DuckDB: the file is read as text, every mapped cell is parsed and
normalised by an expression chosen by its unit, and problems become rows of an error report
(row, column, value, reason) instead of aborting. Re-importing upserts by eid: variables present in
the file replace the stored values, variables absent from the file keep theirs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from store.fields import VARIABLES, FieldSpec, is_eid_column, resolve_columns
from store.importers._sql import coded_missing_tokens, header, integer_sql, quote, quote_literal, read_table
from store.importers.report import ERROR_COLUMNS, ImportReport

# Heights below this are taken to be metres (no adult is 3 cm tall; nobody is 3 m tall).
HEIGHT_METRES_BELOW = 3.0
# "auto_kg" lean masses above this are grams: no limb has 300 kg lean mass, none weighs 300 g.
GRAMS_ABOVE = 300.0

_NUMERIC_UNITS = ("number", "code", "cm", "kg", "g", "auto_kg")
_DUCK_TYPE = {"date": "DATE", "text": "VARCHAR", "code": "INTEGER"}


def _value_sql(r: str, unit: str) -> str:
    """Normalised value of trimmed raw text ``r`` (NULL when missing, coded missing or invalid)."""
    if unit == "date":
        return f"TRY_CAST({r} AS DATE)"
    if unit == "text":
        return f"nullif({r}, '')"
    num = f"TRY_CAST({r} AS DOUBLE)"
    converted = {
        "number": num,
        "kg": num,
        "code": f"CAST({num} AS INTEGER)",
        "cm": f"CASE WHEN {num} < {HEIGHT_METRES_BELOW} THEN {num} * 100.0 ELSE {num} END",
        "g": f"{num} / 1000.0",
        "auto_kg": f"CASE WHEN {num} > {GRAMS_ABOVE} THEN {num} / 1000.0 ELSE {num} END",
    }[unit]
    valid = f"isfinite({num}) AND {num} >= 0"
    if unit == "code":
        valid += f" AND {num} = round({num})"
    return f"CASE WHEN {valid} THEN {converted} ELSE NULL END"


def _problem_sql(r: str, unit: str) -> str:
    """Reason text when the trimmed raw text ``r`` is present but unusable, else NULL."""
    if unit == "date":
        return f"CASE WHEN TRY_CAST({r} AS DATE) IS NULL THEN 'not a date (expected YYYY-MM-DD)' END"
    if unit == "text":
        return "NULL"
    num = f"TRY_CAST({r} AS DOUBLE)"
    checks = f"WHEN {num} IS NULL OR NOT isfinite({num}) THEN 'not a number'"
    if unit == "code":
        checks += f" WHEN {num} >= 0 AND {num} <> round({num}) THEN 'not an integer code'"
    return f"CASE {checks} END"


def import_phenotypes(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    mapping: dict[str, FieldSpec],
    *,
    source: str,
    simulated: bool,
) -> tuple[ImportReport, pd.DataFrame]:
    """Upsert the file's participants inside the caller's transaction.

    Returns the report (without error file or store version, which the writer fills in) and the
    affected eids. Raises ``ValueError`` when the file has no eid column.
    """
    report = ImportReport(kind="phenotypes", path=path)
    names = header(con, path)
    eid_cols = [c for c in names if is_eid_column(c)]
    if not eid_cols:
        raise ValueError(f"{path.name}: no eid column; expected a column named 'eid' (found {names[:8]})")
    chosen, notes = resolve_columns(names, mapping)
    report.notes += notes
    eid_col = eid_cols[0]
    read_table(con, "_phen_raw", path, [eid_col, *chosen.values()], text=True)
    report.rows_read = con.execute("SELECT count(*) FROM _phen_raw").fetchone()[0]

    tokens = coded_missing_tokens()

    def raw(col: str) -> str:
        text = f"trim(CAST({quote(col)} AS VARCHAR))"
        return f"CASE WHEN lower({text}) IN ({tokens}) THEN NULL ELSE {text} END"

    raw_eid = f"trim(CAST({quote(eid_col)} AS VARCHAR))"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen_eid AS
        SELECT "row", eid_raw, eid,
               row_number() OVER (PARTITION BY eid ORDER BY "row") AS occurrence,
               min("row") OVER (PARTITION BY eid) AS first_row
        FROM (SELECT "row", {raw_eid} AS eid_raw, {integer_sql(raw_eid)} AS eid FROM _phen_raw)"""
    )
    problems = [
        f"""SELECT "row", {quote_literal(eid_col)} AS "column", eid_raw AS value,
            CASE WHEN eid_raw IS NULL OR eid_raw = '' THEN 'eid missing'
                 WHEN eid IS NULL THEN 'eid is not an integer'
                 WHEN eid <= 0 THEN 'eid is not positive (negative eids mark withdrawn participants)'
                 ELSE 'duplicate eid (first seen at row ' || first_row || ')' END AS reason
        FROM _phen_eid WHERE eid IS NULL OR eid <= 0 OR occurrence > 1"""
    ]
    values, coded = [], []
    for variable, col in chosen.items():
        unit = mapping[variable].unit
        r = raw(col)
        dtype = _DUCK_TYPE.get(unit, "DOUBLE")
        values.append(f"CAST({_value_sql(r, unit)} AS {dtype}) AS {variable}")
        problems.append(
            f"""SELECT "row", {quote_literal(col)} AS "column", CAST({quote(col)} AS VARCHAR) AS value,
                {_problem_sql(r, unit)} AS reason FROM _phen_raw WHERE {r} IS NOT NULL AND {r} <> ''"""
        )
        if unit in _NUMERIC_UNITS:
            coded.append(f"count(*) FILTER (WHERE TRY_CAST({r} AS DOUBLE) < 0)")
    errors = con.execute(
        "SELECT * FROM (" + " UNION ALL ".join(problems) + ") WHERE reason IS NOT NULL ORDER BY \"row\", \"column\""
    ).df()
    report.errors = errors[list(ERROR_COLUMNS)]
    if coded:
        report.coded_missing = int(con.execute(f"SELECT {' + '.join(coded)} FROM _phen_raw").fetchone()[0])

    value_list = (", " + ", ".join(values)) if values else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen AS
        SELECT e.eid{value_list} FROM _phen_raw JOIN _phen_eid e USING ("row")
        WHERE e.eid > 0 AND e.occurrence = 1"""
    )
    report.rows_imported = con.execute("SELECT count(*) FROM _phen").fetchone()[0]
    report.updated = con.execute(
        "SELECT count(*) FROM _phen WHERE eid IN (SELECT eid FROM participants)"
    ).fetchone()[0]
    report.inserted = report.rows_imported - report.updated

    merged = ", ".join(f"s.{v}" if v in chosen else f"p.{v}" for v in VARIABLES)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen_merged AS
        SELECT s.eid, {merged}, ? AS source, ? AS simulated, now()::TIMESTAMP AS imported_at
        FROM _phen s LEFT JOIN participants p ON p.eid = s.eid""",
        [source, simulated],
    )
    con.execute("DELETE FROM participants WHERE eid IN (SELECT eid FROM _phen)")
    con.execute("INSERT INTO participants BY NAME SELECT * FROM _phen_merged")
    affected = con.execute("SELECT eid FROM _phen").df()
    for table in ("_phen_raw", "_phen_eid", "_phen", "_phen_merged"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return report, affected

