"""Participants who withdrew from UK Biobank: remove everything of theirs, remember only that they left.

UK Biobank sends applications lists of withdrawn participants; their data must leave every copy the
application holds. :meth:`store.writer.Writer.withdraw` runs :func:`remove_rows` in one transaction
(participants, phenotype instances, visit dates, metrics, artifacts, jobs and the provenance rows only
they used), deletes their files (:func:`remove_files`: artifact folder, queued and claimed packages,
scratch, error-report rows), rewrites the store file so freed pages holding their values are gone, and
re-publishes a single snapshot. What is kept is the ``withdrawals`` row (eid and date): every import
refuses a withdrawn eid with a reason in its report.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from store.errors import WithdrawnError
from store.files import atomic_path
from store.home import Home
from store.metrics import WIDE_TABLE
from store.vocabulary import parse_eid

# The reason an import gives for a refused row (the eid itself is not repeated in the report).
REFUSED_REASON = "participant withdrew from UK Biobank; not imported"
# Error reports the writer leaves next to the store (see Writer._error_file).
ERROR_REPORT_GLOB = "import-errors-v*.csv"

# The one table that keeps a withdrawn eid. Every other table with an eid column is emptied of them,
# found from the catalogue, so a table added by a later migration is covered without a change here.
_KEPT_TABLE = "withdrawals"


@dataclass
class WithdrawalReport:
    """What :meth:`store.writer.Writer.withdraw` removed."""

    eids: list[int]
    problems: list[str] = field(default_factory=list)  # lines of the file that name no participant
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed
    files: list[Path] = field(default_factory=list)  # files and folders removed
    error_reports: int = 0  # error-report files rewritten without the participants' rows
    snapshots_removed: int = 0
    store_version: int = 0

    def summary(self) -> str:
        rows = ", ".join(f"{n:,} {table}" for table, n in self.rows.items() if n) or "no rows"
        lines = [f"withdrew {len(self.eids):,} participant(s): removed {rows}; {len(self.files):,} file(s) or "
                 f"folder(s); rewrote {self.error_reports} error report(s); replaced {self.snapshots_removed} "
                 f"older snapshot(s); store version {self.store_version}"]
        lines += [f"  skipped {p}" for p in self.problems]
        return "\n".join(lines)


def read_withdrawal_file(path: str | os.PathLike[str]) -> tuple[list[int], list[str]]:
    """The eids listed in a UK Biobank withdrawal file (one per line) and a note per unusable line.

    Blank lines and ``#`` comments (whole-line or trailing) are ignored; each eid is kept once.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such withdrawal file: {path}")
    eids: dict[int, None] = {}
    problems: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        eid = parse_eid(text)
        if eid is None:
            problems.append(f"line {number}: {text[:40]!r} is not a participant ID (a positive whole number)")
        else:
            eids[eid] = None
    return list(eids), problems


def withdrawn_on(con: duckdb.DuckDBPyConnection, eid: int) -> date | None:
    """The date ``eid``'s withdrawal was recorded, or None."""
    row = con.execute("SELECT withdrawn_on FROM withdrawals WHERE eid = ?", [int(eid)]).fetchone()
    return row[0] if row else None


def refuse(con: duckdb.DuckDBPyConnection, eid: int) -> None:
    """Raise :class:`WithdrawnError` when ``eid`` withdrew (engine results are refused whole)."""
    when = withdrawn_on(con, eid)
    if when is not None:
        raise WithdrawnError(f"participant {eid} withdrew from UK Biobank (recorded {when:%Y-%m-%d}); "
                             "their results are not stored")


