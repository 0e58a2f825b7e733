"""MSMV store: the DuckDB data model, the single writer, read snapshots, importers and exports.

``store`` imports nothing from ``engine``, ``dashboard`` or ``pages``.
"""

from store.home import Home, home
from store.structures import STRUCTURES, Structure, structure

__all__ = ["Home", "home", "STRUCTURES", "Structure", "structure"]
