"""Import other tools' segmentations: find the inputs, convert, measure, write artifacts, commit.

Results commit through the single writer (:class:`store.writer.Writer`), one subject per transaction,
with the converted label map (and meshes, when they can be built) under
``MSMV_HOME/artifacts/<eid>/<instance>/import-<source>/`` and provenance recording the tool, its version,
the input's checksum and the mapping. Imports are not queued through a running engine: while the engine
holds the writer lock the import fails before any work, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.imaging.volume import Volume, read_image, write_nrrd
from engine.interop.convert import Converted, convert_masks, convert_multilabel
from engine.interop.mapping import Mapping, normalise_key, ts_class_map, version_at_least
from engine.interop.measure import Measured, measure_converted
from engine.interop.read import LabelFileError, eid_from_name, image_stem, is_image, read_labels
from store.files import sha256_file
from store.home import Home
from store.structures import STRUCTURES
from store.vocabulary import FIRST_IMAGING_INSTANCE

FORMATS: tuple[str, ...] = ("musclemap", "totalsegmentator", "labelmap")
PROVENANCE_KIND = "label-import"
#: Artifact kinds the Subject page reads (the same kinds the engine's pipeline writes).
LABELS_KIND = "labels"
#: The version a label set is read as when the file holds none of the labels any listed version added.
EARLIEST = "0"
MESHES_KIND = "meshes"


class ImportBlocked(EngineError):
    """The store's writer lock is held (a running engine): label imports need it free."""


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
    tool_version: str | None = None
    version_note: str = ""
    artifact_dir: Path | None = None
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


def _musclemap_version(values: set[int], mapping: Mapping, given: str | None) -> tuple[str, str]:
    """The MuscleMap version whose label set applies, and how it was decided."""
    if given:
        return given, "given with --tool-version"
    for version in sorted(mapping.versions, key=lambda v: [int(x) for x in v.split(".")], reverse=True):
        if any(int(k) in values for k in mapping.versions[version] if k.isdigit()):
            return version, f"not given; the file holds labels MuscleMap {version} added, so {version} or later"
    added = ", ".join(sorted(mapping.versions))
    return EARLIEST, (f"not given; the file holds none of the labels added in {added}, so it is read as from an "
                      "earlier model and those structures are not measured (give --tool-version to say otherwise)")


def convert_input(inp: LabelInput, fmt: str, mapping: Mapping, tool_version: str | None) -> SubjectImport:
    """Read and convert one input (no store access)."""
    result = SubjectImport(inp, tool_version=tool_version)
    if inp.masks is not None:
        result.converted = convert_masks(inp.masks, mapping, read_labels)
        result.version_note = "given with --tool-version" if tool_version else "not recorded in the mask files"
        return result
    image = read_labels(inp.path)
    class_map = None
    if fmt == "musclemap":
        import numpy as np

        values = set(np.unique(image.volume.data).tolist())
        result.tool_version, result.version_note = _musclemap_version(values, mapping, tool_version)
    elif fmt == "totalsegmentator":
        if image.names:
            result.version_note = "label table read from the file's NIfTI header extension"
        else:
            class_map = ts_class_map(tool_version)
            rng = "2.5 or later" if version_at_least(tool_version or "0", "2.5") else "before 2.5"
            result.version_note = f"no label table in the file: total_mr class map of TotalSegmentator {rng}"
    else:
        result.version_note = "given with --tool-version" if tool_version else "not given"
    version = result.tool_version if fmt == "musclemap" else None
    result.converted = convert_multilabel(image, mapping, version=version, class_map=class_map)
    if result.tool_version == EARLIEST:
        result.tool_version = None  # recorded as unknown; the note says which label set was used
    return result


