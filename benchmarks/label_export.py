"""Benchmark: ``msmv export-labels`` of one UK Biobank-size subject as NRRD, NIfTI and DICOM SEG.

A fused grid of UK Biobank size (224 x 174 x 370 at 2.232 x 2.232 x 3 mm, float32 water) with the 27
structures as boxes of a few thousand to a few hundred thousand voxels; each format is exported from the
files as the store would record them. Prints one JSON line per format: seconds, bytes written, and for the
SEG its frame count. No goal: the figures say what an export costs.

    .venv/bin/python benchmarks/label_export.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.imaging.export import StoredLabels, export_labels  # noqa: E402
from engine.imaging.volume import Volume, write_nrrd  # noqa: E402
from engine.segmentation.infer import write_labels  # noqa: E402
from store.structures import STRUCTURES  # noqa: E402

SHAPE = (224, 174, 370)


def subject() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    water = Volume(rng.uniform(0, 1200, SHAPE).astype(np.float32), (2.232, 2.232, 3.0), (-250.0, -190.0, -900.0),
                   meta={"msmv_stations": "3,4,5,6", "msmv_swapped_stations": ""})
    lab = np.zeros(SHAPE, np.uint8)
    for s in STRUCTURES:  # boxes along the body axis, one per structure
        z0 = 10 + (s.label - 1) * 13
        x0 = 30 + (s.label * 37) % 140
        lab[x0:x0 + 25 + s.label, 40:90, z0:z0 + 40] = s.label
    return water, water.with_data(lab)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    water, labels = subject()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stored = StoredLabels(1000001, 2, "msmv", write_labels(root / "labels.nrrd", labels, {s.label: s.name for s in STRUCTURES}),
                              write_nrrd(root / "water.nrrd", water, extra_header={"encoding": "raw"}))
        for fmt, name in (("nrrd", "out.nrrd"), ("nifti", "out.nii.gz"), ("dicom-seg", "seg"), ("dicom-seg", "seg.zip")):
            t0 = time.perf_counter()
            result = export_labels(stored, fmt, root / name)
            seconds = time.perf_counter() - t0
            print(json.dumps({"benchmark": "label_export", "format": fmt, "out": name, "grid": list(SHAPE),
                              "seconds": round(seconds, 2), "bytes": sum(_size(p) for p in result.files),
                              "segments": result.segments, "frames": result.frames}))


if __name__ == "__main__":
    main()
