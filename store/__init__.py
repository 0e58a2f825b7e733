"""MSMV store: the DuckDB data model, the single writer, read snapshots, importers and exports.

``store`` imports nothing from ``engine``, ``dashboard`` or ``pages``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.filters import CohortFilter
    from store.home import Home, home
    from store.importers.report import ImportReport
    from store.metrics import COLUMNS, METRICS, Metric, data_dictionary
    from store.reader import Reader
    from store.structures import STRUCTURES, Structure, structure
    from store.writer import Writer

# Each public name and the module that owns it, loaded on first use (PEP 562): importing a light
# submodule (store.errors, store.files, store.settings) must not pull in DuckDB and pandas, or
# `msmv --help` and every worker would pay for them.
_OWNERS: dict[str, str] = {
    "COLUMNS": "store.metrics",
    "METRICS": "store.metrics",
    "STRUCTURES": "store.structures",
    "CohortFilter": "store.filters",
    "Home": "store.home",
    "ImportReport": "store.importers.report",
    "Metric": "store.metrics",
    "Reader": "store.reader",
    "Structure": "store.structures",
    "Writer": "store.writer",
    "data_dictionary": "store.metrics",
    "home": "store.home",
    "structure": "store.structures",
}

__all__ = [
    "COLUMNS",
    "METRICS",
    "STRUCTURES",
    "CohortFilter",
    "Home",
    "ImportReport",
    "Metric",
    "Reader",
    "Structure",
    "Writer",
    "data_dictionary",
    "home",
    "structure",
]


def __getattr__(name: str) -> Any:
    owner = _OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    return getattr(importlib.import_module(owner), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
