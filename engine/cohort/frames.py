"""Checks on the DataFrames passed between engine, figure builders and pages (one message everywhere)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def require_columns(df: object, columns: Sequence[str], *, what: str = "DataFrame") -> None:
    """TypeError unless ``df`` is a DataFrame; ValueError naming the missing and present columns."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")
