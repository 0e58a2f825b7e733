"""DICOM ingest: a UKB Dixon package (zip, folder or files) → stations, each with four contrast Volumes.

Rules (docs/architecture.md, "The Dixon package"):

- slices are grouped by SeriesInstanceUID; the contrast comes from the SeriesDescription suffix
  (``_W``, ``_F``, ``_in``, ``_opp``), else from ImageType; series of no Dixon contrast are ignored;
- slices are sorted along the slice normal (ImageOrientationPatient × ImagePositionPatient); in-plane
  spacing from PixelSpacing, through-plane spacing = median distance between consecutive slices;
  RescaleSlope/Intercept applied when present;
- series are grouped into stations by their position along the body (superior) axis, since several
  stations share one SeriesDescription; a station acquired twice keeps, per contrast, the series with
  the latest SeriesTime;
- stations are numbered 1 (most superior) … 6 (most inferior) by their position along the body: a
  gap between neighbours' z ranges leaves the missing stations' numbers free, and the most inferior
  station is station 6 (:mod:`engine.imaging.dicom.numbering`), so a package holding only leg stations
  still numbers them 3-6; by default the four most inferior (3, 4, 5, 6: pelvis, hip, mid-thigh,
  thigh-to-knee) are kept;
- DICOM objects that cannot be Dixon slices (other SOP classes, non-Dixon MR series) are skipped and
  listed with their reason (:mod:`engine.imaging.dicom.screen`); the manifest is any non-DICOM file
  whose name contains "manifest", and may be absent.

Volumes are indexed ``[i, j, k]`` = (column, row, slice) in LPS, as :mod:`engine.imaging.volume` defines.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import DicomError, PackageError
from engine.imaging.dicom.crop import crop_to_common
from engine.imaging.dicom.numbering import number_stations
from engine.imaging.dicom.package import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_TOTAL_BYTES,
    PackageSource,
    iter_package_files,
    load_all,
    parse_manifest,
)
from engine.imaging.dicom.screen import object_reason, summarise, unreadable_reason
from engine.imaging.dicom.slice import Slice, parse_slice
from engine.imaging.volume import Volume
from store.vocabulary import CONTRASTS, DEFAULT_STATIONS, UKB_STATION_COUNT

#: SeriesDescription suffixes of UKB Dixon series (``Dixon_BH_17s_W``, ``Dixon_noBH_opp`` …), lower-cased.
SUFFIX_CONTRAST: dict[str, str] = {"w": "water", "f": "fat", "in": "in_phase", "opp": "opposed_phase"}
#: ImageType values that name a Dixon contrast (Siemens writes W / F / IN_PHASE / OPP_PHASE).
IMAGE_TYPE_CONTRAST: dict[str, str] = {
    "W": "water", "WATER": "water", "F": "fat", "FAT": "fat",
    "IN_PHASE": "in_phase", "IN": "in_phase", "IP": "in_phase",
    "OPP_PHASE": "opposed_phase", "OUT_PHASE": "opposed_phase", "OPP": "opposed_phase", "OP": "opposed_phase",
}
#: Any non-DICOM file whose name contains this is the package's manifest: UK Biobank names it
#: ``manifest.cvs`` (sic), some downloads ``manifest.csv``. It is informational, so it may be absent.
MANIFEST_MARK = "manifest"
#: Two series belong to one station when their slab centres along the superior axis differ by less
#: than this fraction of the shorter slab (neighbouring UKB stations overlap by far less than half).
STATION_MATCH_FRACTION = 0.5
#: Tolerances when checking that slices stack into one regular volume.
ORIENTATION_ATOL = 1e-3
SPACING_RTOL = 1e-3
SLICE_GAP_RTOL = 0.1  # a gap this far from the median means a missing or misplaced slice


@dataclass(frozen=True)
class Station:
    """One kept station: its four contrast Volumes (shared geometry) and where they came from."""

    number: int
    volumes: dict[str, Volume]
    series_uids: dict[str, str]
    series_time: str

    @property
    def geometry(self) -> Volume:
        return next(iter(self.volumes.values()))

    @property
    def z_range(self) -> tuple[float, float]:
        """Lowest and highest voxel-centre coordinate along the superior (LPS z) axis, in mm."""
        return _z_bounds(self.geometry)


@dataclass(frozen=True)
class Package:
    """The kept stations (superior → inferior) plus what else the package held."""

    stations: tuple[Station, ...]
    available: tuple[int, ...]  # every station number found
    source: str
    manifest: tuple[dict[str, str], ...] = ()
    skipped_files: tuple[str, ...] = ()  # non-DICOM files, skipped quietly
    ignored_series: tuple[str, ...] = ()  # series of no Dixon contrast
    superseded_series: tuple[str, ...] = ()  # re-acquired stations' older series
    skipped_objects: tuple[str, ...] = ()  # "file: reason" for DICOM objects that cannot be Dixon slices
    notes: tuple[str, ...] = ()  # what was adjusted on the way (a missing manifest, cropped stations)
    source_sha256: str | None = None  # hex SHA-256 of a zip package's bytes, hashed as read; None for folders

    def skipped_summary(self) -> list[str]:
        """The skipped DICOM objects grouped by reason, for the console."""
        return summarise(self.skipped_objects)


@dataclass
class _Series:
    uid: str
    description: str
    contrast: str | None
    number: int
    time: str
    slices: list[Slice] = field(default_factory=list)
    centre_z: float = 0.0
    extent_z: float = 0.0


def contrast_of(description: str, image_type: Iterable[str] = ()) -> str | None:
    """The Dixon contrast of a series from its SeriesDescription suffix, else its ImageType, else None."""
    suffix = description.rsplit("_", 1)[-1].strip().lower() if "_" in description else ""
    if suffix in SUFFIX_CONTRAST:
        return SUFFIX_CONTRAST[suffix]
    found = {IMAGE_TYPE_CONTRAST[v.upper()] for v in list(image_type)[2:] if v.upper() in IMAGE_TYPE_CONTRAST}
    return found.pop() if len(found) == 1 else None


def _build_volume(series: _Series, *, slice_gap_rtol: float) -> Volume:
    """Stack a series' slices along the slice normal into a Volume (checks regularity)."""
    slices = series.slices
    first = slices[0]
    for sl in slices[1:]:
        if np.max(np.abs(sl.iop - first.iop)) > ORIENTATION_ATOL:
            raise DicomError(
                f"series {series.uid} ({series.description}) mixes orientations: {first.file} has "
                f"ImageOrientationPatient {np.round(first.iop, 4).tolist()}, {sl.file} has "
                f"{np.round(sl.iop, 4).tolist()}")
        if any(abs(a - b) > SPACING_RTOL * b for a, b in zip(sl.spacing, first.spacing, strict=True)):
            raise DicomError(
                f"series {series.uid} ({series.description}) has inconsistent PixelSpacing: {first.file} has "
                f"{list(first.spacing)}, {sl.file} has {list(sl.spacing)}")
        if (sl.rows, sl.cols) != (first.rows, first.cols):
            raise DicomError(
                f"series {series.uid} ({series.description}) has inconsistent matrix sizes: {first.file} is "
                f"{first.rows}x{first.cols}, {sl.file} is {sl.rows}x{sl.cols}")
    row, col = first.iop[:3], first.iop[3:]
    if abs(np.linalg.norm(row) - 1) > ORIENTATION_ATOL or abs(np.linalg.norm(col) - 1) > ORIENTATION_ATOL \
            or abs(row @ col) > ORIENTATION_ATOL:
        raise DicomError(f"{first.file}: ImageOrientationPatient {first.iop.tolist()} is not two orthonormal vectors")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    pos = np.array([sl.ipp @ normal for sl in slices])
    order = np.argsort(pos, kind="stable")
    slices = [slices[n] for n in order]
    pos = pos[order]
    kept = [slices[0]]
    for n in range(1, len(slices)):
        if abs(pos[n] - pos[n - 1]) < 1e-3 * min(first.spacing):
            if slices[n].sop_uid == kept[-1].sop_uid:
                continue  # the same image listed twice
            raise DicomError(
                f"series {series.uid} ({series.description}) has duplicate slices at position "
                f"{pos[n]:.3f} mm along the normal: {kept[-1].file} and {slices[n].file}")
        kept.append(slices[n])
    pos = np.array([sl.ipp @ normal for sl in kept])
    if len(kept) > 1:
        gaps = np.diff(pos)
        dz = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - dz) > slice_gap_rtol * dz)
        if bad.size:
            b = int(bad[0])
            raise DicomError(
                f"series {series.uid} ({series.description}) has uneven slice spacing: median {dz:.3f} mm, "
                f"but {gaps[b]:.3f} mm between {kept[b].file} and {kept[b + 1].file} (missing slice?)")
        inplane = np.array([[sl.ipp @ row, sl.ipp @ col] for sl in kept])
        drift = np.max(np.abs(inplane - inplane[0]))
        if drift > 0.01 * min(first.spacing):
            raise DicomError(f"series {series.uid} ({series.description}) is sheared: slice positions drift "
                             f"{drift:.3f} mm in-plane (expected a straight stack)")
    else:
        dz = first.thickness or 1.0
    stack = np.empty((len(kept), first.rows, first.cols), dtype=np.float32)  # (k, rows, cols)
    for n, sl in enumerate(kept):
        sl.pixels_into(stack[n])  # decoded straight into the stack: no per-slice copy
    direction = np.column_stack([row, col, normal])
    spacing = (first.spacing[1], first.spacing[0], dz)  # i runs along a row: column spacing first
    return Volume(stack.transpose(2, 1, 0), spacing, tuple(kept[0].ipp), direction,
                  {"msmv_series_uid": series.uid, "msmv_series_description": series.description})


