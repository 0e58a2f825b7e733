"""QC of one real measurement (``msmv measure --json`` of a segmented phantom) as the engine would store it.

The phantom is judged against participants drawn from the distribution ``msmv phantom --random`` draws
its volumes from (:func:`engine.demo.phantom.anatomy.default_volumes`, same sex, heights as the phantom
draws them, all of one age), so a z-score says how far the measured volume is from what such a phantom
should hold. The provenance details are those the engine's summary records (the label map header's
low-confidence share, the structures at the scan's ends and their edge shares).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.demo.phantom.anatomy import HEIGHT_CM, default_volumes
from engine.quality import QualityReport, quality_report
from engine.segmentation.infer import low_confidence
from store.structures import BY_KEY, STRUCTURES
from store.vocabulary import volume_column

PHANTOM_EID = 1
REFERENCE_N = 200  # reference phantoms: enough for a stable SD (its standard error about 5 %)
AGE = 60.0


def _row(eid: int, sex: int, sides: dict[tuple[str, str], float]) -> dict[str, Any]:
    row: dict[str, Any] = {"eid": eid, "sex": sex, "age": AGE, "has_imaging": True, "imaging_instance": 2}
    for s in STRUCTURES:
        left, right = sides[(s.key, "left")], sides[(s.key, "right")]
        row[volume_column(s.key, "left")], row[volume_column(s.key, "right")] = left, right
        row[volume_column(s.key)] = left + right
    return row


def measured_sides(measured: dict[str, Any]) -> dict[tuple[str, str], float]:
    """``{(structure key, side): cm³}`` of a :func:`engine.imaging.measure.measure` result."""
    out = {}
    for row in measured["structures"].values():
        key = next(s.key for s in STRUCTURES if s.name == row["name"])
        out[(key, "left")], out[(key, "right")] = row["left_cm3"], row["right_cm3"]
    return out


def phantom_qc(measured: dict[str, Any], labels_meta: dict[str, str], sex: int, *, seed: int = 0) -> QualityReport:
    """QC flags of the measured phantom (eid :data:`PHANTOM_EID`) among :data:`REFERENCE_N` drawn references."""
    if sex not in (0, 1):
        raise ValueError(f"sex must be 0 or 1, found {sex!r}")
    rng = np.random.default_rng(seed)
    rows = [_row(PHANTOM_EID, sex, measured_sides(measured))]
    for i in range(REFERENCE_N):
        height = float(np.clip(rng.normal(*HEIGHT_CM[sex]), 145.0, 205.0))
        rows.append(_row(1000 + i, sex, default_volumes(rng, sex, height)))
    structures = measured["structures"]
    details = {  # as engine.service.pipeline records them in the subject's summary
        "low_confidence_share": low_confidence(labels_meta),
        "touches_edge": sorted(int(k) for k, r in structures.items() if r["touches_edge"]),
        "edge_share": {k: r["edge_share"] for k, r in structures.items() if r["edge_share"] > 0},
        "swapped_stations": [],
    }
    prov = pd.DataFrame({"eid": [PHANTOM_EID], "instance": [2], "details": [details]})
    assert set(BY_KEY) == {k for k, _ in measured_sides(measured)}, "the measurement must hold all 27 structures"
    return quality_report(pd.DataFrame(rows), prov)
