"""Store commands: ``import-phenotypes``, ``import-metrics``, ``export`` and ``status``."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

# Light modules only at the top (store.export's defaults feed the help text); the reader and writer
# (DuckDB, pandas) and tqdm load in the handlers, so `msmv --help` does not pay for them.
from store.errors import NoSnapshotError
from store.export import DEFAULT_EXPORT_COLUMNS, SMALL_COUNT_THRESHOLD
from store.filters import CohortFilter
from store.home import home

if TYPE_CHECKING:
    import pandas as pd

    from store.importers.report import ImportReport
    from store.reader import Reader

T = TypeVar("T")
# A filter file holds a few keys; anything much larger is the wrong file and is not read into memory.
MAX_FILTER_FILE_BYTES = 1024**2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-phenotypes", help="import a UK Biobank phenotype CSV/TSV into the store")
    p.add_argument("file", type=Path, help="CSV/TSV with eid and field columns (50-2.0 or p50_i2 style)")
    p.add_argument("--fields", type=Path, help="field mapping TOML (default: $MSMV_HOME/fields.toml or the shipped one)")
    p.add_argument("--source", default="ukb", help="source label stored with the rows (default: ukb)")
    p.add_argument("--simulated", action="store_true", help="flag the rows as simulated data")
    p.set_defaults(func=_import_phenotypes)

    p = sub.add_parser("import-metrics", help="import per-structure volumes (eid, structure, side, volume_cm3)")
    p.add_argument("file", type=Path, help="CSV or Parquet, one row per eid x structure x side")
    p.add_argument("--source", default="ukb", help="source label stored with the rows (default: ukb)")
    p.add_argument("--simulated", action="store_true", help="flag the rows as simulated data")
    p.set_defaults(func=_import_metrics)

    p = sub.add_parser("export", help="export one row per participant (--long: per structure and source) with a data dictionary and sidecar")
    p.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet")
    p.add_argument("--filters", type=Path, help="cohort filter JSON, e.g. {\"sex\": [0], \"age\": [60, 70]}")
    p.add_argument("--columns", help=f"comma-separated columns (default: {','.join(DEFAULT_EXPORT_COLUMNS)})")
    p.add_argument("--aggregate", metavar="BY",
                   help="write an aggregate table instead of participant rows: counts (and the means of "
                        "--columns) per group of these comma-separated columns, e.g. sex,age_stratum")
    p.add_argument("--long", action="store_true",
                   help="write per-structure rows instead of participant rows: eid, instance, source(, "
                        "source_kind), structure, level (structure, or compartment for a whole-compartment "
                        "region), side, volume_cm3, fat_fraction, for every metric source of "
                        "the filtered participants (the layout other tools' users expect)")
    p.add_argument("--force", action="store_true",
                   help="replace existing files of that name that are no earlier export (never an input)")
    p.add_argument("--min-count", type=int, default=SMALL_COUNT_THRESHOLD,
                   help=f"with --aggregate: counts below this are shown as '<N' and their means left empty "
                        f"(default {SMALL_COUNT_THRESHOLD}, as UK Biobank asks for public material; 0 = none)")
    p.set_defaults(func=_export)

    p = sub.add_parser("status", help="show the published store; exit 1 if there is none")
    p.add_argument("--quiet", action="store_true", help="print nothing; only the exit status")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_status)


def _with_spinner(label: str, work: Callable[[], T]) -> T:
    """Run ``work()`` showing a tqdm timer (imports are one SQL transaction: no row-wise progress)."""
    from tqdm import tqdm

    done = threading.Event()
    bar = tqdm(desc=label, bar_format="{desc}: {elapsed}", file=sys.stderr, disable=None)

    def tick() -> None:
        while not done.wait(0.5):
            bar.refresh()

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    try:
        return work()
    finally:
        done.set()
        t.join()
        bar.close()


def _user_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Bad input (a malformed file, mapping, filter or column name) is a message and exit 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ValueError as err:
            print(f"msmv {args.command}: error: {err}", file=sys.stderr)
            return 2

    return run


def _print_report(args: argparse.Namespace, report: ImportReport) -> int:
    """Print the report; exit status 2 when not one row could be imported (the report says why)."""
    print(report.summary())
    if report.rows_imported:
        return 0
    if report.rows_read:
        why = f"all {report.rows_read:,} rows have problems" + (f" (report: {report.error_path})"
                                                                  if report.error_path else "")
    else:
        why = "it has a header but no rows"
    print(f"msmv {args.command}: error: nothing imported from {args.file}: {why}", file=sys.stderr)
    return 2


@_user_errors
def _import_phenotypes(args: argparse.Namespace) -> int:
    from store.writer import Writer

    with Writer(home()) as w:
        report = _with_spinner(
            f"importing {args.file.name}",
            lambda: w.import_phenotypes(args.file, mapping=args.fields, source=args.source, simulated=args.simulated),
        )
    return _print_report(args, report)


@_user_errors
def _import_metrics(args: argparse.Namespace) -> int:
    from store.writer import Writer

    with Writer(home()) as w:
        report = _with_spinner(
            f"importing {args.file.name}",
            lambda: w.import_metrics(args.file, source=args.source, simulated=args.simulated),
        )
    return _print_report(args, report)


@_user_errors
def _export(args: argparse.Namespace) -> int:
    from store.export import export, export_aggregate
    from store.reader import Reader

    filters = _read_filters(args.filters) if args.filters else None
    inputs = [args.filters] if args.filters else []
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    started = time.perf_counter()
    if args.long and (args.aggregate or columns):
        raise ValueError("--long writes its own columns, one row per structure and side; drop "
                         f"{'--aggregate' if args.aggregate else '--columns'}")
    if args.long:
        return _export_long(args, filters, inputs, started)
    if args.aggregate:
        by = [c.strip() for c in args.aggregate.split(",") if c.strip()]
        with Reader(home()) as r:
            result = export_aggregate(r, args.out, by, columns, filters, threshold=args.min_count or None,
                                      inputs=inputs, force=args.force)
        print(f"exported an aggregate table of {result.rows:,} groups by {', '.join(by)} to {result.path} "
              f"(small counts < {args.min_count or 'off'} suppressed)\n  sidecar: {result.sidecar_path}")
        return 0
    with Reader(home()) as r:
        # the default columns carry QC; an explicit --columns list is exactly what is written, unless the
        # filter's exclude_qc needs the flags
        qc = _qc_table(r) if columns is None or (filters is not None and filters.exclude_qc) else None
        result = export(r, args.out, filters=filters, columns=columns, inputs=inputs, force=args.force, qc=qc)
    print(
        f"exported {result.rows:,} participants x {len(result.columns)} columns to {result.path} "
        f"(store version {result.store_version}, {time.perf_counter() - started:.1f} s)\n"
        f"  dictionary: {result.dictionary_path}\n  sidecar:    {result.sidecar_path}"
    )
    return 0


def _qc_table(reader: Reader) -> pd.DataFrame:
    """``eid, qc_flag_count, qc_flags`` of every participant with imaging (engine.quality)."""
    from engine.quality import qc_columns, stored_report

    report = stored_report(reader)
    return qc_columns(report, report.subjects["eid"])


def _export_long(args: argparse.Namespace, filters: CohortFilter | None, inputs: list[Path], started: float) -> int:
    from store.export import export_long
    from store.reader import Reader

    with Reader(home()) as r:
        qc = _qc_table(r) if filters is not None and filters.exclude_qc else None  # only to leave flagged ones out
        result = export_long(r, args.out, filters, inputs=inputs, force=args.force, qc=qc)
    print(f"exported {result.rows:,} structure rows ({', '.join(result.columns)}) to {result.path} "
          f"(store version {result.store_version}, {time.perf_counter() - started:.1f} s)\n"
          f"  dictionary: {result.dictionary_path}\n  sidecar:    {result.sidecar_path}")
    return 0


def _read_filters(path: Path) -> CohortFilter:
    """The cohort filter in a JSON file; ValueError naming the file for anything unusable in it."""
    if not path.exists():
        raise ValueError(f"--filters {path}: no such file")
    if not path.is_file():  # a folder, or a device such as /dev/zero that would never end
        raise ValueError(f"--filters {path}: not a regular file; expected a JSON file such as {{\"sex\": [0]}}")
    if path.stat().st_size > MAX_FILTER_FILE_BYTES:
        raise ValueError(f"--filters {path}: {path.stat().st_size:,} bytes; a filter file is at most "
                         f"{MAX_FILTER_FILE_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--filters {path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise ValueError(f"--filters {path}: cannot read it: {err.strerror or err}") from err
    try:
        return CohortFilter.from_json(text)
    except (TypeError, ValueError) as err:  # TypeError: a value of the wrong JSON type
        raise ValueError(f"--filters {path}: {err}") from err


def _status(args: argparse.Namespace) -> int:
    from store.reader import Reader

    h = home()
    try:
        with Reader(h) as r:
            summary = r.summary()
    except NoSnapshotError as err:
        if args.json:
            print(json.dumps({"home": str(h.root), "published": False, "message": str(err)}))
        elif not args.quiet:
            print(str(err), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"home": str(h.root), "published": True, **summary}))
    elif not args.quiet:
        jobs = ", ".join(f"{k} {v}" for k, v in summary["jobs"].items()) or "none"
        print(
            f"MSMV store {h.root}: version {summary['version']}\n"
            f"  participants {summary['participants']:,}, with imaging {summary['with_imaging']:,}"
            f"{' (SIMULATED data)' if summary['simulated'] else ''}\n  jobs: {jobs}"
        )
    return 0
