"""MSMV store: the DuckDB data model, the single writer, read snapshots, importers and exports.

``store`` imports nothing from ``engine``, ``dashboard`` or ``pages``.
"""

from store.filters import CohortFilter
from store.home import Home, home
from store.importers.report import ImportReport
from store.metrics import COLUMNS, METRICS, Metric, data_dictionary
from store.reader import Reader
from store.structures import STRUCTURES, Structure, structure
from store.writer import Writer

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
