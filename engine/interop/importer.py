"""Import other tools' segmentations: find the inputs, convert, measure, seal a bundle, commit it.

Converting and measuring need no store: they run in the importing process, which seals each subject's
rows, the converted label map and meshes into a bundle (:mod:`engine.interop.bundle`). The bundle commits
through the single writer (:class:`store.writer.Writer`), one subject per transaction, with provenance
recording the tool, its version, the input's checksum and the mapping: queued to the running engine when
one holds the writer (its coordinator commits it and the job shows in the Jobs table), or committed by
this process as a one-shot writer when none runs -- through the same claim and commit steps either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.imaging.volume import Volume, read_image, write_nrrd
from engine.interop import bundle
from engine.interop.convert import Converted, convert_masks, convert_multilabel
from engine.interop.mapping import Mapping, normalise_key, ts_class_map, version_at_least, version_tuple
from engine.interop.measure import Measured, left_side, measure_converted
from engine.interop.read import (
    DESCRIPTION_FILE,
    LabelFileError,
    eid_from_name,
    generated_by,
    image_stem,
    is_image,
    read_labels,
)
from store.files import sha256_file
from store.home import Home
from store.import_notes import PROVENANCE_KIND
from store.structures import BY_LABEL, STRUCTURES
from store.vocabulary import FIRST_IMAGING_INSTANCE

FORMATS: tuple[str, ...] = ("musclemap", "totalsegmentator", "labelmap")
#: Artifact kinds the Subject page reads (the same kinds the engine's pipeline writes; the store keeps each
#: source's own, so an import never replaces the engine's label map or meshes).
LABELS_KIND = "labels"
#: The version a label set is read as when the file holds none of the labels any listed version added.
EARLIEST = "0"
MESHES_KIND = "meshes"


@dataclass(frozen=True)
class LabelInput:
    """One subject's segmentation: a multi-label file, or a folder of binary masks (TotalSegmentator)."""

    path: Path
    masks: dict[str, Path] | None = None  # class name -> file, for a folder of masks


@dataclass
class SubjectImport:
    """What importing one input did (or why it failed)."""

    input: LabelInput
    eid: int | None = None
    measured: Measured | None = None
    converted: Converted | None = None
    tool_version: str | None = None  # None: unknown
    version_note: str = ""
    label_set: str | None = None  # the tool version whose label set was read (MuscleMap), when it mattered
    artifact_dir: Path | None = None
    job_id: str | None = None
    queued: bool = False  # sealed into the inbox for the writer that holds the store (a running engine)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    ignored: dict[str, int | None] = field(default_factory=dict)  # source labels with no counterpart -> voxels
    overlaps: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def _masks_in(folder: Path, mapping: Mapping) -> dict[str, Path] | None:
    images = {image_stem(p): p for p in sorted(folder.iterdir()) if p.is_file() and is_image(p)}
    known = set(mapping.entries) | set(mapping.ignored)
    return images if any(normalise_key(stem) in known for stem in images) else None


def find_inputs(paths: Iterable[str | os.PathLike[str]], fmt: str, mapping: Mapping) -> list[LabelInput]:
    """Expand PATHs: a file is one subject; a folder of TotalSegmentator masks is one; any other folder
    holds one subject per image file (and, for TotalSegmentator, per mask folder) inside it."""
    out: list[LabelInput] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            out.append(LabelInput(p))
            continue
        if not p.is_dir():
            raise FileNotFoundError(f"no label file or folder at {p}")
        masks = _masks_in(p, mapping) if fmt == "totalsegmentator" else None
        if masks is not None:
            out.append(LabelInput(p, masks))
            continue
        found = []
        for child in sorted(p.iterdir()):
            if child.is_file() and is_image(child):
                found.append(LabelInput(child))
            elif fmt == "totalsegmentator" and child.is_dir() and (sub := _masks_in(child, mapping)) is not None:
                found.append(LabelInput(child, sub))
        if not found:
            raise LabelFileError(f"{p}: no label images in this folder (expected .nii.gz, .nii or .nrrd files"
                                 + (", or TotalSegmentator mask folders)" if fmt == "totalsegmentator" else ")"))
        out.extend(found)
    return out


