"""``msmv export-labels``: a processed subject's label map as NRRD, NIfTI or a DICOM SEG.

The label map is the ``labels`` artifact the store records for the participant's imaging visit and
metric source (the engine's ``msmv``, or a source ``msmv import-labels`` wrote):

- ``nrrd``: the stored file itself, copied (LPS geometry, 3D Slicer segment names in the header);
- ``nifti``: the same grid with a RAS affine, label table and header metadata in a JSON sidecar;
- ``dicom-seg``: a folder (or ``.zip``) holding ``seg.dcm`` and ``water/`` — the fused water volume as a
  derived MR series that the SEG references slice by slice (:mod:`engine.imaging.dicom.derived`), plus
  ``export.json``. The labels live on the fused grid, which no acquired station has; a series of that
  grid keeps every label voxel a SEG pixel (volumes exact), where per-station SEGs would resample the
  labels onto each station's grid and split structures at the station seams.

Nothing is overwritten without ``force``, never an input, and everything is written under temporary
names and renamed once complete. This module loads no heavy library at import (the CLI reads
:data:`FORMATS`).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from store.errors import ExportError
from store.files import atomic_path, sha256_file, temp_path

if TYPE_CHECKING:
    from engine.imaging.volume import Volume
    from store.reader import Reader

FORMATS: tuple[str, ...] = ("nrrd", "nifti", "dicom-seg")
LABELS_KIND = "labels"
WATER_KIND = "water"
#: The engine's own metric source; artifacts recorded before sources were kept apart belong to it.
ENGINE_SOURCE = "msmv"
#: Marks ``export.json`` in a DICOM SEG export folder: only such a folder is replaced with ``force``.
EXPORT_MARKER = "msmv_label_export"
SEG_FILE = "seg.dcm"
SERIES_FOLDER = "water"
SIDECAR_FILE = "export.json"
_IMPORT_FOLDER_PREFIX = "import-"  # engine.interop.importer keeps a source's files in import-<source>/


class LabelExportError(EngineError):
    """The participant or label map asked for is not in the store (or not unambiguous)."""


@dataclass(frozen=True)
class StoredLabels:
    """Where a participant's label map (and the water image of its grid, if any) lies."""

    eid: int
    instance: int
    source: str
    path: Path
    water: Path | None


@dataclass(frozen=True)
class LabelExport:
    path: Path
    fmt: str
    labels: StoredLabels
    files: tuple[Path, ...]
    segments: int
    frames: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _source_of(row: Any) -> str:
    """An artifact row's metric source: its ``source`` column where the store has one, else from its folder."""
    value = getattr(row, "source", None)
    if isinstance(value, str) and value:
        return value
    parent = Path(str(row.path)).parent.name
    return parent[len(_IMPORT_FOLDER_PREFIX):] if parent.startswith(_IMPORT_FOLDER_PREFIX) else ENGINE_SOURCE


def _known(reader: Reader, eid: int) -> bool:
    """``eid`` has metrics of some source, or a row in the participant table."""
    if len(reader.structure_metrics(eids=[eid], all_sources=True)):
        return True
    return bool((reader.participants(columns=["eid"])["eid"] == eid).any())


def find_labels(reader: Reader, eid: int, *, instance: int | None = None, source: str | None = None) -> StoredLabels:
    """The one label map of ``eid`` at ``instance`` from ``source`` (each may be left open when only one
    fits); :class:`LabelExportError` naming the choices otherwise."""
    arts = reader.artifacts(int(eid))
    rows = [(int(r.instance), _source_of(r), str(r.kind), Path(str(r.path))) for r in arts.itertuples()]
    labels = [r for r in rows if r[2] == LABELS_KIND]
    if not labels:
        if not rows and not _known(reader, int(eid)):
            raise LabelExportError(f"participant {eid} is not in the store")
        raise LabelExportError(f"participant {eid} has no label map in the store: not processed yet (run the engine "
                               "on their imaging, or msmv import-labels)")
    choices = ", ".join(f"instance {i} source {s}" for i, s, _, _ in labels)
    if instance is not None:
        labels = [r for r in labels if r[0] == instance]
    if source is not None:
        labels = [r for r in labels if r[1] == source]
    if not labels:
        raise LabelExportError(f"participant {eid} has no label map for"
                               f"{f' instance {instance}' if instance is not None else ''}"
                               f"{f' source {source}' if source is not None else ''}; stored: {choices}")
    if len(labels) > 1:
        raise LabelExportError(f"participant {eid} has {len(labels)} label maps ({choices}); choose one with "
                               "--instance and --source")
    inst, src, _, path = labels[0]
    if not path.is_file():
        raise LabelExportError(f"the label map the store records for participant {eid} (instance {inst}, source "
                               f"{src}) is missing: {path}")
    waters = {s: p for i, s, k, p in rows if i == inst and k == WATER_KIND and p.is_file()}
    water = waters.get(src, waters.get(ENGINE_SOURCE))
    return StoredLabels(int(eid), inst, src, path, water)


