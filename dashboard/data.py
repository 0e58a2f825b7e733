"""Cached reads of the published store snapshot, keyed by snapshot version + cohort filter.

Each load opens a short-lived read-only :class:`store.reader.Reader` and closes it: a connection kept
in ``st.cache_resource`` would pin an old snapshot and hold a file the writer wants to replace.
Results are cached with ``st.cache_data``; a new snapshot version is a new cache key, so the
dashboard shows fresh data as soon as the engine publishes.

This module is the dashboard's only read path: pages call these loaders and never open a reader,
scan the inbox or locate files themselves. What is not in the snapshot (artifact files, the active
checkpoint, the inbox and running workers) is keyed by the files' modification times instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pandas as pd
import streamlit as st

from dashboard.access import small_cells_dropped
from dashboard.figures.cached import packed, unpacked
from dashboard.sidebar import FilterOptions, filter_options
from engine.cohort.agreement import PAIR_COLUMNS, paired
from engine.cohort.visits import VisitChange, visit_change
from engine.imaging.mesh import SceneMeshes, load_meshes
from engine.imaging.volume import Volume, read_nrrd
from engine.interop.bundle import BUNDLE_SUFFIX
from engine.interop.importer import LABELS_KIND, MESHES_KIND
from engine.quality import QualityReport, qc_columns, stored_report
from engine.quality.flags import parse_details
from engine.segmentation.checkpoint import active_checkpoint, read_sidecar
from engine.service.jobs import jobs_table
from engine.service.pipeline import STAGE_FILE
from store import compartments
from store.errors import NoSnapshotError
from store.export import export_zip
from store.filters import CohortFilter
from store.home import Home, home
from store.import_notes import import_notes, with_import_notes
from store.metrics import data_dictionary as _dictionary
from store.reader import Reader
from store.vocabulary import source_title

T = TypeVar("T")
VIEW_KEY = "msmv_view"  # DataFrame.attrs entry naming the snapshot view a frame came from
# Filtered views kept per process: one 37k x ~150-column frame is ~45 MB, so 8 stay under 0.4 GB.
_CACHE_ENTRIES = 8
_OPTION_COLUMNS = ["age", "bmi", "centre", "source"]
_VOLUME_CACHE = 4  # label map + one image per subject is ~100 MB at UKB size; keep a couple of subjects
_BUNDLE_CACHE = 2  # a whole-cohort export zip is tens of MB: keep the last one or two asked for
_SEGMENTATION_KINDS = (LABELS_KIND, MESHES_KIND)  # artifacts that belong to one source's segmentation


def current_home() -> Home:
    """The MSMV home the dashboard reads (``$MSMV_HOME`` or ./data)."""
    return home()


def snapshot_version(root: str | None = None) -> int:
    """Version of the newest published snapshot; raises ``store.errors.NoSnapshotError`` if none."""
    with Reader(home(root)) as reader:
        return int(reader.version)


def _params(flt: CohortFilter | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(flt.to_query_params().items())) if flt is not None else ()


# cache_resource: one frame per view and process, never pickled. A cache_data hit unpickles a whole copy,
# about 1 s a rerun at 500,000 participants (benchmarks/pages.py); participants() hands out shallow copies,
# and pandas' copy-on-write keeps the cached frame's values from being changed through them.
@st.cache_resource(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _participants(root: str, version: int, params: tuple[tuple[str, str], ...],
                  columns: tuple[str, ...] | None, min_cell: int = 1) -> pd.DataFrame:
    flt = CohortFilter.from_query_params(dict(params)) if params else None
    # ``version`` is the cache key; if a newer snapshot was published since, the Reader opens that one
    # and the frame is tagged with what it really holds (the next run's key moves on too). ``min_cell``
    # is part of the tag, so no per_view result computed for one visitor is served to a less trusted one.
    with Reader(home(root)) as reader:
        df = reader.participants(flt, columns=list(columns) if columns else None)
        read_version = int(reader.version)
    if flt is not None and flt.exclude_qc:  # the one place the sidebar's "exclude QC-flagged" is applied
        df = df[~df["eid"].isin(_quality(root, read_version).flagged["eid"])].reset_index(drop=True)
    df = small_cells_dropped(df, min_cell)
    df.attrs[VIEW_KEY] = (root, read_version, params, columns, min_cell)
    return df


def participants(version: int, flt: CohortFilter | None = None, columns: list[str] | None = None,
                 *, root: str | None = None, min_cell: int = 1) -> pd.DataFrame:
    """The filtered wide per-participant table of snapshot ``version`` (cached).

    ``min_cell`` > 1 leaves out every sex x age-stratum cell smaller than it (the access policy's
    aggregate view, :func:`dashboard.access.small_cells_dropped`).
    """
    return _participants(str(home(root).root), version, _params(flt), tuple(columns) if columns else None,
                         int(min_cell)).copy(deep=False)


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _options(root: str, version: int) -> FilterOptions:
    opts = filter_options(participants(version, None, _OPTION_COLUMNS, root=root))
    sources = metric_sources(version, root=root)
    titles: dict[str, list[str]] = {}
    for r in sources.itertuples():  # a name written under two kinds is one choice
        titles.setdefault(str(r.source), []).append(str(r.source_kind))
    return replace(opts, metric_sources=tuple((name, source_title(name, *kinds)) for name, kinds in titles.items()))


def options(version: int, *, root: str | None = None) -> FilterOptions:
    """Sidebar widget bounds and choices for snapshot ``version`` (cached)."""
    return _options(str(home(root).root), version)


@st.cache_data(show_spinner=False, max_entries=16 * _CACHE_ENTRIES)  # tables and figures: small
def _per_view(name: str, view: tuple, args: tuple, _fn: Callable[..., T], _df: pd.DataFrame) -> T:
    # Arguments starting with "_" are not hashed: the key is the function's name, the view and the args.
    return packed(_fn(_df, *args))  # figures kept as dicts: unpickling a go.Figure re-validates it


def per_view(fn: Callable[..., T], df: pd.DataFrame, *args: object) -> T:
    """``fn(df, *args)``, cached per snapshot version + filter (and ``args``) when ``df`` came from
    :func:`participants`.

    Tables and figures of a page are then computed once per view rather than on every rerun; a frame
    of unknown origin (modified, or built elsewhere) is never cached. ``args`` (a pair's name, a frozen
    options dataclass) are part of the key, so they must be hashable by ``st.cache_data``.
    """
    if fn.__name__ == "<lambda>":
        raise ValueError("per_view needs a named function (its name is the cache key), got a lambda")
    view = df.attrs.get(VIEW_KEY)
    if view is None:
        return fn(df, *args)
    # Page scripts all run as "__main__": the defining file keeps their helpers apart.
    code = getattr(fn, "__code__", None)
    name = f"{code.co_filename if code else fn.__module__}:{fn.__qualname__}"
    return unpacked(_per_view(name, view, args, fn, df))


# ------------------------------------------------------------------------ metric sources


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _metric_sources(root: str, version: int) -> pd.DataFrame:
    with Reader(home(root)) as reader:
        return reader.metric_sources()


def metric_sources(version: int, *, root: str | None = None) -> pd.DataFrame:
    """The stored metric sources (:meth:`store.reader.Reader.metric_sources`), default order first (cached)."""
    return _metric_sources(str(home(root).root), version)


def source_pairs(version: int, flt: CohortFilter | None, first: str, second: str, *, root: str | None = None,
                 min_cell: int = 1) -> pd.DataFrame:
    """The cohort's participants both metric sources measured, paired (:func:`engine.cohort.agreement.paired`).

    Each source's rows are the cached :func:`participants` view with that ``metric_source``, so the
    sidebar filter and the access policy's ``min_cell`` apply to both.
    """
    base = flt or CohortFilter()
    a, b = (participants(version, replace(base, metric_source=s), list(PAIR_COLUMNS), root=root, min_cell=min_cell)
            for s in (first, second))
    return paired(a, b)


# ------------------------------------------------------------------------ quality control


@st.cache_data(show_spinner="Computing the QC flags…", max_entries=2)
def _quality(root: str, version: int) -> QualityReport:
    with Reader(home(root)) as reader:
        return stored_report(reader)


def quality(version: int, *, root: str | None = None) -> QualityReport:
    """The QC flags of every imaged subject in snapshot ``version`` (cached; :mod:`engine.quality`)."""
    return _quality(str(home(root).root), version)


@st.cache_data(show_spinner=False, max_entries=64)
def _edge_labels(root: str, version: int, eid: int, instance: int | None) -> frozenset[int] | None:
    with Reader(home(root)) as reader:
        prov = reader.imaging_provenance(eid)
    if instance is not None:
        prov = prov[prov["instance"] == instance]
    if prov.empty:
        return None
    details = parse_details(prov["details"].iloc[0])
    if "touches_edge" not in details:
        return None
    return frozenset(int(x) for x in details["touches_edge"])


def edge_labels(version: int, eid: int, *, instance: int | None = None, root: str | None = None) -> frozenset[int] | None:
    """Labels of participant ``eid``'s structures that reach the first or last slice of the scan (its
    engine summary); None when the stored results do not say (processed before it was recorded, or imported)."""
    return _edge_labels(str(home(root).root), version, int(eid), None if instance is None else int(instance))


# ------------------------------------------------------------------------ one participant


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _processed_eids(root: str, version: int) -> list[int]:
    df = participants(version, None, ["eid", "has_imaging", "simulated"], root=root)
    imaged = df.loc[df["has_imaging"].fillna(False).astype(bool) & ~df["simulated"].fillna(False).astype(bool), "eid"]
    with Reader(home(root)) as reader:
        jobs = reader.jobs("done")
    done = jobs["eid"].dropna().astype(int) if "eid" in jobs.columns else pd.Series([], dtype=int)
    return sorted({int(e) for e in imaged} | {int(e) for e in done})


def processed_eids(version: int, *, root: str | None = None) -> list[int]:
    """Participants with processed imaging: finished jobs, and non-simulated rows with MRI metrics (cached)."""
    return _processed_eids(str(home(root).root), version)


@st.cache_data(show_spinner=False, max_entries=64)
def _artifacts(root: str, version: int, eid: int, instance: int | None, source: str | None) -> dict[str, str]:
    with Reader(home(root)) as reader:
        arts = reader.artifacts(eid, instance)
    if source is not None:  # the source's own files first; the scan's images of any source after them
        own = arts["source"] == source
        arts = pd.concat([arts[own], arts[~own & ~arts["kind"].isin(_SEGMENTATION_KINDS)]])
    found: dict[str, str] = {}
    for r in arts.itertuples():  # earliest visit first: it keeps a kind both visits have
        if Path(str(r.path)).is_file():
            found.setdefault(str(r.kind), str(r.path))
    return found


def artifacts(version: int, eid: int, *, instance: int | None = None, source: str | None = None,
              root: str | None = None) -> dict[str, str]:
    """Artifact kind -> file path of participant ``eid`` at imaging visit ``instance`` (the earliest
    visit having each kind when None), only files that exist (cached). With ``source`` (a metric source's
    name) the label map and meshes are that source's only, so another source's segmentation is never
    drawn over its values; images (water, fat, ...) may come from any source of the visit."""
    return _artifacts(str(home(root).root), version, int(eid), None if instance is None else int(instance), source)


@st.cache_data(show_spinner=False, max_entries=64)
def _compartments(root: str, version: int, eid: int, instance: int | None, source: str | None) -> pd.DataFrame:
    with Reader(home(root)) as reader:
        return compartments.by_side(reader.compartment_metrics([eid], source=source, instance=instance))


def compartment_volumes(version: int, eid: int, *, instance: int | None = None, source: str | None = None,
                        root: str | None = None) -> pd.DataFrame:
    """Whole-compartment volumes per side (:func:`store.compartments.by_side`) that metric source ``source``
    measured for participant ``eid`` at imaging visit ``instance`` (cached); empty for a source without any."""
    return _compartments(str(home(root).root), version, int(eid), None if instance is None else int(instance), source)


@st.cache_data(show_spinner=False, max_entries=64)
def _visit_rows(root: str, version: int, eid: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    with Reader(home(root)) as reader:
        return reader.structure_metrics(eids=[eid]), reader.visit_dates(eid)


def visits(version: int, eid: int, *, root: str | None = None) -> VisitChange | None:
    """Change per structure between participant ``eid``'s imaging visits; None unless imaged twice (cached)."""
    metrics, dates = _visit_rows(str(home(root).root), version, int(eid))
    return visit_change(metrics, dates)