def _digest(inp: LabelInput) -> str:
    if inp.masks is None:
        return sha256_file(inp.path)
    h = hashlib.sha256()  # a folder: the hash of its files' names and hashes, in name order
    for name, path in sorted(inp.masks.items()):
        h.update(f"{name}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


def _tool_version(inp: LabelInput, mapping: Mapping, given: str | None) -> tuple[str | None, str]:
    """The tool's version and where it came from: ``--tool-version``, else a BIDS ``dataset_description.json``
    beside the labels (:func:`engine.interop.read.generated_by`); ``(None, why)`` when neither says."""
    if given:
        return given, "given with --tool-version"
    found = generated_by(inp.path, mapping.tool)
    if found is not None:
        return found[0], f"read from {found[1]} (GeneratedBy)"
    return None, (f"not given with --tool-version, and {mapping.tool} writes no version into its output "
                  f"(no BIDS {DESCRIPTION_FILE} beside it names one)")


def _musclemap_label_set(values: set[int], mapping: Mapping, version: str | None, note: str) -> tuple[str, str]:
    """The version whose label set applies (:data:`EARLIEST`: older than every listed addition) and the report's
    sentence on it. Without a version the file's own values decide: a label a version added proves that
    version or later; with none of them the file is read as an older model's, whose lack of those structures
    is "not measured" -- a 0 would claim a volume the model never segmented."""
    if version is not None:
        return version, note
    for v in sorted(mapping.versions, key=version_tuple, reverse=True):
        if any(k.isdigit() and int(k) in values for k in mapping.versions[v]):
            return v, (f"{note}; the file holds labels MuscleMap {v} added, so the {v} label set (the newest it "
                       "proves) applies: its structures absent from the file are stored as 0")
    added = sorted({BY_LABEL[t.structure].key for v in mapping.versions.values() for k in v
                    if (t := mapping.entries.get(k)) is not None and t.structure is not None})
    return EARLIEST, (f"{note}; the file holds none of the labels MuscleMap {', '.join(sorted(mapping.versions))} "
                      f"added, so it is read as an older model's: {', '.join(added)} are not measured (not 0); "
                      "give --tool-version if the model was newer")


def convert_input(inp: LabelInput, fmt: str, mapping: Mapping, tool_version: str | None) -> SubjectImport:
    """Read and convert one input (no store access)."""
    version, note = _tool_version(inp, mapping, tool_version)
    result = SubjectImport(inp, tool_version=version, version_note=note)
    if inp.masks is not None:
        result.converted = convert_masks(inp.masks, mapping, read_labels)
        return result
    image = read_labels(inp.path)
    class_map = None
    label_version = None
    if fmt == "musclemap":
        import numpy as np

        values = set(np.unique(image.volume.data).tolist())
        label_version, result.version_note = _musclemap_label_set(values, mapping, version, note)
        first = min(mapping.versions, key=version_tuple) if mapping.versions else EARLIEST
        result.label_set = f"before {first}" if label_version == EARLIEST else label_version
    elif fmt == "totalsegmentator":
        if image.names:
            result.version_note = f"{note}; label table read from the file's NIfTI header extension"
        else:
            class_map = ts_class_map(version)
            rng = "2.5 or later" if version_at_least(version or "0", "2.5") else "before 2.5"
            result.version_note = f"{note}; no label table in the file: total_mr class map of TotalSegmentator {rng}"
    result.converted = convert_multilabel(image, mapping, version=label_version, class_map=class_map)
    return result


def _provenance(sub: SubjectImport, fmt: str, mapping: Mapping, digest: str, water_fat: list[str]) -> dict[str, Any]:
    conv, meas = sub.converted, sub.measured
    assert conv is not None and meas is not None
    return {
        "kind": PROVENANCE_KIND,
        "input_sha256": digest,
        "details": {
            "tool": mapping.tool, "format": fmt, "tool_version": sub.tool_version, "version_note": sub.version_note,
            "label_set": sub.label_set,
            "input": str(sub.input.path), "mapping": mapping.origin, "mapping_sha256": mapping.sha256,
            "merged": mapping.merges(), "structure_notes": mapping.structure_notes(),
            "ignored": conv.ignored, "absent": conv.absent, "overlaps": conv.overlaps,
            "not_measured": meas.not_measured, "midline_x_mm": meas.midline_x_mm,
            "midline_source": meas.midline_source, "sides": "as labelled; unsided labels split at the midline",
            "fat_fraction_from": water_fat,
        },
    }


def _write_artifacts(folder: Path, sub: SubjectImport, source: str) -> list[dict[str, str]]:
    """Write the converted label map (and meshes) into the bundle ``folder``; returns kind, file, sha256."""
    from engine.imaging.mesh import build_meshes, save_meshes

    conv, meas = sub.converted, sub.measured
    assert conv is not None and meas is not None
    names = {f"Segment{i}_Name": s.name for i, s in enumerate(STRUCTURES)}
    names.update({f"Segment{i}_LabelValue": str(s.label) for i, s in enumerate(STRUCTURES)})
    files = {LABELS_KIND: write_nrrd(folder / "labels.nrrd", conv.labels, extra_header={
        **names, "msmv_source": source, "msmv_sides": "unsided voxels split at the midline; sided as labelled"})}
    # sided source labels keep their side in the 3-D view too: the mesh splits by the same mask as the volumes
    left = left_side(conv, meas.midline_x_mm) if conv.sides.any() else None
    try:
        files[MESHES_KIND] = save_meshes(build_meshes(conv.labels, midline=meas.midline_x_mm, left=left),
                                         folder / "meshes.npz")
    except Exception as err:  # noqa: BLE001 - meshes only draw the 3-D view: the import commits without them
        sub.notes.append(f"no meshes: {type(err).__name__}: {err}")
    return [{"kind": kind, "file": p.name, "sha256": sha256_file(p)} for kind, p in files.items()]


def _eid(inp: LabelInput, given: int | None) -> int:
    if given is not None:
        return given
    eid = eid_from_name(inp.path.name)
    if eid is None:
        raise LabelFileError(f"{inp.path}: no participant ID in the name; name it {{eid}}_... or sub-{{eid}}_..., "
                             "or give --eid")
    return eid


def import_labels(
    paths: Iterable[str | os.PathLike[str]],
    fmt: str,
    mapping: Mapping,
    *,
    home: Home,
    eid: int | None = None,
    water: str | os.PathLike[str] | None = None,
    fat: str | os.PathLike[str] | None = None,
    source: str | None = None,
    tool_version: str | None = None,
    instance: int = FIRST_IMAGING_INSTANCE,
) -> list[SubjectImport]:
    """Import every input under ``paths``; one failed input is reported and the others go on.

    With the store's writer free this process commits each subject as a one-shot writer (and any import
    still waiting in the inbox from an earlier run); while a running engine holds it, each subject is
    sealed into the inbox (``SubjectImport.queued``) and the engine's coordinator commits it as a job.
    Nothing needs the store before the commit, so both do the same work.
    """
    from store.errors import StoreError

    if fmt not in FORMATS:
        raise LabelFileError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if (water is None) != (fat is None):
        raise LabelFileError("--water and --fat go together: fat fraction needs both")
    inputs = find_inputs(paths, fmt, mapping)
    if eid is not None and len(inputs) > 1:
        raise LabelFileError(f"--eid names one participant but {len(inputs)} inputs were found; name the files "
                             "{eid}_... instead")
    if water is not None and len(inputs) > 1:
        raise LabelFileError("--water/--fat are one participant's images; import one input at a time with them")
    source = source or fmt
    w_img: Volume | None = read_image(water) if water is not None else None
    f_img: Volume | None = read_image(fat) if fat is not None else None
    water_fat = [str(water), str(fat)] if water is not None else []
    writer = _one_shot_writer(home)  # None: a running engine holds the store, and commits what is queued
    results: list[SubjectImport] = []
    seen: dict[int, Path] = {}
    try:
        for inp in inputs:
            sub = SubjectImport(inp)
            try:
                sub.eid = _eid(inp, eid)
                if sub.eid in seen:
                    raise LabelFileError(f"{inp.path}: participant {sub.eid} was already imported from {seen[sub.eid]} "
                                         "in this run; one segmentation per participant and source")
                seen[sub.eid] = inp.path
                if writer is not None and writer.is_withdrawn(sub.eid):  # else the engine deletes it unclaimed
                    raise LabelFileError(f"participant {sub.eid} withdrew from UK Biobank; not imported")
                _import_one(home, writer, sub, fmt, mapping, tool_version, source, instance, (w_img, f_img),
                            water_fat)
            except (EngineError, StoreError, ValueError, OSError) as err:
                sub.error = str(err)
            sub.converted = None  # the arrays are not needed past here
            results.append(sub)
        if writer is not None:  # imports queued earlier while another command held the store: commit them too
            try:  # each is a job: its outcome shows in the Jobs table, not in this run's results
                bundle.claim(writer, home)
                bundle.commit_queued(writer, home)
            except (EngineError, StoreError, OSError):
                pass  # they stay queued for the next writer
    finally:
        if writer is not None:
            writer.close()
    return results


def _one_shot_writer(home: Home) -> Any:
    """The store's writer, opened here; None when another process (the engine) holds it."""
    from store.errors import WriterBusyError
    from store.writer import Writer

    writer = Writer(home)
    try:
        writer.open()
    except WriterBusyError:
        return None
    return writer


def _import_one(home: Home, writer: Any, sub: SubjectImport, fmt: str, mapping: Mapping, tool_version: str | None,
                source: str, instance: int, images: tuple[Volume | None, Volume | None], water_fat: list[str]) -> None:
    """Convert, measure and seal one input; commit it with ``writer``, or leave it queued when that is None."""
    assert sub.eid is not None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    converted = convert_input(sub.input, fmt, mapping, tool_version)
    sub.converted, sub.tool_version, sub.version_note, sub.label_set = (
        converted.converted, converted.tool_version, converted.version_note, converted.label_set)
    assert sub.converted is not None
    sub.ignored, sub.overlaps, sub.absent = sub.converted.ignored, sub.converted.overlaps, sub.converted.absent
    t1 = time.perf_counter()
    sub.measured = measure_converted(sub.converted, water=images[0], fat=images[1])
    t2 = time.perf_counter()
    timings.update(convert=round(t1 - t0, 3), measure=round(t2 - t1, 3))
    digest = _digest(sub.input)
    folder = bundle.staging(home)
    try:
        artifacts = _write_artifacts(folder, sub, source)
        timings["mesh"] = round(time.perf_counter() - t2, 3)
        request = bundle.Request(
            bundle.new_bundle_id(), sub.eid, instance, source, sub.measured.metrics, sub.measured.compartments,
            _provenance(sub, fmt, mapping, digest, water_fat), artifacts, str(sub.input.path), digest, timings)
        sealed = bundle.seal(folder, request)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    sub.job_id = request.bundle_id
    sub.artifact_dir = bundle.import_dir(home, sub.eid, instance, source)
    if writer is None:
        sub.queued = True
        return
    job = bundle.claim_bundle(writer, home, sealed)
    if job is None:
        raise LabelFileError(f"participant {sub.eid} withdrew from UK Biobank; not imported")
    bundle.commit_job(writer, home, job, str(bundle.claimed_path(home, sealed)))


def summary(sub: SubjectImport) -> str:
    """Lines for the command line: what was stored, ignored, overlapping and not measured."""
    who = f"participant {sub.eid}" if sub.eid is not None else str(sub.input.path)
    if sub.error:
        return f"{sub.input.path}: FAILED: {sub.error}"
    meas = sub.measured
    assert meas is not None
    lines = [f"{who} from {sub.input.path}: {len(meas.metrics)} structure-side volume(s)"
             + (f", {len(meas.compartments)} compartment volume(s)" if meas.compartments else "")
             + f"; midline from the {meas.midline_source}; tool version {sub.tool_version or 'unknown'} "
             f"({sub.version_note})"]
    if meas.not_measured:
        lines.append(f"  not measured ({len(meas.not_measured)}): {', '.join(meas.not_measured)}")
    if sub.ignored:
        shown = [k if n is None else f"{k}: {n:,} voxels" for k, n in sub.ignored.items()]
        lines.append(f"  ignored, no MSMV counterpart ({len(shown)}): {'; '.join(shown)}")
    if sub.absent:
        lines.append(f"  mapped but empty in this input (stored as 0): {', '.join(sub.absent)}")
    lines += [f"  overlap: {o}" for o in sub.overlaps]
    lines += [f"  {note}" for note in sub.notes]
    if sub.queued:
        lines.append(f"  queued as job {sub.job_id}: the store's writer is busy (a running engine), which commits it; "
                     "`msmv jobs` shows when it is stored")
    elif sub.job_id:
        lines.append(f"  stored (job {sub.job_id})")
    if sub.artifact_dir:
        lines.append(f"  label map: {sub.artifact_dir / 'labels.nrrd'}")
    return "\n".join(lines)


def report_json(results: list[SubjectImport]) -> str:
    """The per-input outcome as JSON (for scripts)."""
    return json.dumps([{"input": str(r.input.path), "eid": r.eid, "error": r.error, "job_id": r.job_id,
                        "status": "failed" if r.error else "queued" if r.queued else "stored",
                        "tool_version": r.tool_version, "version_note": r.version_note,
                        "metrics": r.measured.metrics if r.measured else [],
                        "compartments": r.measured.compartments if r.measured else [],
                        "not_measured": r.measured.not_measured if r.measured else []} for r in results], indent=1)
