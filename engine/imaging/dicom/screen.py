"""Which DICOM objects of a folder can hold a Dixon slice, and why the others are skipped.

A folder exported from a PACS holds more than the Dixon series: localisers and other MR series,
secondary captures, structured reports, RT objects, DICOMDIRs, files in compressed transfer
syntaxes. Those are skipped with a reason instead of stopping the read: objects whose SOP class (or
Modality) is not MR, and MR images whose SeriesDescription names no Dixon contrast. A file that *is* a
Dixon image and cannot be read is still an error, and so is one that cannot be told apart from a
Dixon slice (no SOP class, or an MR image without a SeriesDescription, as a slice truncated inside
its header reads): a broken Dixon slice must never vanish quietly.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import pydicom
from pydicom.uid import UID

from engine.imaging.dicom.package import PackageFile

#: SOP class of single-frame MR images (DICOM PS3.4): the only objects that carry UKB Dixon slices.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_IDENTIFYING = ["SOPClassUID", "Modality", "SeriesDescription", "ImageType"]


def _class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else f"SOP class {uid}"


def object_reason(sop_class: str, modality: str) -> str | None:
    """Why an object of this SOP class / Modality cannot be a Dixon slice, or None when it can be."""
    if sop_class and sop_class != MR_IMAGE_STORAGE:
        return f"not an MR image: {_class_name(sop_class)}" + (f", Modality {modality}" if modality else "")
    if not sop_class and modality and modality != "MR":
        return f"not an MR image: Modality {modality}"
    return None


def unreadable_reason(pf: PackageFile, error: Exception,
                      contrast_of: Callable[[str, Iterable[str]], str | None]) -> str | None:
    """Why a file that failed to parse as a slice may be skipped, or None when the failure must stand.

    It may be skipped when a lenient header read shows it is not a Dixon image (another SOP class, a
    non-Dixon MR series); it must stand when it is a Dixon image or cannot be identified at all.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(pf.data), stop_before_pixels=True, force=True,
                             specific_tags=_IDENTIFYING)
    except Exception:  # noqa: BLE001 - pydicom raises many types on garbage; garbage must not be skipped
        return None
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "")
    description = str(ds.get("SeriesDescription", "") or "")
    raw_type = ds.get("ImageType")
    image_type = () if raw_type is None else ((str(raw_type),) if isinstance(raw_type, str)
                                              else tuple(str(v) for v in raw_type))
    reason = object_reason(sop_class, modality)
    if reason is not None:
        return reason  # its SOP class says it all; why it failed to parse as a slice does not matter
    if not description or contrast_of(description, image_type) is not None:
        # a Dixon image that cannot be read, or an MR image that does not say which series it is (a
        # Dixon slice truncated inside its header looks like that): the caller's error stands
        return None
    return f"MR series {description!r} is not a Dixon contrast ({str(error).split(': ', 1)[-1]})"


def summarise(skipped: Sequence[str], *, examples: int = 1) -> list[str]:
    """``"file: reason"`` entries grouped by reason, most frequent first: ``"3 files: reason (e.g. a.dcm)"``."""
    by_reason: dict[str, list[str]] = {}
    for entry in skipped:
        name, _, reason = entry.partition(": ")
        by_reason.setdefault(reason, []).append(name)
    counts = Counter({reason: len(names) for reason, names in by_reason.items()})
    lines = []
    for reason, n in counts.most_common():
        shown = ", ".join(by_reason[reason][:examples])
        lines.append(f"{n} file{'s' if n > 1 else ''}: {reason} (e.g. {shown})" if n > examples
                     else f"{shown}: {reason}")
    return lines
