"""Export the wide per-participant table (CSV or Parquet) with its data dictionary and a sidecar.

Next to ``cohort.csv`` go ``cohort.dictionary.csv`` (column, unit, definition, source_field of the
exported columns) and ``cohort.json`` (filters, row count, store version, software version), so an
exported file always says what it holds and where it came from.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from store.compartments import LONG_SUFFIX
from store.errors import ExportError
from store.files import atomic_path
from store.filters import CohortFilter
from store.import_notes import import_notes, with_import_notes
from store.metrics import COLUMNS, data_dictionary
from store.version import code_version

# pandas, pyarrow and DuckDB load inside the functions that use them: the CLI reads this module's
# defaults to build `msmv --help`, which must not pay for them.
if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from store.reader import Reader

# The columns an export holds unless others are asked for: identifiers, the study's metrics and outcomes.
DEFAULT_EXPORT_COLUMNS: tuple[str, ...] = (
    "eid", "sex", "age", "height_cm", "weight_kg", "bmi", "grip_max_kg", "alm_kg", "almi", "legs_lean_kg",
    "tmv_cm3", "tvi", "pa_ratio", "lr_asym_dexa_pct", "weak_grip", "low_muscle_mass", "sarcopenia", "died",
    "falls", "simulated", "metric_source", "metric_source_kind", "compartment_level",
)  # fmt: skip
FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet"}
# The QC columns an export carries when the caller hands it the QC table (engine.quality.qc_columns):
# the store holds no flags (they need reference groups), but describes every column it writes.
QC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("qc_flag_count", "count", "Number of quality-control flags of the participant's imaging results (checks "
     "and thresholds: engine/quality/checks.py); 0 when none, empty without imaging"),
    ("qc_flags", "", "The QC flags, '; '-separated: each check's code, with the structure in brackets, e.g. "
     "asymmetry(piriformis); empty when none"),
)
# Every sidecar carries this key: files whose sidecar has it (for the same data file name) are an
# earlier export and may be replaced; anything else already there is the user's and needs ``force``.
SIDECAR_MARKER = "msmv_export"
SIDECAR_FORMAT = 1
# Keys every sidecar had before the marker existed; together they identify an older export.
_LEGACY_SIDECAR_KEYS = frozenset({"file", "store_version", "snapshot", "software_version", "created"})
# A sidecar is a few hundred bytes; a larger "sidecar" is not ours and is not read whole.
_MAX_SIDECAR_BYTES = 1024**2


@dataclass(frozen=True)
class ExportResult:
    path: Path
    dictionary_path: Path
    sidecar_path: Path
    rows: int
    columns: tuple[str, ...]
    store_version: int


def sidecar_paths(out: Path) -> tuple[Path, Path]:
    """(data dictionary CSV, JSON sidecar) written next to ``out``."""
    return out.with_name(out.stem + ".dictionary.csv"), out.with_name(out.stem + ".json")


def _is_earlier_export(sidecar: Path, data_name: str) -> bool:
    """True when ``sidecar`` is the sidecar an export of ``data_name`` wrote."""
    try:
        if not sidecar.is_file() or sidecar.stat().st_size > _MAX_SIDECAR_BYTES:
            return False
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: not one of ours
        return False
    if not isinstance(content, dict) or content.get("file") != data_name:
        return False
    return SIDECAR_MARKER in content or _LEGACY_SIDECAR_KEYS <= content.keys()


def check_targets(out: Path, *, inputs: Iterable[str | os.PathLike[str]] = (), force: bool = False) -> None:
    """Refuse, before anything is written, an export that would overwrite what it should not.

    The data file, its dictionary and its sidecar may never land on one of ``inputs`` (a filter file
    named ``cohort.json`` beside ``cohort.csv``), nor on or under something that is not a folder. Files
    already there may be replaced when they are an earlier export of the same name (its sidecar says
    so) or with ``force``. Raises :class:`~store.errors.ExportError` naming the paths.
    """
    targets = (out, *sidecar_paths(out))
    for target in targets:
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ExportError(f"cannot write {target}: {parent} is a file, not a folder")
                break
        if target.is_dir():
            raise ExportError(f"cannot write {target}: it is a folder; name a file for the export")
    for given in inputs:
        source = Path(given)
        for target in targets:
            if target.exists() and source.exists() and os.path.samefile(target, source):
                raise ExportError(f"the export would overwrite its input {source} (as {target.name}); "
                                  "choose another name for the export")
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not force and not _is_earlier_export(targets[2], out.name):
        names = ", ".join(str(t) for t in existing)
        raise ExportError(f"the export would replace {names}, which {'is' if len(existing) == 1 else 'are'} "
                          f"not from an earlier export of {out.name}; choose another name, or force "
                          "replacing (msmv export --force)")


def _write_all(files: list[tuple[Path, Callable[[Path], object]]]) -> None:
    """Write each ``(path, write(tmp))`` under a temporary name, then rename them all.

    Nothing is renamed until every file is written, so a failure leaves neither a temporary file nor
    a data file without its dictionary. An OS error names the user's file, not the temporary one.
    """
    current = files[0][0]
    try:
        with ExitStack() as stack:
            for path, write in files:
                current = path
                write(stack.enter_context(atomic_path(path)))
            current = files[0][0]
    except OSError as err:
        raise ExportError(f"cannot write {current}: {err.strerror or err}") from err


def _make_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create the folder {out.parent} for {out.name}: {err.strerror or err}") from err


def export(
    reader: Reader,
    out: str | os.PathLike[str],
    filters: CohortFilter | None = None,
    columns: list[str] | None = None,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    qc: pd.DataFrame | None = None,
) -> ExportResult:
    """Write the filtered wide table to ``out`` (.csv or .parquet), plus dictionary and sidecar.

    ``qc`` (``eid``, ``qc_flag_count``, ``qc_flags``: :func:`engine.quality.qc_columns`) adds the QC
    columns, and with it a filter's ``exclude_qc`` leaves out the flagged participants; a filter that
    asks for that without ``qc`` is refused rather than silently ignored.

    Raises ``ValueError`` for an unknown format or column, :class:`~store.errors.ExportError` when the
    files cannot go there (see :func:`check_targets` for ``inputs`` and ``force``). Each file is
    written to a temporary name and renamed, so a reader of ``out`` never sees half a file.
    """
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"export file must end in .csv or .parquet, found {out.name!r}")
    cols = list(columns) if columns else list(DEFAULT_EXPORT_COLUMNS)
    unknown = [c for c in cols if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown export column(s) {unknown}; see the data dictionary for the columns")
    if "eid" not in cols:
        cols.insert(0, "eid")
    check_targets(out, inputs=inputs, force=force)
    filters = filters or CohortFilter()
    if filters.exclude_qc and qc is None:
        raise ValueError("the cohort filter excludes QC-flagged subjects, but no QC table was given to the export")
    table = reader.participants_arrow(filters, cols)
    if qc is not None:
        table = _with_qc(table, qc, exclude=filters.exclude_qc)

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def write_data(tmp: Path) -> None:
        # opened here, not by pyarrow: its errors name the temporary file and carry no strerror
        with open(tmp, "wb") as fh:
            if fmt == "csv":
                pacsv.write_csv(table, fh, pacsv.WriteOptions(quoting_style="needed"))
            else:
                pq.write_table(table, fh)

    dict_path, side_path = sidecar_paths(out)
    dictionary = data_dictionary(reader.field_mapping()).set_index("column").loc[cols].reset_index()
    dictionary = with_import_notes(dictionary, import_notes(reader))  # what imported label maps merged
    if qc is not None:
        import pandas as pd

        qc_rows = pd.DataFrame([(c, u, d, "MSMV") for c, u, d in QC_COLUMNS], columns=list(dictionary.columns))
        dictionary = pd.concat([dictionary, qc_rows], ignore_index=True)
    sidecar = {
        SIDECAR_MARKER: SIDECAR_FORMAT,
        "file": out.name,
        "format": fmt,
        "rows": table.num_rows,
        "columns": table.column_names,
        "filters": json.loads(filters.to_json()),
        "store_version": reader.version,
        "snapshot": reader.path.name,
        "software_version": code_version(),
        "simulated": reader.is_simulated(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _make_parent(out)
    _write_all([(out, write_data), (dict_path, lambda tmp: dictionary.to_csv(tmp, index=False)),
                (side_path, lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8"))])
    return ExportResult(out, dict_path, side_path, table.num_rows, tuple(table.column_names), reader.version)


def _with_qc(table: pa.Table, qc: pd.DataFrame, *, exclude: bool) -> pa.Table:
    """``table`` with the QC columns joined on eid (row order kept), less the flagged rows if ``exclude``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [c for c, _, _ in QC_COLUMNS]
    missing = [c for c in ("eid", *names) if c not in qc.columns]
    if missing:
        raise ValueError(f"the QC table lacks {missing}")
    by_eid = qc.drop_duplicates("eid").set_index("eid")
    eids = table.column("eid").to_pandas()
    count = by_eid["qc_flag_count"].reindex(eids.to_numpy())
    text = by_eid["qc_flags"].reindex(eids.to_numpy())
    table = table.append_column("qc_flag_count", pa.array(count.astype("Int64"), type=pa.int64(), from_pandas=True))
    table = table.append_column("qc_flags", pa.array(text.astype(object), type=pa.string(), from_pandas=True))
    if exclude:
        table = table.filter(pc.invert(pc.fill_null(pc.greater(table.column("qc_flag_count"), 0), False)))
    return table


