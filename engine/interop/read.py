"""Reading other tools' label images, bounded before a voxel is read.

NIfTI (RAS) and NRRD (LPS or RAS) become :class:`engine.imaging.volume.Volume` in LPS through
:func:`engine.imaging.volume.read_image`, after the file size and the header's voxel count were
checked. Label names come from the file where the tool writes them: a 3D Slicer ``.seg.nrrd``'s
``Segment{i}_Name`` / ``_LabelValue`` fields, TotalSegmentator's label table in the NIfTI header extension.

Neither MuscleMap nor TotalSegmentator writes its own version into what it writes: both save their labels
with a copy of the input image's NIfTI header (so ``descrip`` and ``intent_name`` are the scanner's or the
converter's, never the tool's), and TotalSegmentator adds only its label table. A tool version is therefore
read from the one place a pipeline records it by convention, a BIDS derivatives ``dataset_description.json``
(``GeneratedBy``: ``[{"Name": ..., "Version": ...}]``) beside the labels or in a folder above them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.imaging.dicom.package import DEFAULT_MAX_TOTAL_BYTES
from engine.imaging.segments import SegmentHeaderError, segment_names
from engine.imaging.volume import IMAGE_SUFFIXES, Volume, read_image

#: Bound on one label file's bytes on disk: the same bound as a whole imaging package.
MAX_FILE_BYTES = DEFAULT_MAX_TOTAL_BYTES
#: Bound on a label image's voxels. A UK Biobank neck-to-knee Dixon grid at its native 2.232 mm is
#: ~ 224 x 174 x 370 ≈ 14 M voxels; 2^27 (134 M) leaves room for finer or larger grids while one int32
#: copy stays within ~ 0.5 GB.
MAX_VOXELS = 2**27
#: A label image holds few distinct values (MuscleMap ~ 100, TotalSegmentator ~ 120); an intensity image
#: saved as integers holds thousands. Above this many the file is refused as "not a label image".
MAX_DISTINCT_LABELS = 1024
_EID_NAME = re.compile(r"^(?:sub-)?(?P<eid>[1-9]\d*)(?=[_.\-]|$)")
# TotalSegmentator's label table (nifti_ext_header.py writes a Caret XML extension): <Label Key="1" ...>
# <![CDATA[spleen]]></Label>. Parsed with a regular expression, not an XML parser (no entities expanded).
_CARET_LABEL = re.compile(rb'<Label\s+Key="(\d+)"[^>]*>\s*<!\[CDATA\[([^\]]*)\]\]>\s*</Label>')


#: BIDS derivatives record the tool that wrote them here (GeneratedBy); looked for this many folders up.
DESCRIPTION_FILE = "dataset_description.json"
DESCRIPTION_LEVELS = 3
MAX_DESCRIPTION_BYTES = 2**20


class LabelFileError(EngineError, ValueError):
    """A file is not a usable label image: too large, not a label image, non-integer labels."""


@dataclass(frozen=True)
class LabelImage:
    """A label image in LPS, its integer labels and the names its file gives them."""

    path: Path
    volume: Volume  # data: an integer array
    names: dict[int, str]  # label value -> name written in the file ({} when none)


def is_image(path: Path) -> bool:
    return path.name.endswith(IMAGE_SUFFIXES)


def image_stem(path: Path) -> str:
    """``gluteus_maximus_left.nii.gz`` → ``gluteus_maximus_left``; ``x.seg.nrrd`` → ``x``."""
    name = path.name
    for suffix in (".seg.nrrd", *IMAGE_SUFFIXES):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def eid_from_name(name: str) -> int | None:
    """The participant ID a file or folder name starts with: ``{eid}_…`` or ``sub-{eid}_…`` (BIDS)."""
    m = _EID_NAME.match(Path(name).name)
    return int(m.group("eid")) if m else None


def generated_by(path: Path, tool: str) -> tuple[str, Path] | None:
    """``(version, file)`` of ``tool`` from the nearest BIDS ``dataset_description.json`` in ``path``'s folder
    (``path`` itself for a folder of masks) or up to :data:`DESCRIPTION_LEVELS` above; None when the nearest
    one names no version of a tool whose ``Name`` contains ``tool`` (case-insensitive), or there is none.
    """
    start = path if path.is_dir() else path.parent
    for folder in [start, *start.parents][: DESCRIPTION_LEVELS + 1]:
        found = folder / DESCRIPTION_FILE
        if not found.is_file():
            continue
        if found.stat().st_size > MAX_DESCRIPTION_BYTES:
            raise LabelFileError(f"{found}: over {MAX_DESCRIPTION_BYTES:,} bytes; not a BIDS dataset description "
                                 "(give --tool-version instead)")
        try:
            data = json.loads(found.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LabelFileError(f"{found}: not readable JSON ({err}); fix it or give --tool-version") from err
        entries = data.get("GeneratedBy") if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if (isinstance(entry, dict) and tool.lower() in str(entry.get("Name", "")).lower()
                    and str(entry.get("Version", "")).strip()):
                return str(entry["Version"]).strip(), found
        return None  # the nearest description decides: one further up describes another dataset
    return None


def _check_size(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no label file at {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise LabelFileError(f"{path}: {size:,} bytes, above the bound of {MAX_FILE_BYTES:,} bytes for a label file")


def _header_shape(path: Path) -> tuple[tuple[int, ...], dict[int, str], dict[str, str]]:
    """Shape, label names and (NRRD) header fields, read without the voxel data."""
    if path.name.endswith(".nrrd"):
        import nrrd

        try:
            header = nrrd.read_header(str(path))
        except Exception as err:  # pynrrd raises several types for a corrupt header
            raise LabelFileError(f"{path}: cannot read the NRRD header: {err}") from err
        fields = {str(k): str(v) for k, v in header.items()}
        return tuple(int(s) for s in header.get("sizes", ())), _segment_names(path, fields), fields
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for a corrupt file
        raise LabelFileError(f"{path}: cannot read the NIfTI header: {err}") from err
    names: dict[int, str] = {}
    for ext in getattr(img.header, "extensions", ()):
        content = ext.get_content()
        if isinstance(content, bytes):
            names.update({int(k): v.decode("utf-8", "replace").strip() for k, v in _CARET_LABEL.findall(content)})
    return tuple(int(s) for s in img.shape), names, {}


def _segment_names(path: Path, fields: dict[str, str]) -> dict[int, str]:
    try:
        return segment_names(fields)
    except SegmentHeaderError as err:
        raise LabelFileError(f"{path}: {err}") from err


def read_labels(path: str | os.PathLike[str], *, binary: bool = False) -> LabelImage:
    """Read a label image (NIfTI or NRRD), bounded, as integers in LPS.

    ``binary``: the file must be a 0/1 mask (TotalSegmentator's per-class files). Raises
    :class:`LabelFileError` for a file over the bounds, not 3-D, not a label image or holding
    non-integer values.
    """
    p = Path(path)
    _check_size(p)
    if not is_image(p):
        raise LabelFileError(f"{p}: not a label image; expected one of {', '.join(IMAGE_SUFFIXES)}")
    shape, names, _ = _header_shape(p)
    if len(shape) != 3:
        raise LabelFileError(f"{p}: a label image is 3-D, found shape {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise LabelFileError(f"{p}: {voxels:,} voxels {shape}, above the bound of {MAX_VOXELS:,} for a label image")
    volume = read_image(p)
    data = np.asarray(volume.data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.issubdtype(data.dtype, np.floating):
            raise LabelFileError(f"{p}: not a label image: voxel type {data.dtype}")
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            bad = data[~np.isfinite(data) | (data != np.round(data))]
            raise LabelFileError(f"{p}: non-integer labels (e.g. {float(bad.flat[0])!r}); a label image holds whole "
                                 "numbers — is this an intensity image?")
        if data.size and (data.min() < np.iinfo(np.int32).min or data.max() > np.iinfo(np.int32).max):
            raise LabelFileError(f"{p}: not a label image: values beyond the int32 range")
        data = data.astype(np.int32)
    if data.size and int(data.min()) < 0:
        raise LabelFileError(f"{p}: not a label image: negative values (down to {int(data.min())})")
    if binary:
        if data.size and int(data.max()) > 1:
            raise LabelFileError(f"{p}: not a binary mask: values up to {int(data.max())}, expected 0 and 1")
    else:
        distinct = np.unique(data)
        if distinct.size > MAX_DISTINCT_LABELS:
            raise LabelFileError(f"{p}: not a label image: {distinct.size:,} distinct values, a label map holds "
                                 f"at most {MAX_DISTINCT_LABELS:,}")
    return LabelImage(p, volume.with_data(data) if data is not volume.data else volume, names)
