"""Cached reads of the published store snapshot, keyed by snapshot version + cohort filter.

Each load opens a short-lived read-only :class:`store.reader.Reader` and closes it: a connection kept
in ``st.cache_resource`` would pin an old snapshot and hold a file the writer wants to replace.
Results are cached with ``st.cache_data``; a new snapshot version is a new cache key, so the
dashboard shows fresh data as soon as the engine publishes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pandas as pd
import streamlit as st

from dashboard.sidebar import FilterOptions, filter_options
from store.filters import CohortFilter
from store.home import Home, home
from store.reader import Reader

T = TypeVar("T")
VIEW_KEY = "msmv_view"  # DataFrame.attrs entry naming the snapshot view a frame came from
# Filtered views kept per process: one 37k x ~150-column frame is ~45 MB, so 8 stay under 0.4 GB.
_CACHE_ENTRIES = 8
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
    # ``version`` is the cache key; if a newer snapshot was published since, the Reader opens that one
    # and the frame is tagged with what it really holds (the next run's key moves on too).
    with Reader(home(root)) as reader:
        df = reader.participants(flt, columns=list(columns) if columns else None)
        df.attrs[VIEW_KEY] = (root, int(reader.version), params, columns)
    return df


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


@st.cache_data(show_spinner=False, max_entries=16 * _CACHE_ENTRIES)  # tables and figures: small
def _per_view(name: str, view: tuple, _fn: Callable[[pd.DataFrame], T], _df: pd.DataFrame) -> T:
    # Arguments starting with "_" are not hashed: the key is the function's name and the view.
    return _fn(_df)


def per_view(fn: Callable[[pd.DataFrame], T], df: pd.DataFrame) -> T:
    """``fn(df)``, cached per snapshot version + filter when ``df`` came from :func:`participants`.

    Tables and figures of a page are then computed once per view rather than on every rerun; a frame
    of unknown origin (modified, or built elsewhere) is never cached.
    """
    if fn.__name__ == "<lambda>":
        raise ValueError("per_view needs a named function (its name is the cache key), got a lambda")
    view = df.attrs.get(VIEW_KEY)
    if view is None:
        return fn(df)
    # Page scripts all run as "__main__": the defining file keeps their helpers apart.
    code = getattr(fn, "__code__", None)
    name = f"{code.co_filename if code else fn.__module__}:{fn.__qualname__}"
    return _per_view(name, view, fn, df)
