"""Compartment-level metrics: volumes of a whole compartment per side, from a source that has no muscles in it.

Some tools label a thigh compartment as one region (TotalSegmentator's ``quadriceps_femoris``,
``thigh_medial_compartment``, ``thigh_posterior_compartment``), so the compartment's volume exists while
its muscles do not. Those volumes cannot live in ``structure_metrics`` (one row per structure of the 27);
they get their own long table, one row per eid × instance × source × compartment × side, written in the
same transaction as the subject's structure rows (:meth:`store.writer.Writer.commit_subject`). The wide
table reads those of the participant's chosen metric set (never another source's) where the set lacks the
compartment's structures; ``msmv export --long`` writes them as rows of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.structures import COMPARTMENTS, SIDES

if TYPE_CHECKING:  # light at import: store.metrics (read by the CLI's --help) imports this module
    import duckdb
    import pandas as pd

TABLE = "compartment_metrics"
#: The compartments whose whole-region volume feeds the wide table (:mod:`store.metrics`: ``anterior_cm3``,
#: ``medial_cm3``, ``posterior_cm3`` and so the P/A ratio) where the source lacks their structures. Rows of the
#: others (a user mapping may name any of :data:`store.structures.COMPARTMENTS`) stay in the long table only.
THIGH_COMPARTMENTS: tuple[str, ...] = ("anterior", "medial", "posterior")

#: The columns of :meth:`store.reader.Reader.compartment_metrics` (the table's, in its order).
COLUMNS: tuple[str, ...] = ("eid", "instance", "source", "compartment", "side", "volume_cm3", "fat_fraction",
                            "provenance_id")
#: How ``msmv export --long`` names a compartment row's ``structure``: never one of the 27 structure keys.
LONG_SUFFIX = "_compartment"

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


def by_side(rows: pd.DataFrame) -> pd.DataFrame:
    """One metric set's compartment rows (:data:`COLUMNS`) as one row per compartment, in
    :data:`~store.structures.COMPARTMENTS` order: ``compartment``, ``left_cm3``, ``right_cm3`` (NaN for a side
    the source did not measure) and ``volume_cm3`` (both sides; NaN unless both are known)."""
    import pandas as pd

    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "compartment" else float)
                             for c in ("compartment", "left_cm3", "right_cm3", "volume_cm3")})
    vol = rows.pivot_table(index="compartment", columns="side", values="volume_cm3", aggfunc="first")
    vol = vol.reindex(index=[c for c in COMPARTMENTS if c in vol.index], columns=list(SIDES))
    out = pd.DataFrame({"compartment": vol.index, "left_cm3": vol["left"].to_numpy(dtype=float),
                        "right_cm3": vol["right"].to_numpy(dtype=float)})
    return out.assign(volume_cm3=out["left_cm3"] + out["right_cm3"])
