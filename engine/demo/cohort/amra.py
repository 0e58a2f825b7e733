"""AMRA's body composition for the simulated cohort, written under UK Biobank's real field IDs.

UK Biobank returns AMRA's Dixon analysis of the same scans (fields 22403-22409 and 22435, instance 2,
volumes in litres). No AMRA values can ship, so the demo derives them from each participant's
simulated MSMV structures with these assumptions (the demo's choices, not AMRA's published method):

* AMRA measures *fat-free* muscle volume: a structure's fat-free volume is its MSMV volume x
  (1 - its Dixon fat fraction);
* AMRA's anterior thigh (fields 22403 right, 22405 left) is the fat-free volume of MSMV's anterior
  compartment (sartorius, rectus femoris, vasti) on that side, and its posterior thigh (22404 right,
  22406 left) that of MSMV's posterior compartment (hamstrings), each times ``exp(N(0, sd))``;
* AMRA's total thigh (22409) is the fat-free volume of MSMV's thigh muscles - the anterior, medial
  (adductors, gracilis, quadratus femoris) and posterior compartments, both sides - times its own
  ``exp(N(0, sd))``. MSMV's TMV also holds the gluteal and core muscles, so TMV is larger than this
  AMRA thigh volume: the Concordance page's Bland-Altman plot shows the bias, as it would on real
  data, where the two regions differ too;
* muscle fat infiltration (22435, %) is 100 x the volume-weighted fat fraction of those thigh muscles
  plus normal noise;
* :data:`engine.demo.cohort.params.AMRA_MISSING` of participants have no AMRA result at all.

The draws use a random stream of their own (seeded from the cohort's seed), so adding AMRA leaves
every other simulated value, and the study figures the demo is calibrated to, as they were.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.demo.cohort import params as prm
from store.metrics import CM3_PER_LITRE
from store.structures import SIDES, STRUCTURES, labels_in

COL_AMRA_THIGH = "22409-2.0"
COL_AMRA_ANTERIOR_RIGHT = "22403-2.0"
COL_AMRA_POSTERIOR_RIGHT = "22404-2.0"
COL_AMRA_ANTERIOR_LEFT = "22405-2.0"
COL_AMRA_POSTERIOR_LEFT = "22406-2.0"
COL_AMRA_MFI = "22435-2.0"
AMRA_COLUMNS: tuple[str, ...] = (
    COL_AMRA_THIGH, COL_AMRA_ANTERIOR_RIGHT, COL_AMRA_POSTERIOR_RIGHT, COL_AMRA_ANTERIOR_LEFT,
    COL_AMRA_POSTERIOR_LEFT, COL_AMRA_MFI,
)  # fmt: skip
# (compartment, side) -> column; sides in store.structures.SIDES order (left, right)
_COMPARTMENT_COLUMNS: dict[tuple[str, str], str] = {
    ("anterior", "left"): COL_AMRA_ANTERIOR_LEFT, ("anterior", "right"): COL_AMRA_ANTERIOR_RIGHT,
    ("posterior", "left"): COL_AMRA_POSTERIOR_LEFT, ("posterior", "right"): COL_AMRA_POSTERIOR_RIGHT,
}  # fmt: skip
THIGH_COMPARTMENTS: tuple[str, ...] = ("anterior", "medial", "posterior")
# A stream of its own: the AMRA draws follow the cohort's seed without consuming the cohort's stream.
AMRA_STREAM = 22409
LITRE_DECIMALS = 4  # as the showcase stores these volumes
MFI_DECIMALS = 2


def _in(compartments: tuple[str, ...]) -> np.ndarray:
    labels = {label for c in compartments for label in labels_in(c)}
    return np.array([s.label in labels for s in STRUCTURES])


def simulate_amra(metrics: pd.DataFrame, seed: int) -> pd.DataFrame:
    """AMRA's fields for each participant of ``metrics``, one row per eid in its order, litres and %.

    ``metrics`` is the long structure table of :func:`engine.demo.cohort.structures.structure_table`
    (54 rows per participant: eid, then label order, left before right). Columns: ``eid`` and
    :data:`AMRA_COLUMNS`; a participant without an AMRA result has every AMRA column missing.
    """
    per = len(STRUCTURES) * len(SIDES)
    if len(metrics) % per:
        raise ValueError(f"metrics must hold {per} rows per participant, got {len(metrics)} rows")
    n = len(metrics) // per
    eid = metrics["eid"].to_numpy()[::per]
    volume = metrics["volume_cm3"].to_numpy(float).reshape(n, len(STRUCTURES), len(SIDES))
    fat = metrics["fat_fraction"].to_numpy(float).reshape(n, len(STRUCTURES), len(SIDES))
    fat_free = volume * (1.0 - fat)

    rng = np.random.default_rng([int(seed), AMRA_STREAM])
    out: dict[str, np.ndarray] = {"eid": eid}
    for (compartment, side), column in _COMPARTMENT_COLUMNS.items():
        cm3 = fat_free[:, _in((compartment,)), SIDES.index(side)].sum(axis=1)
        out[column] = cm3 * np.exp(prm.AMRA_COMPARTMENT_LOG_SD * rng.standard_normal(n)) / CM3_PER_LITRE
    thigh = _in(THIGH_COMPARTMENTS)
    out[COL_AMRA_THIGH] = (
        fat_free[:, thigh, :].sum(axis=(1, 2)) * np.exp(prm.AMRA_THIGH_LOG_SD * rng.standard_normal(n)) / CM3_PER_LITRE
    )
    weighted_fat = (volume[:, thigh, :] * fat[:, thigh, :]).sum(axis=(1, 2)) / volume[:, thigh, :].sum(axis=(1, 2))
    out[COL_AMRA_MFI] = 100.0 * weighted_fat + prm.AMRA_MFI_SD_PCT * rng.standard_normal(n)
    missing = rng.random(n) < prm.AMRA_MISSING
    frame = pd.DataFrame(out, columns=["eid", *AMRA_COLUMNS])
    for column in AMRA_COLUMNS:
        decimals = MFI_DECIMALS if column == COL_AMRA_MFI else LITRE_DECIMALS
        frame[column] = np.where(missing, np.nan, np.round(frame[column].to_numpy(float), decimals))
    return frame
