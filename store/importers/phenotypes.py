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


def _parsed_sql(t: str, unit: str) -> str:
    """Parse clean text column ``t`` once: DOUBLE for numeric units, DATE for dates, text as is."""
    if unit == "date":
        return f"TRY_CAST({t} AS DATE)"
    if unit == "text":
        return t
    return f"TRY_CAST({t} AS DOUBLE)"


def _value_sql(n: str, unit: str) -> str:
    """Normalised value from parsed column ``n`` (NULL when missing, coded missing or invalid)."""
    if unit in ("date", "text"):
        return n
    converted = {
        "number": n,
        "kg": n,
        "code": f"CAST({n} AS INTEGER)",
        "cm": f"CASE WHEN {n} < {HEIGHT_METRES_BELOW} THEN {n} * 100.0 ELSE {n} END",
        "g": f"{n} / 1000.0",
        "auto_kg": f"CASE WHEN {n} > {GRAMS_ABOVE} THEN {n} / 1000.0 ELSE {n} END",
    }[unit]
    valid = f"isfinite({n}) AND {n} >= 0"
    if unit == "code":
        valid += f" AND {n} = round({n})"
    return f"CASE WHEN {valid} THEN {converted} ELSE NULL END"


def _problem_sql(n: str, unit: str) -> str:
    """Reason text when a present cell (parsed column ``n``) is unusable, else NULL."""
    if unit == "date":
        return f"CASE WHEN {n} IS NULL THEN 'not a date (expected YYYY-MM-DD)' END"
    if unit == "text":
        return "NULL"
    checks = f"WHEN {n} IS NULL OR NOT isfinite({n}) THEN 'not a number'"
    if unit == "code":
        checks += f" WHEN {n} >= 0 AND {n} <> round({n}) THEN 'not an integer code'"
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
    # Clean each mapped cell once (trim, missing tokens -> NULL) and parse it once.
    variables = list(chosen)
    parts = [f"{raw(chosen[v])} AS t{i}" for i, v in enumerate(variables)]
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_text AS SELECT "row"{"".join(", " + p for p in parts)} FROM _phen_raw')
    parsed = [f"{_parsed_sql(f't{i}', mapping[v].unit)} AS n{i}" for i, v in enumerate(variables)]
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_parsed AS SELECT *{"".join(", " + p for p in parsed)} FROM _phen_text')
    values, coded = [], []
    for i, variable in enumerate(variables):
        col, unit = chosen[variable], mapping[variable].unit
        dtype = _DUCK_TYPE.get(unit, "DOUBLE")
        values.append(f"CAST({_value_sql(f'n{i}', unit)} AS {dtype}) AS {variable}")
        problems.append(
            f"""SELECT "row", {quote_literal(col)} AS "column", t{i} AS value,
                {_problem_sql(f'n{i}', unit)} AS reason FROM _phen_parsed WHERE t{i} IS NOT NULL AND t{i} <> ''"""
        )
        if unit in _NUMERIC_UNITS:
            coded.append(f"count(*) FILTER (WHERE n{i} < 0)")
    errors = con.execute(
        "SELECT * FROM (" + " UNION ALL ".join(problems) + ") WHERE reason IS NOT NULL ORDER BY \"row\", \"column\""
    ).df()
    report.errors = errors[list(ERROR_COLUMNS)]
    if coded:
        report.coded_missing = int(con.execute(f"SELECT {' + '.join(coded)} FROM _phen_parsed").fetchone()[0])

    value_list = (", " + ", ".join(values)) if values else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen AS
        SELECT e.eid{value_list} FROM _phen_parsed JOIN _phen_eid e USING ("row")
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
    for table in ("_phen_raw", "_phen_text", "_phen_parsed", "_phen_eid", "_phen", "_phen_merged"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return report, affected