# -- long per-structure table (msmv export --long) -------------------------------------------------
# One row per participant x imaging visit x metric source x structure x side: the layout other tools'
# users expect. Every stored source is exported side by side (that is the point of the long format);
# ``source_kind`` is added when the store records each source's kind. A source that labels a whole thigh
# compartment (TotalSegmentator's thigh classes) has a row per compartment and side: level "compartment",
# structure "<compartment>_compartment" (store.compartments.LONG_SUFFIX).
LONG_COLUMNS: tuple[str, ...] = ("eid", "instance", "source", "structure", "level", "side", "volume_cm3",
                                 "fat_fraction")
LONG_DICTIONARY: dict[str, tuple[str, str]] = {
    "eid": ("", "UK Biobank participant ID"),
    "instance": ("", "UK Biobank imaging visit (2 = first imaging visit, 3 = repeat imaging)"),
    "source": ("", "Metric source that measured the row: msmv (MSMV's segmentation), a label import "
                   "(msmv import-labels) or a metrics import; every source's rows are exported"),
    "source_kind": ("", "Kind of the source (store.vocabulary.SOURCE_KINDS)"),
    "structure": ("", "Structure key (store/structures.py), e.g. rectus_femoris; its label value is in the "
                      "data dictionary of the wide export. On a compartment row, the compartment: e.g. "
                      f"anterior{LONG_SUFFIX}"),
    "level": ("", "structure: one of the 27 structures; compartment: a whole compartment the source labels as "
                  "one region, its structures not measured one by one (TotalSegmentator's quadriceps_femoris "
                  "+ sartorius = anterior, thigh_medial_compartment = medial, thigh_posterior_compartment = "
                  "posterior). Never add a compartment row to structure rows of the same source"),
    "side": ("", "left or right (unsided labels split at the body's mid-sagittal plane)"),
    "volume_cm3": ("cm3", "Volume of the structure on that side"),
    "fat_fraction": ("0-1", "Fat fraction fat / (fat + water) inside the eroded structure (or compartment) mask; "
                            "empty when the source has none"),
}


