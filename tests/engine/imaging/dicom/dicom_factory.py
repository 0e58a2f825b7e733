"""Tiny synthetic Dixon DICOM packages in the UK Biobank layout, for ingest and fusion tests.

Each contrast holds a *linear* intensity field sampled at the voxel centres' world (LPS) coordinates,
so trilinear resampling must reproduce it exactly up to the integer rounding of the stored values.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

CONTRASTS = ("water", "fat", "in_phase", "opposed_phase")
SUFFIX = {"water": "W", "fat": "F", "in_phase": "in", "opposed_phase": "opp"}
IMAGE_TYPE = {"water": "W", "fat": "F", "in_phase": "IN_PHASE", "opposed_phase": "OPP_PHASE"}
#: value = gradient · world + offset, per contrast (positive over any world point within ±300 mm)
LINEAR: dict[str, tuple[tuple[float, float, float], float]] = {
    "water": ((0.5, -0.25, 1.5), 1500.0),
    "fat": ((-0.3, 0.6, 0.8), 1200.0),
    "in_phase": ((0.2, 0.2, -1.1), 1400.0),
    "opposed_phase": ((1.0, 0.1, 0.4), 1000.0),
}


def linear_value(world: np.ndarray, contrast: str) -> np.ndarray:
    """The true field of ``contrast`` at world points (..., 3)."""
    grad, offset = LINEAR[contrast]
    return np.asarray(world, dtype=float) @ np.asarray(grad) + offset


@dataclass
class StationSpec:
    """One station: matrix (columns i, rows j, slices k), spacing (column, row, slice) mm, lowest slice's IPP."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    description: str = "Dixon_noBH"
    series_time: str = "120000.000000"
    series_number: int = 1
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    slope: float | None = None
    intercept: float | None = None
    swapped: bool = False  # a fat-water swap: the W series holds the fat field and the F series the water field

    def world(self, ijk: np.ndarray) -> np.ndarray:
        return np.asarray(ijk, float) @ (self.direction * np.asarray(self.spacing)).T + np.asarray(self.origin)


def tiny_ukb_specs() -> list[StationSpec]:
    """Six tiny axial stations, superior → inferior, each overlapping the next by 3-4 mm (as UKB stations
    overlap), differing in matrix, offset and spacing."""
    trunk = "Dixon_BH_17s"
    return [
        StationSpec((12, 10, 6), (2.0, 2.0, 3.0), (-12.0, -10.0, 41.0), trunk, "100000.000000", 1),
        StationSpec((12, 10, 5), (2.0, 2.0, 3.0), (-12.0, -10.0, 32.0), trunk, "100500.000000", 5),
        StationSpec((12, 10, 6), (2.0, 2.0, 3.0), (-12.0, -10.0, 20.0), trunk, "101000.000000", 9),
        StationSpec((11, 9, 5), (2.0, 2.0, 3.5), (-10.7, -9.3, 10.0), "Dixon_noBH", "101500.000000", 13),
        StationSpec((12, 10, 4), (2.0, 2.0, 4.5), (-12.5, -10.5, 0.0), "Dixon_noBH", "102000.000000", 17),
        StationSpec((10, 10, 5), (2.0, 2.0, 4.0), (-9.0, -10.0, -12.0), "Dixon_noBH", "102500.000000", 21),
    ]


def ukb_size_specs() -> list[StationSpec]:
    """Six stations at real UKB matrix sizes (224 × rows × slices at 2.232 mm), overlapping along z."""
    ps = 2.232
    shapes = [(224, 168, 64), (224, 174, 44), (224, 174, 44), (224, 174, 44), (224, 162, 72), (224, 156, 64)]
    dz = [3.0, 4.5, 4.5, 4.5, 3.5, 3.5]
    specs, top = [], 600.0
    for n, (shape, d) in enumerate(zip(shapes, dz, strict=True)):
        height = (shape[2] - 1) * d
        low = top - height
        desc = "Dixon_BH_17s" if n < 4 else "Dixon_noBH"
        specs.append(StationSpec(shape, (ps, ps, d), (-shape[0] * ps / 2, -shape[1] * ps / 2 + n * 1.1, low),
                                 desc, f"10{n}000.000000", 1 + 4 * n))
        top = low + 20.0  # 20 mm overlap with the next station down
    return specs


