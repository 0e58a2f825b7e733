"""What an import did: counts, notes and the per-row error report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ERROR_COLUMNS: tuple[str, ...] = ("row", "column", "value", "reason")


@dataclass
class ImportReport:
    """Result of one import. ``errors`` has one row per problem: row (1 = first data row after the
    header), column (the file's column name), value (as found) and reason. Problems never abort
    the import; the rows or cells concerned are left out."""

    kind: str  # "phenotypes" or "metrics"
    path: Path
    rows_read: int = 0
    rows_imported: int = 0
    inserted: int = 0  # new participants (phenotypes) or metric rows (metrics)
    updated: int = 0  # participants or metric rows replaced
    coded_missing: int = 0  # cells holding a negative UK Biobank "missing" code
    notes: list[str] = field(default_factory=list)
    # Columns not stored because most of their values were implausible, each with what they look like.
    rejected: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)  # phenotype variables this import stored
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ERROR_COLUMNS)))
    error_path: Path | None = None
    store_version: int = 0
    seconds: float = 0.0

    @property
    def n_errors(self) -> int:
        return len(self.errors)

    def summary(self, max_reasons: int = 10) -> str:
        """A few human-readable lines: counts, notes and the most common error reasons."""
        lines = [
            f"{self.kind}: read {self.rows_read:,} rows from {self.path.name}, imported {self.rows_imported:,} "
            f"({self.inserted:,} new, {self.updated:,} replaced) in {self.seconds:.1f} s; "
            f"store version {self.store_version}"
        ]
        if self.coded_missing:
            lines.append(f"  {self.coded_missing:,} cells held negative UK Biobank codes and are stored as missing")
        lines += [f"  NOT STORED: {r}" for r in self.rejected]
        lines += [f"  note: {n}" for n in self.notes]
        if self.n_errors:
            counts = self.errors.groupby(["column", "reason"], dropna=False).size().sort_values(ascending=False)
            lines.append(f"  {self.n_errors:,} problems (report: {self.error_path}):")
            for (column, reason), n in counts.head(max_reasons).items():
                lines.append(f"    {n:>8,}  {column}: {reason}")
        return "\n".join(lines)