def long_table(reader: Reader, filters: CohortFilter | None = None, *, qc: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-structure rows (:data:`LONG_COLUMNS`, plus ``source_kind`` where the store has it) of the
    participants ``filters`` selects; a filter's ``metric_source`` keeps that source's rows only."""
    filters = filters or CohortFilter()
    if filters.exclude_qc and qc is None:
        raise ValueError("the cohort filter excludes QC-flagged subjects, but no QC table was given to the export")
    eids = reader.participants_arrow(filters, ["eid"]).column("eid").to_pylist()
    if qc is not None and filters.exclude_qc:
        flagged = set(qc.loc[qc["qc_flag_count"].fillna(0) > 0, "eid"].astype(int))
        eids = [e for e in eids if e not in flagged]
    rows = _with_compartments(reader.structure_metrics(eids=eids, all_sources=True),
                              reader.compartment_metrics(eids=eids))
    if filters.metric_source is not None:
        rows = rows[rows["source"] == filters.metric_source]
    columns = list(LONG_COLUMNS)
    if "source_kind" in reader.query("SELECT * FROM metric_sets LIMIT 0").columns:
        kinds = reader.query("SELECT eid, instance, source, source_kind FROM metric_sets")
        rows = rows.merge(kinds, on=["eid", "instance", "source"], how="left")
        columns.insert(columns.index("source") + 1, "source_kind")
    rows = rows.sort_values(["eid", "instance", "source", "label", "side"], kind="stable")
    return rows[columns].reset_index(drop=True)


def _with_compartments(structures: pd.DataFrame, compartments: pd.DataFrame) -> pd.DataFrame:
    """Structure rows (``level`` structure) and compartment rows (``level`` compartment, ``structure`` named
    ``<compartment>_compartment``, sorted after the 27 structures in compartment order) as one long table."""
    import pandas as pd

    from store.structures import COMPARTMENTS, STRUCTURES

    rows = structures.rename(columns={"key": "structure"}).assign(level="structure")
    if compartments.empty:
        return rows
    comp = compartments.assign(
        structure=compartments["compartment"] + LONG_SUFFIX, level="compartment",
        label=len(STRUCTURES) + 1 + compartments["compartment"].map(COMPARTMENTS.index))
    return pd.concat([rows, comp[[c for c in comp.columns if c in rows.columns]]], ignore_index=True)


def export_long(
    reader: Reader,
    out: str | os.PathLike[str],
    filters: CohortFilter | None = None,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    qc: pd.DataFrame | None = None,
) -> ExportResult:
    """Write :func:`long_table` to ``out`` (.csv or .parquet) with its dictionary and sidecar; the same
    rules as :func:`export` for ``inputs``, ``force``, ``qc`` and the files' atomic replacement."""
    import pandas as pd

    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"export file must end in .csv or .parquet, found {out.name!r}")
    check_targets(out, inputs=inputs, force=force)
    filters = filters or CohortFilter()
    table = long_table(reader, filters, qc=qc)

    def write_data(tmp: Path) -> None:
        if fmt == "csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)

    dict_path, side_path = sidecar_paths(out)
    dictionary = pd.DataFrame([(c, *LONG_DICTIONARY[c], "MSMV") for c in table.columns],
                              columns=["column", "unit", "definition", "source_field"])
    sidecar = {
        SIDECAR_MARKER: SIDECAR_FORMAT, "file": out.name, "format": fmt, "kind": "long", "rows": len(table),
        "columns": list(table.columns), "participants": int(table["eid"].nunique()),
        "sources": sorted(table["source"].unique().tolist()), "filters": json.loads(filters.to_json()),
        "store_version": reader.version, "snapshot": reader.path.name, "software_version": code_version(),
        "simulated": reader.is_simulated(), "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _make_parent(out)
    _write_all([(out, write_data), (dict_path, lambda tmp: dictionary.to_csv(tmp, index=False)),
                (side_path, lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8"))])
    return ExportResult(out, dict_path, side_path, len(table), tuple(table.columns), reader.version)


# -- in-memory bundles (the dashboard's Export page) ------------------------------------------------
def export_zip(
    reader: Reader,
    fmt: str = "csv",
    filters: CohortFilter | None = None,
    columns: list[str] | None = None,
    *,
    stem: str = "cohort",
    qc: pd.DataFrame | None = None,
) -> tuple[bytes, ExportResult]:
    """The same three files :func:`export` writes (data, dictionary, sidecar), zipped in memory."""
    suffix = {v: k for k, v in FORMATS.items()}.get(fmt)
    if suffix is None:
        raise ValueError(f"export format must be one of {sorted(FORMATS.values())}, found {fmt!r}")
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="msmv-export-") as tmp:
        result = export(reader, Path(tmp) / f"{stem}{suffix}", filters=filters, columns=columns, qc=qc)
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in (result.path, result.dictionary_path, result.sidecar_path):
                zf.write(p, arcname=p.name)
    return buf.getvalue(), result


# -- aggregate tables with small-count suppression -------------------------------------------------
# UK Biobank asks that no published table shows a cell describing fewer than 5 participants
# (UK Biobank Access Procedures, "publication of results": small-cell suppression).
SMALL_COUNT_THRESHOLD = 5


def aggregate(df: pd.DataFrame, by: list[str], values: list[str] | None = None) -> pd.DataFrame:
    """Participant count ``n`` per group of ``by`` and the mean of each ``values`` column."""
    missing = [c for c in [*by, *(values or [])] if c not in df.columns]
    if missing:
        raise ValueError(f"cannot aggregate over unknown column(s) {missing}")
    if not by:
        raise ValueError("aggregate needs at least one grouping column, found none")
    grouped = df.groupby(by, dropna=False, observed=True)
    out = grouped.size().rename("n").to_frame()
    for col in values or []:
        out[f"mean_{col}"] = grouped[col].mean()
    return out.reset_index()


def suppress_small_counts(
    table: pd.DataFrame,
    count_columns: list[str] | None = None,
    *,
    threshold: int = SMALL_COUNT_THRESHOLD,
    dependent: list[str] | None = None,
) -> pd.DataFrame:
    """Show counts below ``threshold`` as ``"<threshold"`` (e.g. ``"<5"``).

    ``count_columns``: the columns holding participant counts (default ``["n"]``); ``dependent``:
    columns computed from those few participants (means, shares) that are blanked in a suppressed
    row, so they cannot reveal them either (default: every column starting with ``mean_``). Counts
    and blanked cells become strings/None, so the result is for display or publication only.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"threshold must be a positive integer, found {threshold!r}")
    counts = count_columns or ["n"]
    missing = [c for c in counts if c not in table.columns]
    if missing:
        raise ValueError(f"count column(s) {missing} not in the table; found {list(table.columns)}")
    dependent = dependent if dependent is not None else [c for c in table.columns if str(c).startswith("mean_")]
    import pandas as pd

    out = table.copy()
    small = pd.Series(False, index=out.index)
    for col in counts:
        values = pd.to_numeric(out[col], errors="raise")
        hit = values < threshold
        small |= hit
        out[col] = [f"<{threshold}" if h else str(int(v)) for h, v in zip(hit, values, strict=True)]
    for col in dependent:
        out[col] = out[col].astype(object).where(~small, None)
    return out


def export_aggregate(
    reader: Reader,
    out: str | os.PathLike[str],
    by: list[str],
    values: list[str] | None = None,
    filters: CohortFilter | None = None,
    *,
    threshold: int | None = SMALL_COUNT_THRESHOLD,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
) -> ExportResult:
    """Write an aggregate table (count and means per group of ``by``) as CSV, with dictionary and sidecar.

    ``threshold``: counts below it are written as ``"<threshold"`` and their means left empty
    (``None``: no suppression). The sidecar records the threshold next to the filters and versions.
    ``inputs`` and ``force`` as for :func:`export`.
    """
    import pandas as pd

    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"an aggregate table is written as .csv, found {out.name!r}")
    check_targets(out, inputs=inputs, force=force)
    filters = filters or CohortFilter()
    if filters.exclude_qc:  # the flags come from engine.quality, which an aggregate export does not consult
        raise ValueError("an aggregate export cannot exclude QC-flagged subjects; drop exclude_qc from the filter")
    table = aggregate(reader.participants(filters, list(dict.fromkeys([*by, *(values or [])]))), by, values)
    if threshold is not None:
        table = suppress_small_counts(table, threshold=threshold)
    dict_path, side_path = sidecar_paths(out)
    known = data_dictionary(reader.field_mapping()).set_index("column")
    rows = [(c, *known.loc[c, ["unit", "definition", "source_field"]]) for c in by]
    rows.append(("n", "participants", "Number of participants in the group"
                 + (f"; counts below {threshold} shown as <{threshold}" if threshold is not None else ""), ""))
    rows += [(f"mean_{c}", known.loc[c, "unit"], f"Mean of {c}: {known.loc[c, 'definition']}",
              known.loc[c, "source_field"]) for c in values or []]
    dictionary = pd.DataFrame(rows, columns=["column", "unit", "definition", "source_field"])
    sidecar = {
        SIDECAR_MARKER: SIDECAR_FORMAT, "file": out.name, "format": "csv", "kind": "aggregate", "rows": len(table), "group_by": by,
        "means_of": values or [], "small_count_threshold": threshold, "filters": json.loads(filters.to_json()),
        "participants": reader.count(filters), "store_version": reader.version, "snapshot": reader.path.name,
        "software_version": code_version(), "simulated": reader.is_simulated(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _make_parent(out)
    _write_all([(out, lambda tmp: table.to_csv(tmp, index=False)),
                (dict_path, lambda tmp: dictionary.to_csv(tmp, index=False)),
                (side_path, lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8"))])
    return ExportResult(out, dict_path, side_path, len(table), tuple(table.columns), reader.version)
