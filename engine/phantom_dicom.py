"""Phantom subjects written as UK Biobank Dixon packages (``{eid}_20201_2_0.zip``), plus their truth.

Six stations × four contrasts of axial uint16 DICOM slices with the real UKB matrices (see
:data:`engine.phantom_anatomy.UKB_MATRICES`), each station with its own smooth bias field and Rician
noise, and a ``manifest.cvs`` (sic) whose date column holds an unquoted comma, as in UKB bulk files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import zipfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from tqdm import tqdm

from engine.phantom_anatomy import TRUNK_STATIONS, Anatomy, Station
from engine.phantom_render import render

UKB_IMAGING_FIELD = "20201_2_0"  # field 20201 (Dixon), instance 2 (first imaging visit), array 0
CONTRAST_SUFFIX = {"in_phase": "in", "opposed_phase": "opp", "fat": "F", "water": "W"}  # UKB series order
IMAGE_TYPE = {"water": "W", "fat": "F", "in_phase": "IN_PHASE", "opposed_phase": "OPP_PHASE"}
STATION_MINUTES = 1.2  # time between station acquisitions (the protocol takes ~6.5 min)
UINT16_MAX = 65535


def package_name(eid: int) -> str:
    """The UKB bulk file name of a participant's Dixon package."""
    return f"{int(eid)}_{UKB_IMAGING_FIELD}.zip"


def _description(station: int, contrast: str) -> str:
    stem = "Dixon_BH_17s" if station in TRUNK_STATIONS else "Dixon_noBH"
    return f"{stem}_{CONTRAST_SUFFIX[contrast]}"


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _series(st: Station, contrast: str, *, eid: int, date: dt.date, time: str, series_number: int,
            study_uid: str, frame_uid: str, series_uid: str) -> Dataset:
    """One dataset per series; :func:`_set_slice` fills in the per-slice tags (much faster than
    building 1,328 datasets from scratch)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.PatientID = str(eid)
    ds.PatientName = "phantom"
    ds.Modality = "MR"
    ds.Manufacturer = "MSMV phantom"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = date.strftime("%Y%m%d")
    ds.SeriesTime = ds.AcquisitionTime = time
    ds.SeriesDescription = _description(st.number, contrast)
    ds.SeriesNumber = series_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "DIXON", IMAGE_TYPE[contrast]]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]  # axial: rows along +x, columns along +y
    ds.PixelSpacing = [f"{st.spacing[1]:.3f}", f"{st.spacing[0]:.3f}"]  # row spacing, column spacing
    ds.SliceThickness = f"{st.spacing[2]:.1f}"
    ds.Rows, ds.Columns = st.shape[1], st.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    return ds


def _set_slice(ds: Dataset, pixels: np.ndarray, st: Station, k: int, sop: str) -> Dataset:
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPInstanceUID = sop
    ds.InstanceNumber = k + 1
    z = st.origin[2] + k * st.spacing[2]
    ds.ImagePositionPatient = [f"{st.origin[0]:.4f}", f"{st.origin[1]:.4f}", f"{z:.4f}"]
    ds.SliceLocation = f"{z:.4f}"
    ds.PixelData = np.ascontiguousarray(pixels.T).astype("<u2").tobytes()  # (rows, columns)
    return ds


def _to_uint16(data: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(data), 0, UINT16_MAX).astype(np.uint16)


def write_ukb_zip(anatomy: Anatomy, eid: int, path: str | os.PathLike[str], *, seed: int,
                  progress: bool = False) -> Path:
    """Write the subject's six-station Dixon package to ``path`` (atomically: temp file + rename).

    ``seed`` drives the noise, bias fields, UIDs and dates, so the same call writes the same bytes.
    ``progress`` shows a bar over the stations.
    """
    if isinstance(eid, bool) or not isinstance(eid, int | np.integer) or eid <= 0:
        raise ValueError(f"eid must be a positive integer, found {eid!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), int(eid)])
    date = dt.date(2014, 4, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    start = dt.datetime.combine(date, dt.time(8, 0)) + dt.timedelta(minutes=int(rng.integers(0, 600)))
    study_uid, frame_uid = _uid("study", eid, seed), _uid("frame", eid, seed)
    folder = f"{int(eid)}_{UKB_IMAGING_FIELD}"
    manifest_rows: list[list[str]] = []
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for st in tqdm(anatomy.stations, desc=f"phantom {eid}", unit="station", disable=not progress):
                images = render(anatomy, st.geometry, noise_rng=rng)
                when = start + dt.timedelta(minutes=STATION_MINUTES * (st.number - 1))
                for c_index, contrast in enumerate(CONTRAST_SUFFIX):
                    pixels = _to_uint16(getattr(images, contrast).data)
                    series_uid = _uid("series", eid, seed, st.number, contrast)
                    time = (when + dt.timedelta(seconds=2 * c_index)).strftime("%H%M%S.%f")
                    ds = _series(st, contrast, eid=int(eid), date=date, time=time,
                                 series_number=4 * (st.number - 1) + c_index + 1,
                                 study_uid=study_uid, frame_uid=frame_uid, series_uid=series_uid)
                    for k in range(st.shape[2]):
                        _set_slice(ds, pixels[:, :, k], st, k, _uid("sop", eid, seed, st.number, contrast, k))
                        buf = io.BytesIO()
                        ds.save_as(buf, enforce_file_format=True)
                        name = f"{ds.SOPInstanceUID}.dcm"
                        zf.writestr(name, buf.getvalue())
                        manifest_rows.append([name, folder, date.strftime("%b %d, %Y"), str(eid),
                                              ds.SeriesDescription])
            zf.writestr("manifest.cvs", _manifest(manifest_rows))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _manifest(rows: list[list[str]]) -> str:
    """UKB's manifest: CSV whose date ("Nov 23, 2016") is written with its comma unquoted."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONE, escapechar=None, lineterminator="\n")
    writer.writerow(["filename", "foldername", "date", "participant id", "series description"])
    for r in rows:
        out.write(",".join(r) + "\n")
    return out.getvalue()
