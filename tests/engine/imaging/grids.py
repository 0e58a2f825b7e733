"""Small seeded volumes on an oblique grid, shared by the export tests (NIfTI, DICOM SEG, export-labels)."""

from __future__ import annotations

import numpy as np

from engine.imaging.volume import Volume

SHAPE = (11, 9, 7)
SPACING = (2.232, 2.0, 3.0)
ORIGIN = (-120.5, -80.25, 35.0)
# the fused-volume header keys (engine.imaging.fusion.fuse) a NIfTI sidecar and a derived series carry
FUSED_META = {"msmv_contrast": "water", "msmv_stations": "3,4", "msmv_series_uids": "1.2.826.0.1.3,1.2.826.0.1.4",
              "msmv_station_ranges": "3:-100.000..40.000;4:-300.000..-80.000", "msmv_swapped_stations": "4"}


def oblique_direction(degrees: float = 9.0) -> np.ndarray:
    """Rotation about the anterior-posterior axis: no axis lies along a world axis."""
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])


def water() -> Volume:
    rng = np.random.default_rng(15)
    return Volume(rng.uniform(0.0, 900.0, SHAPE).astype(np.float32), SPACING, ORIGIN, oblique_direction(),
                  dict(FUSED_META))


def labels() -> Volume:
    """Three structures (sartorius 1, abdominal oblique 24, femur 27) in blocks of known size."""
    lab = np.zeros(SHAPE, np.uint8)
    lab[2:6, 2:5, 1:4] = 1  # 4*3*3 = 36 voxels, slices 1-3
    lab[7:10, 3:7, 2:6] = 24  # 3*4*4 = 48 voxels, slices 2-5
    lab[0, 0, 6] = 27  # 1 voxel, slice 6
    return water().with_data(lab, msmv_contrast="labels")


VOXELS = {1: 36, 24: 48, 27: 1}
SLICES = {1: 3, 24: 4, 27: 1}
