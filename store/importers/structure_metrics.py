"""Import per-structure metrics (one row per eid x structure x side) from CSV or Parquet.

Columns: ``eid, structure, side, volume_cm3[, fat_fraction]``; structure is a label (1-27), a key
(``rectus_femoris``) or a display name (``Rectus femoris``); side is left/right/L/R. Everything
runs in DuckDB (27M rows at UK Biobank scale): the file is staged, validated with SQL, and bad rows
go to the error report. Re-importing replaces the same eid x structure x side x source rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from store.importers._sql import header, integer_sql, is_parquet, quote, quote_literal, read_table
from store.importers.report import ERROR_COLUMNS, ImportReport
from store.structures import STRUCTURES

REQUIRED: tuple[str, ...] = ("eid", "structure", "side", "volume_cm3")
OPTIONAL: tuple[str, ...] = ("fat_fraction",)
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
) -> tuple[ImportReport, pd.DataFrame]:
    """Stage, validate and upsert the file's rows inside the caller's transaction.

    Returns the report and the affected eids. Raises ``ValueError`` when a required column is absent.
    """
    report = ImportReport(kind="metrics", path=path)
    names = header(con, path)
    lower = {n.strip().lower(): n for n in names}
    missing = [c for c in REQUIRED if c not in lower]
    if missing:
        raise ValueError(
            f"{path.name}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}"
            f"[, fat_fraction], found {', '.join(names)}"
        )
    col = {c: lower[c] for c in (*REQUIRED, *OPTIONAL) if c in lower}
    read_table(con, "_sm_raw", path, list(col.values()), text=not is_parquet(path))
    report.rows_read = con.execute("SELECT count(*) FROM _sm_raw").fetchone()[0]

    con.execute("CREATE OR REPLACE TEMP TABLE _sm_alias (alias VARCHAR, label INTEGER)")
    con.executemany("INSERT INTO _sm_alias VALUES (?, ?)", _alias_rows())
    con.execute("CREATE OR REPLACE TEMP TABLE _sm_side (alias VARCHAR, side VARCHAR)")
    con.executemany("INSERT INTO _sm_side VALUES (?, ?)", list(SIDE_ALIASES.items()))

    q = {k: f"raw_{k}" for k in col}  # staged copies of the file's columns, as found
    raw = ", ".join(f"r.{quote(v)} AS raw_{k}" for k, v in col.items())
    r = {k: f"r.{quote(v)}" for k, v in col.items()}
    # Structure and side hold few distinct values: resolve those once, then join on the raw value.
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
    ff = f"TRY_CAST({r['fat_fraction']} AS DOUBLE)" if "fat_fraction" in r else "CAST(NULL AS DOUBLE)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm AS
        SELECT r."row", {integer_sql(r['eid'])} AS eid, sm.label, dm.side,
               TRY_CAST({r['volume_cm3']} AS DOUBLE) AS volume_cm3, {ff} AS fat_fraction,
               {raw}
        FROM _sm_raw r
        LEFT JOIN _sm_smap sm ON sm.v = {r['structure']}
        LEFT JOIN _sm_dmap dm ON dm.v = {r['side']}"""
    )
    # Duplicates are rare: find the repeated keys by aggregation, not a window over every row.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sm_dups AS
        SELECT eid, label, side, min("row") AS first_row FROM _sm
        WHERE eid IS NOT NULL AND label IS NOT NULL AND side IS NOT NULL
        GROUP BY eid, label, side HAVING count(*) > 1"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sm AS SELECT _sm.*, d.first_row
        FROM _sm LEFT JOIN _sm_dups d USING (eid, label, side)"""
    )
    # (condition, column, reason), first match wins; conditions are over _sm.
    checks = [
        (f"{q['eid']} IS NULL", "eid", "'eid missing'"),
        ("eid IS NULL", "eid", "'eid is not an integer'"),
        ("eid <= 0", "eid", "'eid is not positive'"),
        ("label IS NULL", "structure", "'unknown structure (expected a label 1-27 or a structure name)'"),
        ("side IS NULL", "side", "'unknown side (expected left, right, L or R)'"),
        ("volume_cm3 IS NULL OR NOT isfinite(volume_cm3)", "volume_cm3", "'volume is not a number'"),
        ("volume_cm3 < 0", "volume_cm3", "'volume is negative'"),
    ]
    if "fat_fraction" in q:
        checks += [
            (f"{q['fat_fraction']} IS NOT NULL AND trim(CAST({q['fat_fraction']} AS VARCHAR)) <> '' "
             "AND (fat_fraction IS NULL OR NOT isfinite(fat_fraction))", "fat_fraction",
             "'fat fraction is not a number'"),
            ("fat_fraction < 0 OR fat_fraction > 1", "fat_fraction", "'fat fraction outside 0-1'"),
        ]
    checks.append(("first_row IS NOT NULL AND \"row\" <> first_row", "eid", "'duplicate eid x structure x side (first at row ' || first_row || ')'"))
    column_case = " ".join(f"WHEN {c} THEN {quote_literal(col.get(name, name))}" for c, name, _ in checks)
    value_case = " ".join(f"WHEN {c} THEN CAST({q.get(name, 'NULL')} AS VARCHAR)" for c, name, _ in checks)
    reason_case = " ".join(f"WHEN {c} THEN {reason}" for c, _, reason in checks)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _sm AS SELECT "row", eid, label, side, volume_cm3, fat_fraction,
            CASE {column_case} END AS err_column, CASE {value_case} END AS err_value,
            CASE {reason_case} END AS reason
        FROM _sm"""
    )
    errors = con.execute(
        """SELECT "row", err_column AS "column", err_value AS value, reason
        FROM _sm WHERE reason IS NOT NULL ORDER BY "row" """
    ).df()
    report.errors = errors[list(ERROR_COLUMNS)]
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _sm_good AS
        SELECT eid, label, side, volume_cm3, fat_fraction FROM _sm WHERE reason IS NULL"""
    )
    report.rows_imported = con.execute("SELECT count(*) FROM _sm_good").fetchone()[0]

    existing = con.execute("SELECT count(*) FROM structure_metrics WHERE source = ?", [source]).fetchone()[0]
    if existing:
        report.updated = con.execute(
            """DELETE FROM structure_metrics m USING _sm_good g
            WHERE m.source = ? AND m.eid = g.eid AND m.label = g.label AND m.side = g.side""",
            [source],
        ).fetchone()[0]
    report.inserted = report.rows_imported - report.updated
    con.execute(
        """INSERT INTO structure_metrics
        SELECT eid, label, side, volume_cm3, fat_fraction, ?, ? FROM _sm_good""",
        [source, provenance_id],
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _sm_eids AS SELECT DISTINCT eid FROM _sm_good")
    con.execute(
        "DELETE FROM metric_sets WHERE source = ? AND eid IN (SELECT eid FROM _sm_eids)", [source]
    )
    con.execute(
        """INSERT INTO metric_sets SELECT eid, ?, ?, ?, now()::TIMESTAMP FROM _sm_eids""",
        [source, simulated, provenance_id],
    )
    affected = con.execute("SELECT eid FROM _sm_eids").df()
    for table in ("_sm_raw", "_sm", "_sm_good", "_sm_eids", "_sm_alias", "_sm_side", "_sm_smap", "_sm_dmap", "_sm_dups"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return report, affected
