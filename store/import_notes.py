"""Data-dictionary notes for imported label maps: what a structure holds under the import's mapping.

An import whose mapping merges source labels into one MSMV structure (MuscleMap's psoas major + iliacus ->
iliopsoas, its single gemelli-and-quadratus-femoris label -> quadratus femoris) records, with each
subject's provenance, ``structure_notes``: structure key -> what it holds
(:meth:`engine.interop.mapping.Mapping.structure_notes`). The dictionary quotes those records for every
imported source in the snapshot, on the columns of the structures concerned -- generated from the
mapping each import used, never written per structure by hand. A thigh compartment the source labels as
one region (TotalSegmentator's) is noted on its compartment volume column (``anterior_cm3`` ...).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from store.compartments import THIGH_COMPARTMENTS
from store.structures import BY_KEY, SIDES
from store.vocabulary import LABEL_IMPORT_KIND, fat_fraction_column, volume_column

if TYPE_CHECKING:
    import pandas as pd

#: The provenance ``kind`` of a label import (engine.interop.importer writes it).
PROVENANCE_KIND = LABEL_IMPORT_KIND
# How Mapping.structure_notes names a compartment ("anterior compartment").
_COMPARTMENT = " compartment"


def import_notes(reader: Any) -> dict[str, str]:
    """Wide-table column -> sentences on what an imported source's values of it hold ({} without imports).

    ``reader``: an open :class:`store.reader.Reader`. One sentence per source and structure, sources by name.
    """
    rows = reader.query(
        """SELECT DISTINCT m.source, json_extract_string(p.details, '$.tool') AS tool,
            json_extract(p.details, '$.structure_notes') AS notes
        FROM metric_sets m JOIN provenance p ON p.id = m.provenance_id
        WHERE p.kind = ? AND json_extract(p.details, '$.structure_notes') IS NOT NULL
        ORDER BY m.source, tool""",
        [PROVENANCE_KIND],
    )
    out: dict[str, list[str]] = {}
    for source, tool, raw in rows.itertuples(index=False):
        notes = json.loads(raw) if isinstance(raw, str) else {}
        for key, held in sorted(notes.items()) if isinstance(notes, dict) else []:
            s = BY_KEY.get(key)
            who = f"Imported source {source!r} ({tool or 'unknown tool'})"
            if s is not None:
                sentence = f"{who}: {s.name} = {held}."
                columns = (volume_column(key), *(volume_column(key, side) for side in SIDES), fat_fraction_column(key))
            elif (comp := key.removesuffix(_COMPARTMENT)) in THIGH_COMPARTMENTS:  # store.compartments' regions
                sentence = (f"{who}: {comp} compartment = the region {held}, plus any of the compartment's "
                            "structures it measured one by one.")
                columns = (f"{comp}_cm3",)
            else:  # a compartment no wide-table column is made of
                continue
            for column in columns:
                if sentence not in out.setdefault(column, []):
                    out[column].append(sentence)
    return {column: " ".join(sentences) for column, sentences in out.items()}


def with_import_notes(dictionary: pd.DataFrame, notes: dict[str, str]) -> pd.DataFrame:
    """``dictionary`` (column, unit, definition, ...) with each noted column's definition followed by its note."""
    if not notes:
        return dictionary
    out = dictionary.copy()
    out["definition"] = [d if c not in notes else f"{d.rstrip()}{'' if d.rstrip().endswith('.') else '.'} {notes[c]}"
                         for c, d in zip(out["column"], out["definition"].astype(str), strict=True)]
    return out
