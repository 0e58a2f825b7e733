"""A fused volume as a derived DICOM MR series: the images a DICOM SEG of MSMV's label map refers to.

MSMV's label maps live on the fused grid (one grid over the kept stations, :mod:`engine.imaging.fusion`),
which no acquired series has. So the export writes the fused water volume as a series of its own, one
MR Image Storage instance per slice of that grid, and the SEG references it slice by slice: every label
voxel is one SEG pixel, nothing is resampled.

- New UIDs (study, series, frame of reference, instances) for every export; the patient is the UK
  Biobank eid (already a pseudonym).
- ``ImageType`` DERIVED\\SECONDARY; the derivation (stitched and resampled from the stations) is coded in
  ``DerivationCodeSequence`` (DCM 113090 image stitching, 113085 spatial resampling) and described in
  ``DerivationDescription``, with the stations, their z ranges, swapped stations and the source series'
  Series Instance UIDs the fused volume's header recorded. The header keeps series, not instance, UIDs,
  so no per-image ``SourceImageSequence`` is written.
- Geometry: voxel ``[i, j, k]`` is pixel (row ``j``, column ``i``) of slice ``k``; ``ImageOrientationPatient``
  is the grid's first two direction columns, ``ImagePositionPatient`` the world (LPS) point of voxel
  ``(0, 0, k)``, ``PixelSpacing`` (row spacing, column spacing) — the layout
  :mod:`engine.imaging.dicom.read` reads back into the same Volume.
- Pixels: unsigned 16-bit, the fused intensities rounded (MR magnitudes: trilinear averages of the
  stations' 16-bit values stay within 0..65535).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import DSfloat

import engine
from engine.errors import EngineError
from engine.imaging.volume import Volume

#: Largest grid written as DICOM (voxels): a fused UK Biobank subject is about 224 x 174 x 370 ≈ 14 M
#: voxels (28 MB of 16-bit pixels); four times that bounds the export at about 120 MB of images.
MAX_DICOM_VOXELS = 64 * 1024**2
MANUFACTURER = "MSMV"
_UINT16_MAX = 65535


@dataclass(frozen=True)
class Subject:
    """Who and what the derived series is of."""

    patient_id: str
    series_description: str = "MSMV fused water"
    series_number: int = 1001


def check_size(volume: Volume) -> None:
    """Refuse a grid larger than :data:`MAX_DICOM_VOXELS`, before anything is written."""
    n = int(np.prod(volume.shape))
    if n > MAX_DICOM_VOXELS:
        raise EngineError(f"the grid {'x'.join(map(str, volume.shape))} has {n:,} voxels; a DICOM export is "
                          f"bounded at {MAX_DICOM_VOXELS:,}")


def derivation_description(meta: dict[str, str]) -> str:
    """One line (at most 1,024 characters, the VR's limit) from a fused volume's ``msmv_*`` header."""
    parts = ["MSMV fusion of stations " + (meta.get("msmv_stations") or "?"),
             "trilinear resampling onto one grid, overlaps averaged"]
    if meta.get("msmv_station_ranges"):
        parts.append("station z ranges (mm) " + meta["msmv_station_ranges"])
    swapped = meta.get("msmv_swapped_stations", "")
    parts.append(f"fat-water swap corrected in stations {swapped}" if swapped else "no fat-water swap found")
    uids = [u for u in meta.get("msmv_series_uids", "").split(",") if u]
    if uids:
        parts.append("source series " + " ".join(uids))
    return "; ".join(parts)[:1024]


def _pixels(volume: Volume) -> np.ndarray:
    data = np.asarray(volume.data, dtype=np.float64)
    if not np.isfinite(data).all():
        raise EngineError("the volume has NaN or infinite voxels; DICOM pixels need finite values")
    if data.min(initial=0) < -0.5 or data.max(initial=0) > _UINT16_MAX + 0.5:
        raise EngineError(f"voxel values {data.min():.1f}..{data.max():.1f} do not fit unsigned 16-bit DICOM pixels")
    return np.clip(np.rint(data), 0, _UINT16_MAX).astype(np.uint16)


def derived_series(volume: Volume, subject: Subject, *, study_uid: str | None = None) -> list[Dataset]:
    """One MR Image Storage dataset per slice (``k``) of ``volume``, in slice order, ready to save."""
    check_size(volume)
    pixels = _pixels(volume)
    now = datetime.now(UTC)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid = study_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    d = volume.direction
    iop = [_ds(x) for x in (*d[:, 0], *d[:, 1])]
    sx, sy, sz = volume.spacing
    description = derivation_description(volume.meta)
    values = pixels[pixels > 0]
    center, width = (float(np.percentile(values, 50)), float(2 * np.percentile(values, 99))) if values.size else (0.0, 1.0)
    out = []
    for k in range(volume.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientID, ds.PatientName = subject.patient_id, f"{subject.patient_id}^"  # one name component
        ds.PatientBirthDate = ds.PatientSex = ""
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "MSMV", "", ""
        ds.Modality, ds.Manufacturer = "MR", MANUFACTURER
        ds.SoftwareVersions = engine.__version__
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = subject.series_description, subject.series_number, k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.DerivationDescription = description
        ds.DerivationCodeSequence = [_code_item(codes.DCM.ImageStitching), _code_item(codes.DCM.SpatialResampling)]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "3D"
        ds.EchoTime = ds.RepetitionTime = ds.EchoTrainLength = None
        ds.PositionReferenceIndicator = ds.PatientPosition = ""  # Type 2: the fused volume does not record it
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = [_ds(x) for x in volume.world(np.array([0.0, 0.0, float(k)]))]
        ds.PixelSpacing = [_ds(sy), _ds(sx)]  # row spacing (along j), column spacing (along i)
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(sz)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = _ds(center), _ds(max(width, 1.0))
        ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
        out.append(ds)
    return out


def _ds(value: float) -> DSfloat:
    """A decimal string of at most 16 characters (the DS limit), as close to ``value`` as that allows."""
    return DSfloat(float(value), auto_format=True)


def _code_item(code: object) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning  # type: ignore[attr-defined]
    return item


def sop_instance_uids(series: Sequence[Dataset]) -> list[str]:
    return [str(ds.SOPInstanceUID) for ds in series]
