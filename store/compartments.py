"""Compartment-level metrics: volumes of a whole compartment per side, from a source that has no muscles in it.

Some tools label a thigh compartment as one region (TotalSegmentator's ``quadriceps_femoris``,
``thigh_medial_compartment``, ``thigh_posterior_compartment``), so the compartment's volume exists while
its muscles do not. Those volumes cannot live in ``structure_metrics`` (one row per structure of the 27);
they get their own long table, one row per eid × instance × source × compartment × side, written in the
same transaction as the subject's structure rows (:meth:`store.writer.Writer.commit_subject`).
"""

from __future__ import annotations

from typing import Any

import duckdb

from store.structures import COMPARTMENTS, SIDES

TABLE = "compartment_metrics"

#: The migration that adds the table (appended to :data:`store.schema.MIGRATIONS`).
MIGRATION: tuple[str, ...] = (
    f"""
    CREATE TABLE {TABLE} (
        eid BIGINT NOT NULL,
        instance INTEGER NOT NULL,
        source VARCHAR NOT NULL,
        compartment VARCHAR NOT NULL,
        side VARCHAR NOT NULL,
        volume_cm3 DOUBLE NOT NULL,
        fat_fraction DOUBLE,
        provenance_id BIGINT
    )
    """,
)


def rows(compartments: list[dict[str, Any]]) -> list[tuple[str, str, float, float | None]]:
    """Validate compartment dicts (``compartment``, ``side``, ``volume_cm3``, optional ``fat_fraction``)."""
    out, seen = [], set()
    for i, c in enumerate(compartments):
        try:
            comp = str(c["compartment"]).strip().lower()
            side = str(c["side"]).strip().lower()
            vol = float(c["volume_cm3"])
        except KeyError as err:
            raise ValueError(f"compartments[{i}] lacks {err}; expected compartment, side, volume_cm3") from err
        ff = c.get("fat_fraction")
        ff = None if ff is None else float(ff)
        if comp not in COMPARTMENTS:
            raise ValueError(f"compartments[{i}]: compartment must be one of {', '.join(COMPARTMENTS)}, found {comp!r}")
        if side not in SIDES:
            raise ValueError(f"compartments[{i}]: side must be left or right, found {c['side']!r}")
        if not vol >= 0:
            raise ValueError(f"compartments[{i}]: volume_cm3 must be >= 0, found {vol}")
        if ff is not None and not 0.0 <= ff <= 1.0:
            raise ValueError(f"compartments[{i}]: fat_fraction must be within 0-1, found {ff}")
        if (comp, side) in seen:
            raise ValueError(f"compartments[{i}]: {comp} {side} given twice")
        seen.add((comp, side))
        out.append((comp, side, vol, ff))
    return out


def replace(con: duckdb.DuckDBPyConnection, eid: int, instance: int, source: str,
            values: list[tuple[str, str, float, float | None]], provenance_id: int) -> None:
    """Replace one subject-visit-source's compartment rows, inside the caller's transaction."""
    con.execute(f"DELETE FROM {TABLE} WHERE eid = ? AND instance = ? AND source = ?", [eid, instance, source])
    if values:
        con.executemany(
            f"""INSERT INTO {TABLE} (eid, instance, source, compartment, side, volume_cm3, fat_fraction,
            provenance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [(eid, instance, source, comp, side, vol, ff, provenance_id) for comp, side, vol, ff in values],
        )
