"""Import per-structure metrics (one row per eid x structure x side) from CSV or Parquet.

Columns: ``eid, structure, side, volume_cm3[, fat_fraction][, instance]``; structure is a label (1-27),
a key (``rectus_femoris``) or a display name (``Rectus femoris``); side is left/right/L/R; instance is
the UK Biobank imaging visit (2 first, 3 repeat; empty or absent: 2). Everything runs in DuckDB (27M
rows at UK Biobank scale): the file is staged, validated with SQL, and bad rows go to the error
report, withdrawn participants' rows among them. Re-importing replaces the same eid x instance x
structure x side x source rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from store.importers._sql import (
    header,
    integer_sql,
    is_parquet,
    quote,
    quote_literal,
    read_table,
    too_large_sql,
)
from store.importers.report import ERROR_COLUMNS, ImportReport
from store.structures import STRUCTURES
from store.vocabulary import FIRST_IMAGING_INSTANCE, METRICS_IMPORT_KIND, kind_of_source
from store.withdrawals import REFUSED_REASON

REQUIRED: tuple[str, ...] = ("eid", "structure", "side", "volume_cm3")
OPTIONAL: tuple[str, ...] = ("fat_fraction", "instance")
SIDE_ALIASES: dict[str, str] = {"left": "left", "l": "left", "right": "right", "r": "right"}


def _norm(expr: str) -> str:
    """Normalised structure reference: lower case, spaces and hyphens as underscores."""
    return f"replace(replace(lower(trim(CAST({expr} AS VARCHAR))), ' ', '_'), '-', '_')"


def _alias_rows() -> list[tuple[str, int]]:
    rows: dict[str, int] = {}
    for s in STRUCTURES:
        rows[str(s.label)] = s.label
        rows[s.key] = s.label
        rows[s.name.lower().replace(" ", "_").replace("-", "_")] = s.label
    return list(rows.items())


def import_structure_metrics(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    source: str,
    simulated: bool,
    provenance_id: int | None,
    kind: str | None = None,
) -> tuple[ImportReport, pd.DataFrame]:
    """Stage, validate and upsert the file's rows inside the caller's transaction.

    ``kind`` is the source kind recorded with each metric set (:data:`store.vocabulary.SOURCE_KINDS`;
    default ``simulated`` for simulated values, else ``metrics-import``).

    Returns the report and the affected eids. Raises ``ValueError`` when a required column is absent.
    """
    kind = kind_of_source(kind, simulated=simulated, otherwise=METRICS_IMPORT_KIND)  # before any work: ValueError
    report = ImportReport(kind="metrics", path=path)
    names = header(con, path)
    lower = {n.strip().lower(): n for n in names}
    missing = [c for c in REQUIRED if c not in lower]
    if missing:
        raise ValueError(
            f"{path.name}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}"
            f"[, fat_fraction][, instance], found {', '.join(names)}"
        )
    col = {c: lower[c] for c in (*REQUIRED, *OPTIONAL) if c in lower}
    read_table(con, "_sm_raw", path, list(col.values()), text=not is_parquet(path))
    report.rows_read = con.execute("SELECT count(*) FROM _sm_raw").fetchone()[0]
    r = {k: f"r.{quote(v)}" for k, v in col.items()}

    # Structure and side hold few distinct values: resolve those once, then join on the raw value.
    con.execute("CREATE OR REPLACE TEMP TABLE _sm_alias (alias VARCHAR, label INTEGER)")
    con.executemany("INSERT INTO _sm_alias VALUES (?, ?)", _alias_rows())
    con.execute("CREATE OR REPLACE TEMP TABLE _sm_side (alias VARCHAR, side VARCHAR)")
    con.executemany("INSERT INTO _sm_side VALUES (?, ?)", list(SIDE_ALIASES.items()))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm_smap AS
        SELECT d.v, a.label FROM (SELECT DISTINCT {r['structure']} AS v FROM _sm_raw r) d
        JOIN _sm_alias a ON a.alias = {_norm('d.v')}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm_dmap AS
        SELECT d.v, s.side FROM (SELECT DISTINCT {r['side']} AS v FROM _sm_raw r) d
        JOIN _sm_side s ON s.alias = lower(trim(CAST(d.v AS VARCHAR)))"""
    )

    # One pass: parse, resolve and give each row its first problem (column, value, reason) or none.
    ff = f"TRY_CAST({r['fat_fraction']} AS DOUBLE)" if "fat_fraction" in r else "CAST(NULL AS DOUBLE)"
    given = f"nullif(trim(CAST({r['instance']} AS VARCHAR)), '')" if "instance" in r else "NULL"
    parsed = {"eid": integer_sql(r["eid"]), "volume_cm3": f"TRY_CAST({r['volume_cm3']} AS DOUBLE)", "fat_fraction": ff,
              "instance": f"coalesce({integer_sql(given, 'INTEGER')}, {FIRST_IMAGING_INSTANCE})"}
    checks = [
        (f"{r['eid']} IS NULL", "eid", "eid missing"),
        (too_large_sql(r["eid"]), "eid", "eid is too large (a UK Biobank eid has 7 digits)"),
        (f"{parsed['eid']} IS NULL", "eid", "eid is not an integer"),
        (f"{parsed['eid']} <= 0", "eid", "eid is not positive"),
        (f"{parsed['eid']} IN (SELECT eid FROM withdrawals)", "eid", REFUSED_REASON),
        ("sm.label IS NULL", "structure", "unknown structure (expected a label 1-27 or a structure name)"),
        ("dm.side IS NULL", "side", "unknown side (expected left, right, L or R)"),
        (f"{parsed['volume_cm3']} IS NULL OR NOT isfinite({parsed['volume_cm3']})", "volume_cm3",
         "volume is not a number"),
        (f"{parsed['volume_cm3']} < 0", "volume_cm3", "volume is negative"),
    ]  # fmt: skip
    if "instance" in r:
        checks.append((f"{given} IS NOT NULL AND ({integer_sql(given, 'INTEGER')} IS NULL OR {integer_sql(given)} < 0)",
                       "instance", "instance is not a UK Biobank assessment instance (expected 2 or 3)"))
    if "fat_fraction" in r:
        checks += [
            (f"{r['fat_fraction']} IS NOT NULL AND trim(CAST({r['fat_fraction']} AS VARCHAR)) <> '' "
             f"AND ({ff} IS NULL OR NOT isfinite({ff}))", "fat_fraction", "fat fraction is not a number"),
            (f"{ff} < 0 OR {ff} > 1", "fat_fraction", "fat fraction outside 0-1"),
        ]  # fmt: skip
    problem = " ".join(f"WHEN {c} THEN {i}" for i, (c, _, _) in enumerate(checks))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm AS
        SELECT r."row", {parsed['eid']} AS eid, {parsed['instance']} AS instance, sm.label, dm.side,
               {parsed['volume_cm3']} AS volume_cm3, {ff} AS fat_fraction, CASE {problem} END AS problem
        FROM _sm_raw r
        LEFT JOIN _sm_smap sm ON sm.v = {r['structure']}
        LEFT JOIN _sm_dmap dm ON dm.v = {r['side']}"""
    )
    column_case = " ".join(f"WHEN {i} THEN {quote_literal(col[name])}" for i, (_, name, _) in enumerate(checks))
    # a refused withdrawn participant's eid is not written into the report again
    value_case = " ".join(f"WHEN {i} THEN " + ("NULL" if why == REFUSED_REASON else f"CAST({r[name]} AS VARCHAR)")
                          for i, (_, name, why) in enumerate(checks))
    reason_case = " ".join(f"WHEN {i} THEN {quote_literal(why)}" for i, (_, _, why) in enumerate(checks))
    problems = [_duplicates(con, col["eid"])]
    if con.execute("SELECT count(*) FROM _sm WHERE problem IS NOT NULL").fetchone()[0]:
        problems.append(
            f"""SELECT b."row", CASE b.problem {column_case} END AS "column",
                CASE b.problem {value_case} END AS value, CASE b.problem {reason_case} END AS reason
            FROM (SELECT "row", problem FROM _sm WHERE problem IS NOT NULL) b JOIN _sm_raw r USING ("row")"""
        )
    errors = con.execute(f'SELECT * FROM ({" UNION ALL ".join(problems)}) ORDER BY "row"').df()
    report.errors = errors[list(ERROR_COLUMNS)]
    good = 'problem IS NULL AND "row" NOT IN (SELECT "row" FROM _sm_duprows)'
    report.rows_imported = con.execute(f"SELECT count(*) FROM _sm WHERE {good}").fetchone()[0]

    existing = con.execute("SELECT count(*) FROM structure_metrics WHERE source = ?", [source]).fetchone()[0]
    if existing:
        report.updated = con.execute(
            f"""DELETE FROM structure_metrics m USING (SELECT eid, instance, label, side FROM _sm WHERE {good}) g
            WHERE m.source = ? AND m.eid = g.eid AND m.instance = g.instance AND m.label = g.label
            AND m.side = g.side""",
            [source],
        ).fetchone()[0]
    report.inserted = report.rows_imported - report.updated
    con.execute(
        f"""INSERT INTO structure_metrics BY NAME
        SELECT eid, label, side, volume_cm3, fat_fraction, ? AS source, ? AS provenance_id, instance
        FROM _sm WHERE {good}""",
        [source, provenance_id],
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _sm_eids AS SELECT DISTINCT eid, instance FROM _sm WHERE {good}")
    con.execute(
        """DELETE FROM metric_sets m USING _sm_eids g
        WHERE m.source = ? AND m.eid = g.eid AND m.instance = g.instance""", [source])
    con.execute(
        """INSERT INTO metric_sets BY NAME SELECT eid, instance, ? AS source, ? AS source_kind, ? AS simulated,
        ? AS provenance_id, now()::TIMESTAMP AS written_at FROM _sm_eids""",
        [source, kind, simulated, provenance_id],
    )
    affected = con.execute("SELECT DISTINCT eid FROM _sm_eids").df()
    for table in ("_sm_raw", "_sm", "_sm_eids", "_sm_alias", "_sm_side", "_sm_smap", "_sm_dmap", "_sm_duprows"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return report, affected


def _duplicates(con: duckdb.DuckDBPyConnection, eid_column: str) -> str:
    """Find repeated eid x instance x structure x side rows (all but the first of each) into ``_sm_duprows``.

    Per eid and visit, a 54-bit mask of the (structure, side) slots seen equals the row count only
    when no slot repeats; that 500k-group aggregate is cheap, and only eids that fail it get a window.
    Returns the SELECT listing them as report rows.
    """
    slot = "(2 * (label - 1) + CAST(side = 'right' AS INTEGER))"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm_dupeids AS
        SELECT DISTINCT eid FROM _sm WHERE problem IS NULL GROUP BY eid, instance
        HAVING count(*) <> bit_count(bit_or(CAST(1 AS UBIGINT) << {slot}))"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sm_duprows AS
        SELECT "row", eid, first_row FROM (
            SELECT "row", eid, min("row") OVER (PARTITION BY eid, instance, label, side) AS first_row
            FROM _sm WHERE problem IS NULL AND eid IN (SELECT eid FROM _sm_dupeids))
        WHERE "row" <> first_row"""
    )
    con.execute("DROP TABLE _sm_dupeids")
    return f"""SELECT "row", {quote_literal(eid_column)} AS "column", CAST(eid AS VARCHAR) AS value,
        'duplicate eid x instance x structure x side (first at row ' || first_row || ')' AS reason
        FROM _sm_duprows"""
