"""Cached reads of the published store snapshot, keyed by snapshot version + cohort filter.

Each load opens a short-lived read-only :class:`store.reader.Reader` and closes it: a connection kept
in ``st.cache_resource`` would pin an old snapshot and hold a file the writer wants to replace.
Results are cached with ``st.cache_data``; a new snapshot version is a new cache key, so the
dashboard shows fresh data as soon as the engine publishes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.sidebar import FilterOptions, filter_options
from store.filters import CohortFilter
from store.home import Home, home
from store.reader import Reader

_CACHE_ENTRIES = 32  # filtered views kept per process; one 37k x ~150 frame is ~45 MB at most
_OPTION_COLUMNS = ["age", "bmi", "centre", "source"]


def current_home() -> Home:
    """The MSMV home the dashboard reads (``$MSMV_HOME`` or ./data)."""
    return home()


def snapshot_version(root: str | None = None) -> int:
    """Version of the newest published snapshot; raises ``store.errors.NoSnapshotError`` if none."""
    with Reader(home(root)) as reader:
        return int(reader.version)


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _participants(root: str, version: int, params: tuple[tuple[str, str], ...],
                  columns: tuple[str, ...] | None) -> pd.DataFrame:
    flt = CohortFilter.from_query_params(dict(params)) if params else None
    # ``version`` is only the cache key: if a newer snapshot was published since, the Reader opens
    # it, and the next run's key moves on too.
    with Reader(home(root)) as reader:
        return reader.participants(flt, columns=list(columns) if columns else None)


def participants(version: int, flt: CohortFilter | None = None, columns: list[str] | None = None,
                 *, root: str | None = None) -> pd.DataFrame:
    """The filtered wide per-participant table of snapshot ``version`` (cached)."""
    params = tuple(sorted(flt.to_query_params().items())) if flt is not None else ()
    root = str(home(root).root)
    return _participants(root, version, params, tuple(columns) if columns else None)


@st.cache_data(show_spinner=False, max_entries=_CACHE_ENTRIES)
def _options(root: str, version: int) -> FilterOptions:
    return filter_options(participants(version, None, _OPTION_COLUMNS, root=root))


def options(version: int, *, root: str | None = None) -> FilterOptions:
    """Sidebar widget bounds and choices for snapshot ``version`` (cached)."""
    return _options(str(home(root).root), version)
