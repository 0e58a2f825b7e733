"""Importers: UK Biobank phenotype tables and per-structure metric files."""

from store.importers.report import ImportReport

__all__ = ["ImportReport"]
