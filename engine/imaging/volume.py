"""A 3-D image with its geometry, and NRRD and NIfTI input/output.

Conventions (shared by fusion, phantoms, segmentation, measurement and meshes):

- ``data`` is indexed ``[i, j, k]`` = voxel axes in NRRD (Fortran) order: ``i`` runs along the first
  column of ``direction``, ``k`` along the slice normal.
- World space is DICOM/NRRD patient space **LPS** in millimetres:
  ``world = origin + direction @ (spacing * [i, j, k])``.
- ``direction`` columns are unit vectors; ``spacing`` in mm; ``origin`` is the centre of voxel (0,0,0).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from engine.errors import EngineError
from store.files import atomic_path


@dataclass(frozen=True)
class Volume:
    """Voxel data plus geometry (LPS, mm) and free-text metadata."""

    data: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"Volume data must be 3-D, got shape {self.data.shape}")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3):
            raise ValueError(f"direction must be 3x3, got {d.shape}")
        object.__setattr__(self, "direction", d)
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        if min(self.spacing) <= 0:
            raise ValueError(f"spacing must be positive, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³ (|det| of the voxel-to-world matrix)."""
        return float(abs(np.linalg.det(self.direction * np.asarray(self.spacing))))

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel index → LPS world (mm) matrix."""
        a = np.eye(4)
        a[:3, :3] = self.direction * np.asarray(self.spacing)
        a[:3, 3] = self.origin
        return a

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """World (LPS mm) coordinates of voxel indices ``ijk`` (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction * np.asarray(self.spacing)).T + np.asarray(self.origin)

    def with_data(self, data: np.ndarray, **meta: str) -> Volume:
        """Same geometry, other voxels (shapes must match)."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} does not match the volume's {self.data.shape}")
        return replace(self, data=data, meta={**self.meta, **meta})


def write_nrrd(
    path: str | os.PathLike[str],
    volume: Volume,
    *,
    extra_header: dict[str, Any] | None = None,
    compression_level: int = 1,
) -> Path:
    """Write ``volume`` as NRRD with full LPS geometry; written atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {
        "space": "left-posterior-superior",
        "space directions": (volume.direction * np.asarray(volume.spacing)).T,  # rows = axis vectors
        "space origin": np.asarray(volume.origin, dtype=float),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    for key, value in {**volume.meta, **(extra_header or {})}.items():
        header[str(key)] = value if not isinstance(value, str) else value.replace("\n", " ")
    with atomic_path(path) as tmp:
        if header["encoding"] == "raw":
            _write_raw_nrrd(tmp, np.asarray(volume.data), header)
        else:
            nrrd.write(str(tmp), np.asarray(volume.data), header, compression_level=compression_level, index_order="F")
    return path


def _write_raw_nrrd(path: Path, data: np.ndarray, header: dict[str, Any]) -> None:
    """The file ``nrrd.write`` writes for a raw encoding (pynrrd's own header), with the voxels written
    straight from the array's memory: pynrrd copies them twice first (``tobytes``, then per chunk),
    which costs more than the write itself for a fused volume (~45 MB)."""
    from nrrd.writer import _handle_header, _write_header  # pynrrd is pinned (requirements.txt)

    fortran = np.asfortranarray(data)  # the file holds the voxels in Fortran (index_order="F") order
    with open(path, "wb") as fh:
        _write_header(fh, _handle_header(fortran, header, "F"))
        fh.write(memoryview(fortran.T).cast("B"))


_STANDARD_KEYS = {
    "type", "dimension", "space", "sizes", "space directions", "kinds", "endian", "encoding",
    "space origin", "space units", "measurement frame",
}


def read_nrrd(path: str | os.PathLike[str]) -> Volume:
    """Read an NRRD written by MSMV, 3D Slicer or any tool that stores LPS/RAS geometry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NRRD file at {path}")
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as err:  # pynrrd raises several types for corrupt files
        raise EngineError(f"cannot read NRRD {path}: {err}") from err
    if data.ndim != 3:
        raise EngineError(f"{path}: expected a 3-D NRRD, found {data.ndim} dimensions")
    dirs = header.get("space directions")
    if dirs is None:
        spacing_vals = header.get("spacings", [1.0, 1.0, 1.0])
        matrix = np.diag(np.asarray(spacing_vals, dtype=float))
    else:
        matrix = np.asarray(dirs, dtype=float).T  # columns = axis vectors
    spacing = np.linalg.norm(matrix, axis=0)
    direction = matrix / spacing
    origin = np.asarray(header.get("space origin", [0.0, 0.0, 0.0]), dtype=float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("right-anterior-superior", "ras"):
        flip = np.diag([-1.0, -1.0, 1.0])
        direction = flip @ direction
        origin = flip @ origin
    meta = {k: str(v) for k, v in header.items() if k not in _STANDARD_KEYS}
    return Volume(data, tuple(spacing), tuple(origin), direction, meta)


IMAGE_SUFFIXES = (".nrrd", ".nii.gz", ".nii")


def read_image(path: str | os.PathLike[str]) -> Volume:
    """Read an NRRD or NIfTI image as a :class:`Volume` in LPS."""
    p = Path(path)
    if p.name.endswith(".nrrd"):
        return read_nrrd(p)
    if p.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            img = nib.load(str(p))
            data = np.asarray(img.dataobj)
        except Exception as err:  # nibabel raises several types for corrupt files
            raise EngineError(f"cannot read NIfTI {p}: {err}") from err
        if data.ndim != 3:
            raise EngineError(f"{p}: expected a 3-D NIfTI, found shape {data.shape}")
        ras = np.asarray(img.affine, dtype=float)
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
        spacing = np.linalg.norm(lps[:3, :3], axis=0)
        return Volume(data, tuple(spacing), tuple(lps[:3, 3]), lps[:3, :3] / spacing)
    raise EngineError(f"{p}: unsupported image format; expected one of {IMAGE_SUFFIXES}")


# -- NIfTI output: RAS affine, MSMV metadata and label table in a JSON sidecar --------------------
#: NIfTI world space is RAS: x and y of LPS flipped.
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Key every NIfTI sidecar MSMV writes carries (its format version), so it is told from a user's JSON.
NIFTI_SIDECAR_MARKER = "msmv_nifti"
_SLICER_SEGMENT_PREFIXES = ("Segment", "Segmentation_")


def is_nifti(path: str | os.PathLike[str]) -> bool:
    return Path(path).name.endswith((".nii", ".nii.gz"))


def nifti_affine(volume: Volume) -> np.ndarray:
    """4x4 voxel index → RAS world (mm): the LPS affine with x and y negated."""
    return RAS_FROM_LPS @ volume.affine


def nifti_sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``labels.nii.gz`` → ``labels.json`` (BIDS style: same stem, beside it)."""
    p = Path(path)
    stem = p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.name.removesuffix(".nii")
    return p.with_name(stem + ".json")


def nifti_sidecar(volume: Volume, *, labels: dict[int, str] | None = None, file: str = "") -> dict[str, Any]:
    """What :func:`write_nifti` puts beside the image: the metadata an MSMV NRRD header carries
    (``msmv_*``: source series, stations and their ranges, swapped stations, version ...), the LPS
    geometry for cross-checking, and for a label map its label table."""
    import engine

    meta = {k: v for k, v in volume.meta.items() if not k.startswith(_SLICER_SEGMENT_PREFIXES)}
    out: dict[str, Any] = {
        NIFTI_SIDECAR_MARKER: 1,
        "file": file,
        "space": "NIfTI affine is RAS; MSMV's NRRD files of the same grid say left-posterior-superior (LPS)",
        "lps_affine": [[float(x) for x in row] for row in volume.affine],
        "shape": list(volume.shape),
        "meta": {str(k): str(v) for k, v in meta.items()},
        "software_version": engine.__version__,
    }
    if labels is not None:
        out["labels"] = [{"value": int(v), "name": str(n)} for v, n in sorted(labels.items())]
    return out


def write_nifti(path: str | os.PathLike[str], volume: Volume, *, labels: dict[int, str] | None = None) -> Path:
    """Write ``volume`` as NIfTI-1 (``.nii`` or ``.nii.gz``) on the same grid as its NRRD, plus the JSON
    sidecar of :func:`nifti_sidecar` (:func:`nifti_sidecar_path`); both written atomically.

    The affine (qform and sform, code 1 = scanner) is :func:`nifti_affine`, so every voxel maps to the
    same physical point as in the LPS NRRD. ``labels`` ({value: name}) marks a label map: its table goes
    into the sidecar and the voxels are written as uint8 (uint16 above 255).
    """
    import nibabel as nib

    path = Path(path)
    if not is_nifti(path):
        raise EngineError(f"a NIfTI file name ends in .nii or .nii.gz, found {path.name!r}")
    data = np.asarray(volume.data)
    if labels is not None:
        data = data.astype(np.uint8 if int(data.max(initial=0)) <= 255 else np.uint16)
    affine = nifti_affine(volume)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    if labels is not None:
        img.header["intent_code"] = 1002  # NIFTI_INTENT_LABEL
    path.parent.mkdir(parents=True, exist_ok=True)
    side = nifti_sidecar_path(path)
    text = json.dumps(nifti_sidecar(volume, labels=labels, file=path.name), indent=1) + "\n"
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"  # nibabel compresses by the name's ending
    with atomic_path(path, suffix=suffix) as tmp, atomic_path(side) as tmp_side:
        nib.save(img, str(tmp))
        tmp_side.write_text(text, encoding="utf-8")
    return path


def read_nifti_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar :func:`write_nifti` wrote beside ``path``; None when there is none or it is not MSMV's."""
    side = nifti_sidecar_path(path)
    try:
        content = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) and NIFTI_SIDECAR_MARKER in content else None