@st.cache_resource(show_spinner="Loading the 3-D surfaces…", max_entries=8)
def _meshes(path: str, mtime_ns: int) -> SceneMeshes:
    return load_meshes(path)


@st.cache_resource(show_spinner="Loading the volume…", max_entries=_VOLUME_CACHE)
def _volume(path: str, mtime_ns: int) -> Volume:
    return read_nrrd(path)


def meshes(path: str) -> SceneMeshes:
    """The surfaces in ``path``; its mtime is part of the key, so a reprocessed subject is reloaded."""
    return _meshes(path, Path(path).stat().st_mtime_ns)


def volume(path: str) -> Volume:
    """The NRRD volume in ``path`` (image or label map), reloaded when the file changes."""
    return _volume(path, Path(path).stat().st_mtime_ns)


# ------------------------------------------------------------------------ export


@st.cache_data(show_spinner=False, max_entries=_BUNDLE_CACHE)  # runs in a deferred download: no spinner
def _export_bundle(root: str, version: int, fmt: str, params: tuple[tuple[str, str], ...],
                   columns: tuple[str, ...] | None) -> bytes:
    flt = CohortFilter.from_query_params(dict(params)) if params else None
    report = _quality(root, version)
    with Reader(home(root)) as reader:
        return export_zip(reader, fmt, flt, list(columns) if columns else None,
                          qc=qc_columns(report, report.subjects["eid"]))[0]