# -- where the files go ---------------------------------------------------------------------------
def _targets(out: Path, fmt: str) -> list[Path]:
    if fmt == "nrrd":
        if not out.name.endswith(".nrrd"):
            raise ExportError(f"--format nrrd writes a .nrrd file, found {out.name!r}")
        return [out]
    if fmt == "nifti":
        from engine.imaging.volume import is_nifti, nifti_sidecar_path

        if not is_nifti(out):
            raise ExportError(f"--format nifti writes a .nii or .nii.gz file, found {out.name!r}")
        return [out, nifti_sidecar_path(out)]
    if fmt == "dicom-seg":
        if out.suffix.lower() == ".dcm":
            raise ExportError(f"a DICOM SEG export is a folder or a .zip (the SEG and the series it references), "
                              f"found {out.name!r}")
        return [out]
    raise ExportError(f"export format must be one of {', '.join(FORMATS)}, found {fmt!r}")


def _is_earlier_export(folder: Path) -> bool:
    try:
        content = json.loads((folder / SIDECAR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and EXPORT_MARKER in content


def check_targets(out: Path, fmt: str, *, inputs: tuple[Path, ...], force: bool) -> list[Path]:
    """The files the export will write; :class:`ExportError` before anything is written if it may not."""
    targets = _targets(out, fmt)
    for target in targets:
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ExportError(f"cannot write {target}: {parent} is a file, not a folder")
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise ExportError(f"cannot write {target}: the folder {parent} is not writable")
                break
        for given in inputs:
            if target.exists() and given.exists() and os.path.samefile(target, given):
                raise ExportError(f"the export would overwrite its input {given}; choose another --out")
        if not (target.exists() or target.is_symlink()):
            continue
        if not force:
            raise ExportError(f"{target} already exists; choose another --out, or replace it with --force")
        if target.is_dir() and not (fmt == "dicom-seg" and out.suffix.lower() != ".zip" and _is_earlier_export(target)):
            raise ExportError(f"{target} is a folder{' that is not an earlier label export' if fmt == 'dicom-seg' else ''}; "
                              "MSMV does not delete it, even with --force: choose another --out")
    return targets


# -- the export -----------------------------------------------------------------------------------
#: The steps of a DICOM SEG export, as ``on_step`` names them (a progress bar's total).
SEG_STEPS: tuple[str, ...] = ("read", "derived series", "segmentation", "write")


def export_labels(stored: StoredLabels, fmt: str, out: str | os.PathLike[str], *, force: bool = False,
                  on_step: Callable[[str], None] | None = None) -> LabelExport:
    """Write ``stored``'s label map as ``fmt`` to ``out`` (see the module docstring for each format).

    ``on_step`` is called after each of :data:`SEG_STEPS` of a DICOM SEG export (about 11 s for a UK
    Biobank-size grid on two cores: benchmarks/label_export.py)."""
    out = Path(out)
    inputs = tuple(p for p in (stored.path, stored.water) if p is not None)
    targets = check_targets(out, fmt, inputs=inputs, force=force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "nrrd":
            with atomic_path(out) as tmp:
                shutil.copyfile(stored.path, tmp)
            return LabelExport(out, fmt, stored, (out,), _segment_count(stored.path))
        if fmt == "nifti":
            return _nifti(stored, out, targets)
        return _dicom_seg(stored, out, on_step or (lambda _step: None))
    except OSError as err:
        raise ExportError(f"cannot write {out}: {err.strerror or err}") from err


def _table(labels: Volume) -> dict[int, str]:
    from engine.segmentation.infer import segment_names
    from store.structures import STRUCTURES

    return segment_names(labels.meta) or {s.label: s.name for s in STRUCTURES}


def _segment_count(path: Path) -> int:
    import numpy as np

    from engine.imaging.volume import read_nrrd

    return int(np.count_nonzero(np.unique(read_nrrd(path).data)))


def _read(stored: StoredLabels) -> Volume:
    from engine.imaging.volume import read_nrrd

    labels = read_nrrd(stored.path)
    return labels.with_data(labels.data, msmv_eid=str(stored.eid), msmv_instance=str(stored.instance),
                            msmv_source=stored.source)


def _fused_meta(stored: StoredLabels) -> dict[str, str]:
    """The fused water image's ``msmv_*`` header (stations, their ranges, swapped stations, source series of
    the water contrast), which the label map's own header does not repeat; {} without an NRRD water image."""
    if stored.water is None or not stored.water.name.endswith(".nrrd"):
        return {}
    import nrrd

    header = nrrd.read_header(str(stored.water))
    return {k: str(v) for k, v in header.items() if k.startswith("msmv_") and k != "msmv_contrast"}


def _nifti(stored: StoredLabels, out: Path, targets: list[Path]) -> LabelExport:
    import numpy as np

    from engine.imaging.volume import write_nifti

    labels = _read(stored)
    labels = labels.with_data(labels.data, **{**_fused_meta(stored), **labels.meta})
    write_nifti(out, labels, labels=_table(labels))
    return LabelExport(out, "nifti", stored, tuple(targets), int(np.count_nonzero(np.unique(labels.data))))


def _same_grid(a: Volume, b: Volume) -> bool:
    import numpy as np

    return a.shape == b.shape and bool(np.allclose(a.affine, b.affine, atol=1e-4))


def _dicom_seg(stored: StoredLabels, out: Path, on_step: Callable[[str], None]) -> LabelExport:
    staging = temp_path(out, suffix=".new")
    try:
        (staging / SERIES_FOLDER).mkdir(parents=True)  # first: where the files cannot go, nothing is computed
        series, seg, segments, sidecar = _seg_content(stored, on_step)
        for k, ds in enumerate(series, start=1):
            ds.save_as(staging / SERIES_FOLDER / f"IM{k:05d}.dcm", enforce_file_format=True)
        seg.save_as(staging / SEG_FILE, enforce_file_format=True)
        (staging / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
        if out.suffix.lower() == ".zip":
            with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(staging.rglob("*")):
                    if p.is_file():
                        zf.write(p, arcname=p.relative_to(staging).as_posix())
        else:
            if out.exists():  # check_targets let only an earlier label export through, and only with force
                shutil.rmtree(out)
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    on_step("write")
    return LabelExport(out, "dicom-seg", stored, (out,), len(segments), int(seg.NumberOfFrames),
                       tuple(sidecar["notes"]))


def _seg_content(stored: StoredLabels, on_step: Callable[[str], None]) -> tuple[list[Any], Any, list[Any], dict[str, Any]]:
    """The derived series, the SEG over it, its segments and the ``export.json`` content."""
    from engine.imaging.dicom.derived import Subject, check_size, derived_series
    from engine.imaging.dicom.seg import label_seg
    from engine.imaging.volume import read_image

    labels = _read(stored)
    check_size(labels)
    if stored.water is None:
        raise LabelExportError(f"a DICOM SEG needs the images it lies on, and the store records no water image for "
                               f"participant {stored.eid} instance {stored.instance}; export --format nifti or nrrd")
    water = read_image(stored.water)
    notes: list[str] = []
    if not _same_grid(water, labels):
        from engine.interop.measure import resample_onto

        resampled = resample_onto(water, labels)
        water = resampled.with_data(resampled.data, **water.meta)
        notes.append(f"the water image was resampled (trilinear) onto the {stored.source} label map's grid")
    table = _table(labels)
    on_step("read")
    series = derived_series(water, Subject(patient_id=str(stored.eid)))
    on_step("derived series")
    seg, segments = label_seg(labels, table, series, algorithm=stored.source)
    on_step("segmentation")
    sidecar = {
        EXPORT_MARKER: 1, "eid": stored.eid, "instance": stored.instance, "source": stored.source,
        "label_map": str(stored.path), "label_map_sha256": sha256_file(stored.path),
        "water": str(stored.water), "seg": SEG_FILE, "series": SERIES_FOLDER, "images": len(series),
        "frames": int(seg.NumberOfFrames),
        "segments": [{"number": s.number, "label": s.label, "name": s.name, "scheme": s.code.scheme_designator,
                      "code": s.code.value, "meaning": s.code.meaning} for s in segments],
        "study_instance_uid": str(series[0].StudyInstanceUID),
        "series_instance_uid": str(series[0].SeriesInstanceUID),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "notes": notes,
    }
    return series, seg, segments, sidecar