def _z_bounds(vol: Volume) -> tuple[float, float]:
    """Lowest and highest voxel-centre coordinate of ``vol`` along LPS z (superior), in mm."""
    n = np.asarray(vol.shape, dtype=float) - 1
    zs = vol.world(np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])]))[:, 2]
    return float(zs.min()), float(zs.max())


def _slab(vol: Volume) -> tuple[float, float]:
    """Centre and extent of a volume's voxel-centre box along LPS z (superior)."""
    low, high = _z_bounds(vol)
    return (low + high) / 2, high - low


def _group_stations(series: list[_Series]) -> list[list[_Series]]:
    """Cluster series by slab position along the superior axis; superior first."""
    clusters: list[list[_Series]] = []
    for s in sorted(series, key=lambda s: -s.centre_z):
        for cl in clusters:
            ref = cl[0]
            if abs(s.centre_z - ref.centre_z) < STATION_MATCH_FRACTION * max(min(s.extent_z, ref.extent_z), 1e-6):
                cl.append(s)
                break
        else:
            clusters.append([s])
    return clusters


def _station_from(number: int, cluster: list[_Series], contrasts: Sequence[str],
                  slice_gap_rtol: float) -> tuple[Station, list[str], str | None]:
    found: dict[str, list[_Series]] = {}
    for s in cluster:
        found.setdefault(s.contrast or "?", []).append(s)
    missing = [c for c in contrasts if c not in found]
    if missing:
        have = ", ".join(f"{c} ({', '.join(s.description for s in found[c])})" for c in sorted(found)) or "nothing"
        raise PackageError(f"station {number} lacks {', '.join(missing)}; found {have}")
    chosen: dict[str, _Series] = {}
    superseded: list[str] = []
    for c in contrasts:
        ranked = sorted(found[c], key=lambda s: (s.time, s.number))
        chosen[c] = ranked[-1]  # a re-acquired station: keep the latest SeriesTime
        superseded += [s.uid for s in ranked[:-1]]
    volumes: dict[str, Volume] = {}
    for c, s in chosen.items():
        vol = _build_volume(s, slice_gap_rtol=slice_gap_rtol)
        volumes[c] = vol.with_data(vol.data, msmv_contrast=c, msmv_station=str(number))
    volumes, note = crop_to_common(volumes, station=number, direction_atol=ORIENTATION_ATOL, spacing_rtol=SPACING_RTOL)
    latest = max(s.time for s in chosen.values())
    return Station(number, volumes, {c: s.uid for c, s in chosen.items()}, latest), superseded, note


