"""Import UK Biobank phenotype tables (CSV/TSV, ukbconv or RAP column names) into ``participants``.

All work is vectorised SQL in DuckDB: the file is read as text, every mapped cell is parsed and
normalised by an expression chosen by its unit, and problems become rows of an error report
(row, column, value, reason) instead of aborting. Re-importing upserts by eid: variables present in
the file replace the stored values, variables absent from the file keep theirs.

Real extracts go wrong quietly, so three checks speak up: a value outside its mapping's plausible
range is stored as missing and reported; a column with more than :data:`REJECT_FRACTION` of its
values outside the range is not stored at all (a wrong field or unit) and the summary says what the
values look like; DEXA limb lean masses whose sums differ from UK Biobank's own totals by more than
:data:`LIMB_TOTAL_TOLERANCE` are reported. Where the mapping declares a fallback, each participant's
value comes from the first listed instance that has one, and that instance is recorded.

The visit date field is also read at every imaging visit in the file (instances 2 and 3) into
``visit_dates``, which times the change between a participant's two imaging visits. Rows of
participants who withdrew from UK Biobank are refused: reported by row, with none of their values.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from store.fields import VARIABLES, FieldSpec, is_eid_column, parse_column, resolve_columns
from store.importers._sql import (
    INTEGER_BOUNDS,
    coded_missing_tokens,
    header,
    integer_sql,
    quote,
    quote_literal,
    read_table,
    too_large_sql,
)
from store.importers.plausibility import describe_rejected, range_reason
from store.importers.report import ERROR_COLUMNS, ImportReport
from store.vocabulary import IMAGING_INSTANCES
from store.withdrawals import REFUSED_REASON

# Heights below this are taken to be metres (no adult is 3 cm tall; nobody is 3 m tall).
HEIGHT_METRES_BELOW = 3.0
# "auto_kg" lean masses above this are grams: no limb has 300 kg lean mass, none weighs 300 g.
GRAMS_ABOVE = 300.0

# A column with more than this share of its present values out of range is a wrong mapping, not a
# few bad cells: it is not stored.
REJECT_FRACTION = 0.2
# DXA limb regions tile the arms and legs totals exactly, so beyond rounding the sums must agree.
LIMB_TOTAL_TOLERANCE = 0.02
# (total variable, limb variables, words for the report)
LIMB_TOTALS: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("dexa_arms_lean_kg", ("arm_lean_left_kg", "arm_lean_right_kg"), "arm lean mass left + right"),
    ("dexa_legs_lean_kg", ("leg_lean_left_kg", "leg_lean_right_kg"), "leg lean mass left + right"),
)
# Variables whose source instance is a participants column (the IPAQ covariate, exported); the
# source instance of any other variable with a fallback goes to ``phenotype_instances``.
INSTANCE_COLUMNS: dict[str, str] = {"activity_group": "activity_group_instance"}

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
        # a code past the INTEGER range would make the cast raise and abort the whole import
        valid += f" AND {n} = round({n}) AND {n} < {INTEGER_BOUNDS['INTEGER'][1]!r}"
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
        checks += f" WHEN {n} >= {INTEGER_BOUNDS['INTEGER'][1]!r} THEN 'code too large (not a UK Biobank code)'"
    return f"CASE {checks} END"


def _available_sql(t: str, unit: str) -> str:
    """True when clean text ``t`` holds a value (not empty, not a negative UKB missing code)."""
    present = f"({t} IS NOT NULL AND {t} <> '')"
    if unit in _NUMERIC_UNITS:
        return f"({present} AND NOT coalesce(TRY_CAST({t} AS DOUBLE) < 0, false))"
    return present


def _pick(cases: list[str], k: str) -> str:
    """The k-th of ``cases`` (SQL expressions) for candidate index column ``k``."""
    if len(cases) == 1:
        return cases[0]
    return f"CASE {k} " + " ".join(f"WHEN {j} THEN {c}" for j, c in enumerate(cases)) + " END"


def import_phenotypes(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    mapping: dict[str, FieldSpec],
    *,
    source: str,
    simulated: bool,
    mapping_origin: str = "",
) -> tuple[ImportReport, pd.DataFrame]:
    """Upsert the file's participants inside the caller's transaction.

    ``mapping_origin`` says where ``mapping`` came from; it is recorded with the import, together
    with the entries of the variables this import stored. Returns the report (without error file or
    store version, which the writer fills in) and the affected eids. Raises ``ValueError`` when the
    file has no eid column.
    """
    report = ImportReport(kind="phenotypes", path=path)
    names = header(con, path)
    eid_cols = [c for c in names if is_eid_column(c)]
    if not eid_cols:
        raise ValueError(f"{path.name}: no eid column; expected a column named 'eid' (found {names[:8]})")
    chosen, notes = resolve_columns(names, mapping)
    report.notes += notes
    eid_col = eid_cols[0]
    visits = _visit_date_columns(names, mapping)
    read_table(con, "_phen_raw", path, [eid_col, *(c for cands in chosen.values() for _, c in cands),
                                        *visits.values()], text=True)
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
    # A withdrawn participant's row is reported once, without their eid, and none of its cells is read.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _phen_refused AS
        SELECT "row" FROM _phen_eid WHERE eid IN (SELECT eid FROM withdrawals)"""
    )
    con.execute('DELETE FROM _phen_raw WHERE "row" IN (SELECT "row" FROM _phen_refused)')
    problems = [
        f"""SELECT "row", {quote_literal(eid_col)} AS "column",
            CASE WHEN "row" IN (SELECT "row" FROM _phen_refused) THEN NULL ELSE eid_raw END AS value,
            CASE WHEN eid_raw IS NULL OR eid_raw = '' THEN 'eid missing'
                 WHEN eid IS NULL AND {too_large_sql('eid_raw')}
                      THEN 'eid is too large (a UK Biobank eid has 7 digits)'
                 WHEN eid IS NULL THEN 'eid is not an integer'
                 WHEN eid <= 0 THEN 'eid is not positive (negative eids mark withdrawn participants)'
                 WHEN "row" IN (SELECT "row" FROM _phen_refused) THEN {quote_literal(REFUSED_REASON)}
                 ELSE 'duplicate eid (first seen at row ' || first_row || ')' END AS reason
        FROM _phen_eid WHERE eid IS NULL OR eid <= 0 OR occurrence > 1
            OR "row" IN (SELECT "row" FROM _phen_refused)"""
    ]
    variables = list(chosen)
    # Clean every candidate cell once (trim, missing tokens -> NULL), then pick per row the first
    # candidate instance holding a value: t<i> its text, c<i> its file column, src<i> its instance.
    cells = [f"{raw(col)} AS t{i}_{j}" for i, v in enumerate(variables) for j, (_, col) in enumerate(chosen[v])]
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_cells AS SELECT "row"{"".join(", " + c for c in cells)} FROM _phen_raw')
    picks = []
    for i, v in enumerate(variables):
        cands, unit = chosen[v], mapping[v].unit
        k = "0" if len(cands) == 1 else (
            "CASE " + " ".join(f"WHEN {_available_sql(f't{i}_{j}', unit)} THEN {j}" for j in range(len(cands)))
            + " ELSE 0 END"
        )
        picks.append(f"{k} AS k{i}")
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_pick AS SELECT *{"".join(", " + p for p in picks)} FROM _phen_cells')
    texts = []
    for i, v in enumerate(variables):
        cands = chosen[v]
        texts += [
            f"{_pick([f't{i}_{j}' for j in range(len(cands))], f'k{i}')} AS t{i}",
            f"{_pick([quote_literal(c) for _, c in cands], f'k{i}')} AS c{i}",
            f"{_pick([str(inst) for inst, _ in cands], f'k{i}')} AS src{i}",
        ]
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_text AS SELECT "row"{"".join(", " + t for t in texts)} FROM _phen_pick')
    parsed = [f"{_parsed_sql(f't{i}', mapping[v].unit)} AS n{i}" for i, v in enumerate(variables)]
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_parsed AS SELECT *{"".join(", " + p for p in parsed)} FROM _phen_text')
    normalised = []
    for i, variable in enumerate(variables):
        unit = mapping[variable].unit
        normalised.append(f"CAST({_value_sql(f'n{i}', unit)} AS {_DUCK_TYPE.get(unit, 'DOUBLE')}) AS v{i}")
    con.execute(f'CREATE OR REPLACE TEMP TABLE _phen_vals AS SELECT *{"".join(", " + n for n in normalised)} FROM _phen_parsed')

    out_of_range: dict[str, str] = {}  # variable -> SQL condition on v<i>
    coded = []
    for i, variable in enumerate(variables):
        spec = mapping[variable]
        problems.append(
            f"""SELECT "row", c{i} AS "column", t{i} AS value,
                {_problem_sql(f'n{i}', spec.unit)} AS reason FROM _phen_vals WHERE t{i} IS NOT NULL AND t{i} <> ''"""
        )
        if spec.unit in _NUMERIC_UNITS:
            coded.append(f"count(*) FILTER (WHERE n{i} < 0)")
        if spec.range is not None and spec.unit in _NUMERIC_UNITS:
            out_of_range[variable] = f"(v{i} < {spec.range[0]!r} OR v{i} > {spec.range[1]!r})"
    rejected = _reject_columns(con, report, variables, chosen, mapping, out_of_range)
    stored = [v for v in variables if v not in rejected]
    for variable in stored:
        if variable in out_of_range:
            i = variables.index(variable)
            problems.append(
                f"""SELECT "row", c{i} AS "column", t{i} AS value,
                    {quote_literal(range_reason(mapping[variable].range))} AS reason
                FROM _phen_vals WHERE {out_of_range[variable]}"""
            )
    problems += _limb_total_problems(variables, stored)
    errors = con.execute(
        "SELECT * FROM (" + " UNION ALL ".join(problems) + ") WHERE reason IS NOT NULL ORDER BY \"row\", \"column\""
    ).df()
    report.errors = errors[list(ERROR_COLUMNS)]
    if coded:
        report.coded_missing = int(con.execute(f"SELECT {' + '.join(coded)} FROM _phen_vals").fetchone()[0])

    # Range-checked values first; the source instance is kept only where a value was stored.
    inner, outer = ["e.eid"], ["eid"]
    for variable in stored:
        i = variables.index(variable)
        bad = out_of_range.get(variable)
        inner += [f"CASE WHEN {bad} THEN NULL ELSE v{i} END AS {variable}" if bad else f"v{i} AS {variable}",
                  f"src{i}"]  # fmt: skip
        outer += [variable, f"CASE WHEN {variable} IS NOT NULL THEN src{i} END AS _src_{variable}"]
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen AS SELECT {", ".join(outer)} FROM (
            SELECT {", ".join(inner)} FROM _phen_vals JOIN _phen_eid e USING ("row")
            WHERE e.eid > 0 AND e.occurrence = 1 AND "row" NOT IN (SELECT "row" FROM _phen_refused))"""
    )
    report.rows_imported = con.execute("SELECT count(*) FROM _phen").fetchone()[0]
    report.updated = con.execute(
        "SELECT count(*) FROM _phen WHERE eid IN (SELECT eid FROM participants)"
    ).fetchone()[0]
    report.inserted = report.rows_imported - report.updated
    report.variables = stored

    _merge(con, stored, source=source, simulated=simulated)
    _record_instances(con, [v for v in stored if mapping[v].fallback and v not in INSTANCE_COLUMNS])
    _record_import(con, path, {v: mapping[v] for v in stored}, mapping_origin)
    _record_visit_dates(con, {inst: raw(col) for inst, col in visits.items()})
    affected = con.execute("SELECT eid FROM _phen").df()
    for table in ("_phen_raw", "_phen_cells", "_phen_pick", "_phen_text", "_phen_parsed", "_phen_vals", "_phen_eid",
                  "_phen", "_phen_merged", "_phen_refused"):  # fmt: skip
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return report, affected


def _reject_columns(
    con: duckdb.DuckDBPyConnection,
    report: ImportReport,
    variables: list[str],
    chosen: dict[str, list[tuple[int, str]]],
    mapping: dict[str, FieldSpec],
    out_of_range: dict[str, str],
) -> set[str]:
    """Variables whose column is mostly out of range: not stored, explained in the report's notes."""
    if not out_of_range:
        return set()
    aggregates = []
    for variable, bad in out_of_range.items():
        i = variables.index(variable)
        aggregates += [f"count(v{i})", f"count(*) FILTER (WHERE {bad})", f"median(v{i})"]
    row = con.execute(f"SELECT {', '.join(aggregates)} FROM _phen_vals").fetchone()
    rejected: set[str] = set()
    for k, variable in enumerate(out_of_range):
        present, outside, median = row[3 * k], row[3 * k + 1], row[3 * k + 2]
        if present and outside > REJECT_FRACTION * present:
            spec = mapping[variable]
            rejected.add(variable)
            columns = ", ".join(c for _, c in chosen[variable])
            report.rejected.append(
                f"{variable} (field {spec.field}, column {columns}) not stored: {outside:,} of {present:,} values "
                f"outside plausible range [{spec.range[0]:g}, {spec.range[1]:g}]; {describe_rejected(median, spec)}"
            )
    return rejected


