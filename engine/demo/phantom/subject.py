"""Phantom subjects: synthetic pelvis-to-knee Dixon anatomy with known ground truth.

- :func:`sample_anatomy` draws a subject (:mod:`engine.demo.phantom.anatomy`): all 27 structures on both
  sides, subcutaneous and intermuscular fat, sized to given per-structure volumes.
- :func:`render` samples it on any axis-aligned grid (:mod:`engine.demo.phantom.render`): labels 0-27 and
  the four Dixon contrasts; :func:`make_phantom` is the one-call version for training and tests.
- :func:`write_ukb_zip` (:mod:`engine.demo.phantom.ukb_zip`) writes the UKB package; :func:`truth_labels`
  the truth on the fused grid; :func:`add_demo_phantoms` drops a few subjects into the inbox.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.demo.phantom.anatomy import FUSED_STATIONS, Anatomy, Signal, Station, sample_anatomy
from engine.demo.phantom.render import (
    DEFAULT_SPACING,
    Phantom,
    body_grid,
    fused_grid,
    make_phantom,
    measure_volumes,
    render,
    truth_labels,
    truth_maps,
)
from engine.demo.phantom.ukb_zip import package_name, write_ukb_zip
from engine.demo.sizes import DEMO_PHANTOMS
from engine.imaging.volume import write_nrrd
from store.files import atomic_write_text
from store.home import Home
from store.structures import BY_KEY, SIDES, STRUCTURES

__all__ = [
    "DEFAULT_SPACING", "FUSED_STATIONS", "Anatomy", "Phantom", "Signal", "Station", "add_demo_phantoms",
    "body_grid", "fused_grid", "make_phantom", "measure_volumes", "package_name", "render", "sample_anatomy",
    "truth_labels", "truth_maps", "volumes_from_metrics", "write_truth", "write_ukb_zip",
]

PHANTOM_EID_BASE = 9_000_001  # demo phantom eids: above the UK Biobank range (1,000,000-6,026,000)
ANATOMY_STREAM = 1  # keeps the anatomy's random stream apart from the package noise (seeded by seed, eid)


def volumes_from_metrics(metrics: object, eid: int) -> dict[tuple[str, str], float]:
    """Per-structure volumes of one participant from a long metrics table.

    ``metrics`` is a DataFrame with columns ``eid``, a structure column (``key``, ``structure`` or
    ``label``), ``side`` and ``volume_cm3`` — e.g. ``Reader.structure_metrics(eids=[eid])``.
    """
    import pandas as pd

    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(f"metrics must be a pandas DataFrame, found {type(metrics).__name__}")
    col = next((c for c in ("key", "structure", "structure_key", "label") if c in metrics.columns), None)
    missing = [c for c in ("eid", "side", "volume_cm3") if c not in metrics.columns]
    if col is None or missing:
        raise ValueError(f"metrics need columns eid, key|structure|label, side, volume_cm3; found {list(metrics.columns)}")
    rows = metrics[(metrics["eid"] == eid) & metrics["volume_cm3"].notna() & (metrics["volume_cm3"] > 0)]
    out: dict[tuple[str, str], float] = {}
    for ref, side, cm3 in zip(rows[col], rows["side"], rows["volume_cm3"], strict=True):
        s = BY_KEY.get(str(ref)) if not isinstance(ref, int | np.integer) else next(
            (x for x in STRUCTURES if x.label == int(ref)), None)
        if s is None or str(side) not in SIDES:
            raise ValueError(f"participant {eid}: unknown structure/side {ref!r}/{side!r} in the metrics")
        out[(s.key, str(side))] = float(cm3)
    return out


def write_truth(anatomy: Anatomy, folder: str | os.PathLike[str], *, eid: int) -> Path:
    """``labels.nrrd`` on the fused grid and ``truth.json`` (true volumes measured from it) in ``folder``."""
    folder = Path(folder)
    labels, sides = truth_maps(anatomy)
    write_nrrd(folder / "labels.nrrd", labels)
    measured = measure_volumes(labels, sides)
    tmv = sum(v for (k, _), v in measured.items() if BY_KEY[k].is_muscle)
    truth = {
        "eid": int(eid),
        "seed": int(anatomy.seed),
        "sex": int(anatomy.sex),
        "height_cm": round(anatomy.height_cm, 1),
        "grid": {"shape": list(labels.shape), "spacing": list(labels.spacing), "origin": list(labels.origin)},
        "stations": FUSED_STATIONS,
        "volumes_cm3": {s.key: {side: round(measured[(s.key, side)], 3) for side in SIDES} for s in STRUCTURES},
        "requested_cm3": {s.key: {side: round(anatomy.targets[(s.key, side)], 3) for side in SIDES}
                          for s in STRUCTURES},
        "tmv_cm3": round(tmv, 3),
        "note": "volumes counted from labels.nrrd (voxel count x voxel volume); sides from the true anatomy",
    }
    atomic_write_text(folder / "truth.json", json.dumps(truth, indent=1))
    return folder


def add_demo_phantoms(home: Home, count: int = DEMO_PHANTOMS, seed: int = 0, eids: Sequence[int] | None = None,
                      volumes_by_eid: Mapping[int, dict[tuple[str, str], float]] | None = None,
                      sex_by_eid: Mapping[int, int] | None = None, *, progress: bool = True) -> list[Path]:
    """Write ``count`` phantom packages into ``home.inbox`` (atomic rename) with their truth.

    Sexes alternate (both sexes present); eids default to ``PHANTOM_EID_BASE + i``; a subject is sized
    from ``volumes_by_eid[eid]`` where given, else drawn. The truth goes to
    ``home.root / "phantoms" / str(eid)`` *before* the package appears in the inbox.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, found {count}")
    eids = list(eids) if eids is not None else [PHANTOM_EID_BASE + i for i in range(count)]
    if len(eids) != count:
        raise ValueError(f"{count} phantoms requested but {len(eids)} eids given")
    home.ensure()
    written: list[Path] = []
    for i, eid in enumerate(tqdm(eids, desc="phantoms", unit="subject", disable=not progress)):
        rng = np.random.default_rng([int(seed), int(eid), ANATOMY_STREAM])
        sex = int((sex_by_eid or {}).get(eid, 1 - i % 2))
        anatomy = sample_anatomy(rng, sex=sex, volumes=(volumes_by_eid or {}).get(eid), seed=int(seed))
        write_truth(anatomy, home.root / "phantoms" / str(eid), eid=int(eid))
        staged = write_ukb_zip(anatomy, int(eid), home.work / f".phantom-{eid}-{os.getpid()}.zip", seed=int(seed))
        final = home.inbox / package_name(eid)
        os.replace(staged, final)
        written.append(final)
    return written
