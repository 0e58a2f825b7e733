"""Phantom subjects written as UK Biobank Dixon packages (``{eid}_20201_2_0.zip``), plus their truth.

Six stations × four contrasts of axial uint16 DICOM slices with the real UKB matrices (see
:data:`engine.demo.phantom.anatomy.UKB_MATRICES`), each station with its own smooth bias field and Rician
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

from engine.demo.phantom.anatomy import TRUNK_STATIONS, Anatomy, Station
from engine.demo.phantom.render import render
from store.files import atomic_path

UKB_IMAGING_FIELD = "20201_2_0"  # field 20201 (Dixon), instance 2 (first imaging visit), array 0
CONTRAST_SUFFIX = {"in_phase": "in", "opposed_phase": "opp", "fat": "F", "water": "W"}  # UKB series order
IMAGE_TYPE = {"water": "W", "fat": "F", "in_phase": "IN_PHASE", "opposed_phase": "OPP_PHASE"}
STATION_MINUTES = 1.2  # time between station acquisitions (the protocol takes ~6.5 min)
STORED_MAX = 4095  # 12 bits stored in 16 allocated, as the scanner writes


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


def _ds_string(values: list[str], pad: bytes) -> bytes:
    raw = "\\".join(values).encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def _z_text(z: float) -> str:
    return f"{z:+010.4f}"  # fixed width, so every slice of a series encodes to the same length


def _set_slice(ds: Dataset, st: Station, k: int, sop: str) -> None:
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPInstanceUID = sop
    ds.InstanceNumber = k + 1
    z = _z_text(st.origin[2] + k * st.spacing[2])
    ds.ImagePositionPatient = [_z_text(st.origin[0]), _z_text(st.origin[1]), z]
    ds.SliceLocation = z


# (group, element, VR) of the per-slice tags, in the order they are patched
_SLICE_TAGS = ((0x0002, 0x0003, b"UI"), (0x0008, 0x0018, b"UI"), (0x0020, 0x0013, b"IS"),
               (0x0020, 0x0032, b"DS"), (0x0020, 0x1041, b"DS"))


class _SeriesEncoder:
    """Encodes the slices of one series: pydicom writes the first; the others patch its bytes.

    Every per-slice value has a fixed encoded length (64-character UIDs, fixed-width positions,
    InstanceNumber padded to two bytes), so each later slice only overwrites those values and the
    pixel data. Any length mismatch falls back to pydicom for that slice.
    """

    def __init__(self, ds: Dataset, pixel_bytes: int) -> None:
        self.ds = ds
        self.pixel_bytes = pixel_bytes
        self.head: bytearray | None = None
        self.slots: list[tuple[int, int]] = []

    def _values(self, st: Station, k: int, sop: str) -> list[bytes]:
        z = _z_text(st.origin[2] + k * st.spacing[2])
        uid = _ds_string([sop], b"\x00")
        return [uid, uid, _ds_string([str(k + 1)], b" "),
                _ds_string([_z_text(st.origin[0]), _z_text(st.origin[1]), z], b" "), _ds_string([z], b" ")]

    def encode(self, st: Station, k: int, sop: str, pixels: bytes) -> bytes:
        values = self._values(st, k, sop)
        if self.head is not None and all(len(v) == n for v, (_, n) in zip(values, self.slots, strict=True)):
            for v, (off, n) in zip(values, self.slots, strict=True):
                self.head[off:off + n] = v
            return bytes(self.head) + pixels
        _set_slice(self.ds, st, k, sop)
        self.ds.PixelData = pixels
        buf = io.BytesIO()
        self.ds.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
        if self.head is None:
            head = bytearray(data[: len(data) - self.pixel_bytes])
            slots, start = [], 0
            for (group, element, vr), v in zip(_SLICE_TAGS, values, strict=True):
                key = group.to_bytes(2, "little") + element.to_bytes(2, "little") + vr
                pos = head.find(key, start)
                n = int.from_bytes(head[pos + 6:pos + 8], "little") if pos >= 0 else -1
                if pos < 0 or n != len(v) or bytes(head[pos + 8:pos + 8 + n]) != v:
                    return data  # unexpected layout: stay on the pydicom path
                slots.append((pos + 8, n))
                start = pos + 8 + n
            self.head, self.slots = head, slots
        return data


def _to_uint16(data: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(data), 0, STORED_MAX).astype(np.uint16)


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
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                                                  compresslevel=1) as zf:
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
                encoder = _SeriesEncoder(ds, pixels[:, :, 0].nbytes)
                for k in range(st.shape[2]):
                    sop = _uid("sop", eid, seed, st.number, contrast, k)
                    raw = np.ascontiguousarray(pixels[:, :, k].T).astype("<u2").tobytes()  # (rows, columns)
                    name = f"{sop}.dcm"
                    zf.writestr(name, encoder.encode(st, k, sop, raw))
                    manifest_rows.append([name, folder, date.strftime("%b %d, %Y"), str(eid),
                                          str(ds.SeriesDescription)])
        zf.writestr("manifest.cvs", _manifest(manifest_rows))
    return path


def _manifest(rows: list[list[str]]) -> str:
    """UKB's manifest: CSV whose date ("Nov 23, 2016") is written with its comma unquoted."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONE, escapechar=None, lineterminator="\n")
    writer.writerow(["filename", "foldername", "date", "participant id", "series description"])
    for r in rows:
        out.write(",".join(r) + "\n")
    return out.getvalue()