def _limb_total_problems(variables: list[str], stored: list[str]) -> list[str]:
    """Error-report queries for rows whose DEXA limb sums disagree with the total beyond tolerance."""
    out = []
    for total, (left, right), words in LIMB_TOTALS:
        if not all(v in stored for v in (total, left, right)):
            continue
        t, a, b = (variables.index(v) for v in (total, left, right))
        limbs = f"(v{a} + v{b})"
        diff = f"abs({limbs} - v{t}) / v{t}"
        out.append(
            f"""SELECT "row", c{t} AS "column", t{t} AS value,
                '{words} = ' || round({limbs}, 3) || ' kg differs from the total ' || round(v{t}, 3)
                || ' kg by ' || round(100 * {diff}, 1) || ' % (more than {LIMB_TOTAL_TOLERANCE * 100:g} %)' AS reason
            FROM _phen_vals WHERE v{t} > 0 AND {diff} > {LIMB_TOTAL_TOLERANCE}"""
        )
    return out


def _merge(con: duckdb.DuckDBPyConnection, stored: list[str], *, source: str, simulated: bool) -> None:
    """Replace the participants in ``_phen``: stored variables from the file, the others as they were."""
    merged = [f"s.{v}" if v in stored else f"p.{v}" for v in VARIABLES]
    for variable, column in INSTANCE_COLUMNS.items():
        merged.append(f"s._src_{variable} AS {column}" if variable in stored else f"p.{column}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _phen_merged AS
        SELECT s.eid, {", ".join(merged)}, ? AS source, ? AS simulated, now()::TIMESTAMP AS imported_at
        FROM _phen s LEFT JOIN participants p ON p.eid = s.eid""",
        [source, simulated],
    )
    con.execute("DELETE FROM participants WHERE eid IN (SELECT eid FROM _phen)")
    con.execute("INSERT INTO participants BY NAME SELECT * FROM _phen_merged")


def _record_instances(con: duckdb.DuckDBPyConnection, variables: list[str]) -> None:
    """Per participant, the instance each fallback variable's value came from."""
    for variable in variables:
        con.execute(
            "DELETE FROM phenotype_instances WHERE variable = ? AND eid IN (SELECT eid FROM _phen)", [variable]
        )
        con.execute(
            f"""INSERT INTO phenotype_instances SELECT eid, ?, _src_{variable} FROM _phen
            WHERE _src_{variable} IS NOT NULL""",
            [variable],
        )


def _visit_date_columns(names: list[str], mapping: dict[str, FieldSpec]) -> dict[int, str]:
    """File column of the visit date field at each imaging visit present: ``{instance: column}``."""
    spec = mapping.get("visit_date")
    if spec is None:
        return {}
    found: dict[int, tuple[int, str]] = {}
    for name in names:
        ref = parse_column(name)
        if ref and ref.field == spec.field and ref.instance in IMAGING_INSTANCES:
            if ref.instance not in found or ref.array < found[ref.instance][0]:
                found[ref.instance] = (ref.array, name)
    return {inst: col for inst, (_, col) in sorted(found.items())}


def _record_visit_dates(con: duckdb.DuckDBPyConnection, cells: dict[int, str]) -> None:
    """Replace the imported participants' visit dates at each imaging visit the file has.

    ``cells`` maps an instance to the SQL expression of its cleaned text cell over ``_phen_raw``; a
    cell that is not a date is left out here (the visit date variable's own check reports it).
    """
    for instance, cell in cells.items():
        con.execute(
            "DELETE FROM visit_dates WHERE instance = ? AND eid IN (SELECT eid FROM _phen)", [instance]
        )
        con.execute(
            f"""INSERT INTO visit_dates SELECT e.eid, ?, d FROM (
                SELECT "row", TRY_CAST({cell} AS DATE) AS d FROM _phen_raw) r
            JOIN _phen_eid e USING ("row")
            WHERE d IS NOT NULL AND e.occurrence = 1 AND e.eid IN (SELECT eid FROM _phen)""",
            [instance],
        )


def _record_import(
    con: duckdb.DuckDBPyConnection, path: Path, used: dict[str, FieldSpec], origin: str
) -> None:
    """One ``imports`` row: the file, where its mapping came from and the entries it stored."""
    mapping = json.dumps({v: spec.as_toml_entry() for v, spec in used.items()}, sort_keys=True)
    con.execute(
        """INSERT INTO imports SELECT coalesce(max(id), 0) + 1, 'phenotypes', ?, ?, ?, now()::TIMESTAMP
        FROM imports""",
        [str(path), origin, mapping],
    )
