"""A label map as a DICOM Segmentation (SEG, written with highdicom) over the images it lies on.

One segment per structure present in the label map (MSMV's labels are unsided: left and right come from
the mid-sagittal split at measurement time, so a segment holds both sides). Each segment carries the
structure's name as ``SegmentLabel``, ``Anatomical Structure`` (SCT 91723000) as its category, and as its
type a SNOMED CT code where one is known to MSMV (:data:`STANDARD_CODES`) — otherwise a code of MSMV's own
coding scheme ``99MSMV`` (the value is the structure key, e.g. ``rectus_femoris``; the ``99`` prefix is
DICOM's mark of a private scheme, described in the SEG's ``CodingSchemeIdentificationSequence``).
``TrackingID`` holds the MSMV label value, so the SEG maps back onto the label map.

The SEG is BINARY (every viewer reads it; LABELMAP is newer) with empty frames left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import engine
from engine.errors import EngineError
from engine.imaging.dicom.derived import MANUFACTURER
from engine.imaging.volume import Volume
from store.structures import STRUCTURES

#: MSMV's private coding scheme for structures without a standard code here.
LOCAL_SCHEME = "99MSMV"
LOCAL_SCHEME_NAME = "MSMV structure keys (store/structures.py)"
#: SNOMED CT body-structure codes for the structures that have one MSMV can vouch for: femur and ilium
#: as pydicom's code dictionary spells them; the gluteal muscles and iliopsoas as TotalSegmentator's
#: DICOM SEG terminology (resources/totalsegmentator_snomed_mapping.csv) codes them.
STANDARD_CODES: dict[str, tuple[str, str]] = {
    "gluteus_maximus": ("181674001", "Gluteus maximus muscle"),
    "gluteus_medius": ("78333006", "Gluteus medius muscle"),
    "gluteus_minimus": ("75297007", "Gluteus minimus muscle"),
    "iliopsoas": ("68455001", "Iliopsoas muscle"),
    "iliac_bone": (codes.SCT.Ilium.value, "Ilium"),
    "femur": (codes.SCT.Femur.value, "Femur"),
}
_BY_LABEL = {s.label: s for s in STRUCTURES}


@dataclass(frozen=True)
class SegmentInfo:
    number: int  # SEG segment number, 1..n in label order
    label: int  # value in the label map
    name: str
    code: hd.sr.CodedConcept


def structure_code(label: int, name: str) -> hd.sr.CodedConcept:
    """The segmented property type of label ``label``: SNOMED CT where known, else ``99MSMV``."""
    structure = _BY_LABEL.get(label)
    key = structure.key if structure is not None and structure.name == name else name.lower().replace(" ", "_")
    if key in STANDARD_CODES:
        value, meaning = STANDARD_CODES[key]
        return hd.sr.CodedConcept(value=value, scheme_designator="SCT", meaning=meaning)
    return hd.sr.CodedConcept(value=key, scheme_designator=LOCAL_SCHEME, meaning=name)  # > 16 characters: LongCodeValue


def segments(labels: np.ndarray, table: dict[int, str]) -> list[SegmentInfo]:
    """The segments of the labels present in ``labels`` (a value missing from ``table`` is refused)."""
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    unknown = [v for v in present if v not in table]
    if unknown:
        raise EngineError(f"label value(s) {unknown} are not in the label table ({len(table)} entries)")
    return [SegmentInfo(n, v, table[v], structure_code(v, table[v])) for n, v in enumerate(present, start=1)]


def label_seg(labels: Volume, table: dict[int, str], images: Sequence[Dataset], *, algorithm: str = "MSMV",
              algorithm_version: str | None = None) -> tuple[Dataset, list[SegmentInfo]]:
    """A SEG of ``labels`` over ``images`` (one dataset per slice ``k`` of the same grid, slice order)."""
    if len(images) != labels.shape[2]:
        raise EngineError(f"the label map has {labels.shape[2]} slices, the referenced series {len(images)} images")
    if (images[0].Columns, images[0].Rows) != labels.shape[:2]:
        raise EngineError(f"the label map's slices are {labels.shape[0]}x{labels.shape[1]}, the images' "
                          f"{images[0].Columns}x{images[0].Rows}")
    data = np.asarray(labels.data)
    info = segments(data, table)
    if not info:
        raise EngineError("the label map is empty: no structure to export")
    number = np.zeros(int(data.max()) + 1, dtype=np.uint8 if len(info) < 256 else np.uint16)
    for s in info:
        number[s.label] = s.number
    frames = np.ascontiguousarray(number[data].transpose(2, 1, 0))  # (slice, row, column)
    algo = hd.AlgorithmIdentificationSequence(name=algorithm, version=algorithm_version or engine.__version__,
                                              family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=s.number, segment_label=s.name[:64],
            segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=s.code,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo,
            tracking_id=f"MSMV label {s.label}", tracking_uid=generate_uid())
        for s in info
    ]
    seg = hd.seg.Segmentation(
        source_images=list(images), pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=1002,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="MSMV", software_versions=engine.__version__, device_serial_number="0",
        series_description=f"{algorithm} segmentation", content_label="MUSCLE_LABELS",
        content_description=f"{len(info)} structures of the MSMV label map", omit_empty_frames=True,
    )
    if any(s.code.scheme_designator == LOCAL_SCHEME for s in info):
        scheme = Dataset()
        scheme.CodingSchemeDesignator = LOCAL_SCHEME
        scheme.CodingSchemeName = LOCAL_SCHEME_NAME
        scheme.CodingSchemeResponsibleOrganization = "MSMV"
        seg.CodingSchemeIdentificationSequence = [scheme]
    return seg, info