def export_bundle(version: int, fmt: str, flt: CohortFilter | None = None, columns: list[str] | None = None,
                  *, root: str | None = None) -> bytes:
    """The export zip (data, dictionary, JSON sidecar) of the filtered cohort (cached)."""
    return _export_bundle(str(home(root).root), version, fmt, _params(flt), tuple(columns) if columns else None)


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _data_dictionary(root: str, version: int) -> pd.DataFrame:
    with Reader(home(root)) as reader:
        return with_import_notes(_dictionary(reader.field_mapping()), import_notes(reader))


def data_dictionary(version: int, *, root: str | None = None) -> pd.DataFrame:
    """The data dictionary of snapshot ``version`` (cached): its source fields are those of the mapping
    the store's imports recorded (:meth:`store.reader.Reader.field_mapping`), which a user's corrected
    ``fields.toml`` changes, not necessarily the shipped one."""
    return _data_dictionary(str(home(root).root), version)


# ------------------------------------------------------------------------ jobs and the checkpoint


def _live_token(h: Home) -> tuple[tuple[str, int], ...]:
    """Names and mtimes of what the jobs table reads besides the snapshot: queued packages and label imports,
    worker stages."""
    inbox = [*h.inbox.glob("*.zip"), *h.inbox.glob(f"*{BUNDLE_SUFFIX}")]
    files = [*inbox, *h.work.glob(f"*/{STAGE_FILE}")] if h.root.exists() else []
    token = []
    for p in files:
        try:
            token.append((str(p), p.stat().st_mtime_ns))
        except FileNotFoundError:  # claimed or finished between the listing and the stat
            continue
    return tuple(sorted(token))


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _jobs(root: str, version: int, live: tuple[tuple[str, int], ...]) -> pd.DataFrame:
    # ``version`` and ``live`` are only the key: a new snapshot, package or stage means a fresh read.
    return jobs_table(home(root))


def jobs(*, root: str | None = None) -> pd.DataFrame:
    """The engine's jobs with live stages and unclaimed inbox packages (cached by snapshot and those files)."""
    h = home(root)
    try:
        version = snapshot_version(str(h.root))
    except NoSnapshotError:
        version = -1  # no snapshot yet: the inbox may already hold packages
    return _jobs(str(h.root), version, _live_token(h))


@st.cache_data(show_spinner=False)
def _sidecar(path: str, mtime_ns: int) -> dict:
    return read_sidecar(path).to_json()


def checkpoint() -> tuple[Path, dict]:
    """The active segmentation checkpoint and its sidecar as JSON (reloaded when the sidecar changes).

    Raises ``engine.errors.CheckpointError`` or ``FileNotFoundError`` when there is no usable one.
    """
    path = active_checkpoint()
    side_path = path.with_suffix(".json")
    return path, _sidecar(str(side_path), side_path.stat().st_mtime_ns)