def remove_rows(con: duckdb.DuckDBPyConnection, eids: list[int], today: date) -> tuple[dict[str, int], list[Path]]:
    """Delete the participants' rows and record the withdrawals, inside the caller's transaction.

    Returns rows removed per table and the files their rows named (packages, artifacts) for
    :func:`remove_files`.
    """
    frame = pd.DataFrame({"eid": pd.Series(eids, dtype="int64")})
    con.register("_withdrawn_frame", frame)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _withdrawn AS SELECT DISTINCT eid FROM _withdrawn_frame")
    finally:
        con.unregister("_withdrawn_frame")
    named = [Path(p) for (p,) in con.execute(
        """SELECT input_path FROM jobs WHERE eid IN (SELECT eid FROM _withdrawn) AND input_path IS NOT NULL
        UNION SELECT path FROM artifacts WHERE eid IN (SELECT eid FROM _withdrawn)""").fetchall()]
    named += [Path("work") / job for (job,) in con.execute(
        "SELECT job_id FROM jobs WHERE eid IN (SELECT eid FROM _withdrawn)").fetchall()]
    eid_tables = _tables_with(con, "eid")
    linked = [t for t in _tables_with(con, "provenance_id") if t in eid_tables]
    # Provenance rows used by nobody else go too (an engine row holds the package's hash).
    theirs = " UNION ".join(f"SELECT provenance_id FROM {t} WHERE eid IN (SELECT eid FROM _withdrawn)" for t in linked)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _withdrawn_prov AS SELECT provenance_id AS id FROM ({theirs}) "
                "WHERE provenance_id IS NOT NULL")
    removed: dict[str, int] = {}
    for table in eid_tables:
        removed[table] = con.execute(f"DELETE FROM {table} WHERE eid IN (SELECT eid FROM _withdrawn)").fetchone()[0]
    still = " UNION ".join(f"SELECT provenance_id FROM {t} WHERE provenance_id IS NOT NULL" for t in linked)
    removed["provenance"] = con.execute(
        f"DELETE FROM provenance WHERE id IN (SELECT id FROM _withdrawn_prov) AND id NOT IN ({still})"
    ).fetchone()[0]
    removed.pop(WIDE_TABLE, None)  # derived: counted through participants
    con.execute(
        "INSERT INTO withdrawals SELECT eid, ? FROM _withdrawn ON CONFLICT DO NOTHING", [today]
    )
    con.execute("DROP TABLE _withdrawn")
    con.execute("DROP TABLE _withdrawn_prov")
    return removed, named


def _tables_with(con: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    """The store's own tables having ``column`` (the withdrawals table left out), in name order."""
    rows = con.execute(
        """SELECT DISTINCT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE c.table_schema = 'main' AND c.table_catalog = current_database() AND t.table_type = 'BASE TABLE'
        AND c.column_name = ? AND c.table_name <> ? ORDER BY 1""",
        [column, _KEPT_TABLE],
    ).fetchall()
    return [r[0] for r in rows]


def remove_files(home: Home, eids: list[int], named: list[Path]) -> list[Path]:
    """Delete the participants' files under ``home``: artifact folders, the files their rows named,
    queued inbox packages (by ticket or UK Biobank file name) and scratch folders. Returns what went.

    Only paths inside ``home`` are touched: a row naming a file elsewhere is the user's own copy.
    """
    wanted = {int(e) for e in eids}
    targets = [home.artifact_dir(e) for e in sorted(wanted)]
    targets += [p if p.is_absolute() else home.root / p for p in named]
    for ticket in home.inbox.glob("*.json") if home.inbox.is_dir() else []:
        try:
            data = json.loads(ticket.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("eid") in wanted or _ukb_eid(str(data.get("original_name", ""))) in wanted:
            targets += [ticket, ticket.with_suffix(".zip")]
    for package in home.inbox.glob("*.zip") if home.inbox.is_dir() else []:
        if _ukb_eid(package.name) in wanted:
            targets.append(package)
    root = home.root.resolve()
    gone: list[Path] = []
    for target in dict.fromkeys(targets):
        if not target.resolve().is_relative_to(root) or not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
        gone.append(target)
    return gone


def _ukb_eid(name: str) -> int | None:
    """The eid of a UK Biobank bulk file name (``{eid}_{field}_{instance}_{array}.ext``), else None."""
    head = Path(name).name.split("_", 1)[0]
    return parse_eid(head) if "_" in Path(name).name else None


def scrub_error_reports(home: Home, eids: list[int]) -> int:
    """Rewrite the import error reports without the participants' rows; returns the files rewritten."""
    wanted = {str(int(e)) for e in eids}
    rewritten = 0
    for path in sorted(home.store_db.parent.glob(ERROR_REPORT_GLOB)):
        report = pd.read_csv(path, dtype=str, keep_default_na=False)
        mine = report["value"].isin(wanted) if "value" in report else pd.Series(False, index=report.index)
        if "eid" in report:
            mine |= report["eid"].isin(wanted)
        if mine.any():
            with atomic_path(path) as tmp:
                report[~mine].to_csv(tmp, index=False)
            rewritten += 1
    return rewritten