def slice_dataset(spec: StationSpec, contrast: str, k: int, series_uid: str, *, study_uid: str,
                  frame_uid: str, eid: int = 1000001) -> Dataset:
    """One slice of one contrast series as a DICOM Part-10 dataset (UKB tag layout)."""
    ni, nj, _ = spec.shape
    i, j = np.meshgrid(np.arange(ni), np.arange(nj), indexing="xy")  # (rows=j, cols=i)
    ijk = np.stack([i, j, np.full_like(i, k)], axis=-1)
    exchanged = {"water": "fat", "fat": "water"} if spec.swapped else {}
    value = linear_value(spec.world(ijk), exchanged.get(contrast, contrast))
    slope = 1.0 if spec.slope is None else spec.slope
    intercept = 0.0 if spec.intercept is None else spec.intercept
    stored = np.rint((value - intercept) / slope)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"field out of uint16 range for {spec}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    sop = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.PatientID = str(eid)
    ds.Modality = "MR"
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = f"{spec.description}_{SUFFIX[contrast]}"
    ds.SeriesNumber = spec.series_number + CONTRASTS.index(contrast)
    ds.SeriesTime = spec.series_time
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "DIXON", IMAGE_TYPE[contrast]]
    ds.InstanceNumber = k + 1
    ipp = spec.world(np.array([0, 0, k]))
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    row, col = spec.direction[:, 0], spec.direction[:, 1]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    ds.PixelSpacing = [f"{spec.spacing[1]:.6f}", f"{spec.spacing[0]:.6f}"]  # row spacing, column spacing
    ds.SliceThickness = f"{spec.spacing[2]:.3f}"
    ds.Rows, ds.Columns = nj, ni
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if spec.slope is not None or spec.intercept is not None:
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def write_station(folder: Path, spec: StationSpec, *, contrasts: Sequence[str] = CONTRASTS,
                  study_uid: str | None = None, frame_uid: str | None = None) -> dict[str, list[Path]]:
    """Write every slice of every contrast of ``spec`` under ``folder``; returns the files per contrast."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    out: dict[str, list[Path]] = {}
    for contrast in contrasts:
        uid = generate_uid()
        for k in range(spec.shape[2]):
            ds = slice_dataset(spec, contrast, k, uid, study_uid=study_uid, frame_uid=frame_uid)
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            out.setdefault(contrast, []).append(path)
    return out


def write_manifest(folder: Path, files: Sequence[Path], eid: int = 1000001) -> Path:
    """A UKB-style ``manifest.cvs``: its date column holds an unquoted comma."""
    lines = ["filename,foldername,date,participant id,series description"]
    lines += [f"{f.name},{eid}_20201_2_0,Nov 17, 2015,{eid},Dixon" for f in files]
    path = folder / "manifest.cvs"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_folder(folder: Path, specs: Sequence[StationSpec]) -> list[Path]:
    """All stations' DICOM files in ``folder`` plus a manifest and an unrelated text file."""
    study, frame = generate_uid(), generate_uid()
    files: list[Path] = []
    for spec in specs:
        for paths in write_station(folder, spec, study_uid=study, frame_uid=frame).values():
            files += paths
    write_manifest(folder, files)
    (folder / "notes.txt").write_text("not a DICOM file\n")
    return files


def write_zip(path: Path, specs: Sequence[StationSpec], *, seed: int = 0, workdir: Path | None = None) -> Path:
    """A UKB bulk zip ``{eid}_20201_2_0.zip`` (members in shuffled order)."""
    src = workdir or path.parent / (path.stem + "_files")
    files = write_folder(src, specs)
    members = [*files, src / "manifest.cvs", src / "notes.txt"]
    random.Random(seed).shuffle(members)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for m in members:
            zf.write(m, m.name)
    return path