def read_package(
    source: PackageSource,
    *,
    stations: Sequence[int] | None = None,
    contrasts: Sequence[str] = CONTRASTS,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    slice_gap_rtol: float = SLICE_GAP_RTOL,
    on_file: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> Package:
    """Read a Dixon package (zip path or bytes, folder, or list of files) into stations.

    Parameters
    ----------
    stations
        Station numbers to keep (1 = most superior … 6 = most inferior); default the four most inferior.
    contrasts
        Contrasts every kept station must have.
    max_total_bytes, max_files
        Bounds on the package (zip bombs, runaway folders); PackageError beyond them.
    on_file
        Called with each file name as it is parsed (progress display).
    threads
        Threads that inflate the kept stations' files (default: up to 4, as many as the machine has cores).

    Raises
    ------
    PackageError
        empty/non-zip upload, unsafe zip entries, bounds exceeded, no DICOM, missing stations or contrasts.
    DicomError
        a corrupt or truncated file (named), or slices that do not stack (mixed orientation, duplicate
        slices, inconsistent spacing).
    """
    unknown = [c for c in contrasts if c not in CONTRASTS]
    if unknown:
        raise ValueError(f"unknown contrasts {unknown}; expected some of {list(CONTRASTS)}")
    if isinstance(source, bytes):
        label = "upload"
    elif isinstance(source, str | os.PathLike):
        label = str(source)
    else:
        label = f"{len(source)} files"
    manifest: list[dict[str, str]] | None = None
    skipped: list[str] = []
    objects: list[str] = []  # "file: reason"
    notes: list[str] = []
    by_uid: dict[str, _Series] = {}
    digests: list[str] = []

    def digest(data: bytes) -> None:
        digests.append(hashlib.sha256(data).hexdigest())

    for pf in iter_package_files(source, max_total_bytes=max_total_bytes, max_files=max_files, on_zip_bytes=digest):
        if not pf.is_dicom and MANIFEST_MARK in pf.name.rsplit("/", 1)[-1].lower():
            try:
                manifest = parse_manifest(pf.data)
            except csv.Error as err:  # informational only: a broken manifest must not stop the read
                notes.append(f"manifest {pf.name} unreadable ({err}); ignored")
            continue
        if not pf.is_dicom:
            skipped.append(pf.name)
            continue
        if on_file is not None:
            on_file(pf.name)
        try:
            sl = parse_slice(pf)
        except DicomError as err:
            reason = unreadable_reason(pf, err, contrast_of)
            if reason is None:
                raise
            objects.append(f"{pf.name}: {reason}")
            continue
        reason = object_reason(sl.sop_class, sl.modality)
        if reason is not None:
            objects.append(f"{pf.name}: {reason}")
            continue
        s = by_uid.get(sl.series_uid)
        if s is None:
            s = by_uid[sl.series_uid] = _Series(sl.series_uid, sl.description,
                                                contrast_of(sl.description, sl.image_type), sl.series_number,
                                                sl.series_time)
        s.slices.append(sl)
    if not by_uid and not objects:
        raise PackageError(f"{label} holds no DICOM files (found {len(skipped)} other files)")
    dixon = [s for s in by_uid.values() if s.contrast is not None]
    ignored = tuple(f"{s.uid} ({s.description})" for s in by_uid.values() if s.contrast is None)
    if not dixon:
        found = [*(f"series {i}" for i in sorted(ignored)), *summarise(objects)]
        raise PackageError(f"{label} holds no Dixon series; found {'; '.join(found)}")
    if manifest is None:
        notes.append("no manifest (informational only)")
    for s in dixon:
        geometry = _geometry_only(s)
        s.centre_z, s.extent_z = _slab(geometry)
    clusters = _group_stations(dixon)
    if len(clusters) > UKB_STATION_COUNT:
        raise PackageError(f"{label} holds {len(clusters)} station positions; expected at most {UKB_STATION_COUNT}")
    ranges = [_cluster_range(cl) for cl in clusters]
    numbers = dict(zip(number_stations(ranges, label=label), clusters, strict=True))
    wanted = tuple(sorted(DEFAULT_STATIONS if stations is None else {int(n) for n in stations}))
    missing = [n for n in wanted if n not in numbers]
    if missing:
        have = "; ".join(f"{n} at z {cl[0].centre_z:+.1f} mm" for n, cl in numbers.items())
        absent = [n for n in range(min(numbers), max(numbers)) if n not in numbers]
        gaps = f" (numbered by position: {', '.join(map(str, absent))} absent between them)" if absent else ""
        raise PackageError(f"station(s) {', '.join(map(str, missing))} not found; the package has stations "
                           f"{have}{gaps}")
    # inflate the kept stations' files in parallel threads before decoding them
    load_all([sl.source for n in wanted for s in numbers[n] for sl in s.slices if sl.source is not None],
             workers=threads)
    kept: list[Station] = []
    superseded: list[str] = []
    for n in wanted:
        station, old, note = _station_from(n, numbers[n], tuple(contrasts), slice_gap_rtol)
        kept.append(station)
        superseded += old
        notes += [note] if note else []
    return Package(tuple(kept), tuple(sorted(numbers)), label, tuple(manifest or ()), tuple(skipped), ignored,
                   tuple(superseded), tuple(objects), tuple(notes), digests[0] if digests else None)


def _cluster_range(cluster: list[_Series]) -> tuple[float, float]:
    """Lowest and highest voxel-centre z (mm) over a station's series."""
    return (min(s.centre_z - s.extent_z / 2 for s in cluster), max(s.centre_z + s.extent_z / 2 for s in cluster))


def _geometry_only(series: _Series) -> Volume:
    """The series' slab geometry from headers alone (no pixel decoding): for grouping into stations."""
    first = series.slices[0]
    row, col = first.iop[:3], first.iop[3:]
    normal = np.cross(row, col)
    pos = np.array([sl.ipp @ normal for sl in series.slices])
    low = series.slices[int(np.argmin(pos))]
    dz = float(pos.max() - pos.min()) / max(len(pos) - 1, 1) or 1.0
    return Volume(np.broadcast_to(np.uint8(0), (first.cols, first.rows, len(pos))), (first.spacing[1], first.spacing[0], dz),
                  tuple(low.ipp), np.column_stack([row, col, normal]))