def _provenance(sub: SubjectImport, fmt: str, mapping: Mapping, digest: str, water_fat: list[str]) -> dict[str, Any]:
    conv, meas = sub.converted, sub.measured
    assert conv is not None and meas is not None
    return {
        "kind": PROVENANCE_KIND,
        "input_sha256": digest,
        "details": {
            "tool": mapping.tool, "format": fmt, "tool_version": sub.tool_version, "version_note": sub.version_note,
            "input": str(sub.input.path), "mapping": mapping.origin, "mapping_sha256": mapping.sha256,
            "merged": mapping.merges(), "ignored": conv.ignored, "absent": conv.absent, "overlaps": conv.overlaps,
            "not_measured": meas.not_measured, "midline_x_mm": meas.midline_x_mm,
            "midline_source": meas.midline_source, "sides": "as labelled; unsided labels split at the midline",
            "fat_fraction_from": water_fat,
        },
    }


def _write_artifacts(home: Home, sub: SubjectImport, source: str, instance: int) -> list[dict[str, str]]:
    """Write the converted label map (and meshes) into the subject's import folder, replaced whole."""
    from engine.imaging.mesh import build_meshes, save_meshes

    conv, meas = sub.converted, sub.measured
    assert conv is not None and meas is not None and sub.eid is not None
    final = home.artifact_dir(sub.eid, instance) / f"import-{source}"
    staging = final.with_name(f".{final.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = {f"Segment{i}_Name": s.name for i, s in enumerate(STRUCTURES)}
    names.update({f"Segment{i}_LabelValue": str(s.label) for i, s in enumerate(STRUCTURES)})
    files = {LABELS_KIND: write_nrrd(staging / "labels.nrrd", conv.labels, extra_header={
        **names, "msmv_source": source, "msmv_sides": "unsided voxels split at the midline; sided as labelled"})}
    try:
        files[MESHES_KIND] = save_meshes(build_meshes(conv.labels, midline=meas.midline_x_mm), staging / "meshes.npz")
    except Exception as err:  # noqa: BLE001 - meshes only draw the 3-D view: the import commits without them
        sub.notes.append(f"no meshes: {type(err).__name__}: {err}")
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    sub.artifact_dir = final
    return [{"kind": kind, "path": str(final / p.name), "sha256": sha256_file(final / p.name)} for kind, p in files.items()]


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
    """Import every input under ``paths``; one failed input is reported and the others go on."""
    from store.errors import StoreError, WriterBusyError
    from store.writer import Writer

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
    try:
        writer = Writer(home)
        writer.open()
    except WriterBusyError as err:
        raise ImportBlocked(f"{err}. Label imports are not queued through a running engine: stop the engine "
                            "(msmv engine) and run import-labels again") from err
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
                if writer.is_withdrawn(sub.eid):
                    raise LabelFileError(f"participant {sub.eid} withdrew from UK Biobank; not imported")
                converted = convert_input(inp, fmt, mapping, tool_version)
                sub.converted, sub.tool_version, sub.version_note = (converted.converted, converted.tool_version,
                                                                     converted.version_note)
                assert sub.converted is not None
                sub.ignored, sub.overlaps, sub.absent = sub.converted.ignored, sub.converted.overlaps, sub.converted.absent
                sub.measured = measure_converted(sub.converted, water=w_img, fat=f_img)
                artifacts = _write_artifacts(home, sub, source, instance)
                provenance = _provenance(sub, fmt, mapping, _digest(inp), water_fat)
                try:
                    writer.commit_subject(sub.eid, sub.measured.metrics, artifacts, provenance, instance=instance,
                                          source=source, compartments=sub.measured.compartments)
                except BaseException:
                    shutil.rmtree(sub.artifact_dir or "", ignore_errors=True)
                    raise
            except (EngineError, StoreError, ValueError, OSError) as err:
                sub.error = str(err)
            sub.converted = None  # the arrays are not needed past here
            results.append(sub)
    finally:
        writer.close()
    return results


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
    if sub.artifact_dir:
        lines.append(f"  label map: {sub.artifact_dir / 'labels.nrrd'}")
    return "\n".join(lines)


def report_json(results: list[SubjectImport]) -> str:
    """The per-input outcome as JSON (for scripts)."""
    return json.dumps([{"input": str(r.input.path), "eid": r.eid, "error": r.error,
                        "metrics": r.measured.metrics if r.measured else [],
                        "compartments": r.measured.compartments if r.measured else [],
                        "not_measured": r.measured.not_measured if r.measured else []} for r in results], indent=1)
