"""``msmv fuse INPUT --out DIR``: a Dixon package (UKB zip, DICOM folder or files) → one NRRD (or NIfTI) per
contrast; ``msmv export-labels``: a processed subject's label map as NRRD, NIfTI or DICOM SEG."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from store.vocabulary import DEFAULT_STATIONS, UKB_STATION_COUNT

#: ``msmv fuse --format`` choices: engine.imaging.fusion.fuse.FUSED_FORMATS (spelled out here, where
#: numpy must not load; tests/engine/cli/test_exports_cli.py checks the two agree).
FUSE_FORMATS: tuple[str, ...] = ("nrrd", "nifti")


def parse_stations(text: str) -> tuple[int, ...]:
    """``"3,4,5,6"`` → (3, 4, 5, 6); each number must be a UKB station 1-6."""
    try:
        numbers = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated station numbers such as 3,4,5,6, found {text!r}") from err
    bad = [n for n in numbers if not 1 <= n <= UKB_STATION_COUNT]
    if not numbers or bad:
        raise argparse.ArgumentTypeError(
            f"station numbers run from 1 (most superior) to {UKB_STATION_COUNT} (most inferior), found {text!r}")
    return numbers


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fuse",
        help="fuse a Dixon package's stations into water/fat/in_phase/opposed_phase NRRD (or NIfTI) volumes",
        description="Read a UK Biobank Dixon package (field 20201 zip, DICOM folder or DICOM files), keep the "
                    "chosen stations, resample them onto one grid (trilinear, overlaps averaged) and write "
                    "DIR/water.nrrd, DIR/fat.nrrd, DIR/in_phase.nrrd and DIR/opposed_phase.nrrd (with --format "
                    "nifti: DIR/<contrast>.nii[.gz] and a DIR/<contrast>.json sidecar each).",
    )
    p.add_argument("input", nargs="+", help="a {eid}_20201_2_0.zip, a folder of DICOM files, or DICOM files")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--stations", type=parse_stations, default=None,
                   help="comma-separated station numbers, 1 = most superior … 6 = most inferior "
                        f"(default {','.join(map(str, DEFAULT_STATIONS))}: pelvis, hip, mid-thigh, thigh-to-knee)")
    p.add_argument("--ff", action="store_true", help="also write DIR/fat_fraction.nrrd = fat / (fat + water)")
    p.add_argument("--format", choices=FUSE_FORMATS, default="nrrd", dest="fmt",
                   help="nrrd (default; LPS geometry, metadata in the header) or nifti: DIR/<contrast>.nii "
                        "(.nii.gz with --gzip) with the same grid as a RAS affine and the header's metadata "
                        "(source series, station ranges, swapped stations) in DIR/<contrast>.json")
    p.add_argument("--gzip", action="store_true",
                   help="gzip-compress the files (about 1.3x smaller on MR data, several seconds slower)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="resampling device (default: CUDA when numba finds a GPU, else CPU)")
    p.set_defaults(func=handler)
    register_export_labels(subparsers)


def handler(args: argparse.Namespace) -> int:
    # here, not at the top: numpy, pydicom and numba would slow every command's --help
    from tqdm import tqdm

    from engine.imaging.dicom.read import read_package
    from engine.imaging.fusion.fuse import fuse, write_fused

    source = args.input[0] if len(args.input) == 1 else list(args.input)
    t0 = time.perf_counter()
    with tqdm(desc="read DICOM", unit="file", file=sys.stderr, leave=False) as bar:
        package = read_package(source, stations=args.stations, on_file=lambda _name: bar.update())
    t1 = time.perf_counter()
    with tqdm(total=2, desc="fuse", unit="step", file=sys.stderr, leave=False) as bar:
        fused = fuse(package, device=args.device)
        bar.update()
        t2 = time.perf_counter()
        paths = write_fused(fused, args.out, with_fat_fraction=args.ff, compress=args.gzip, fmt=args.fmt)
        bar.update()
    t3 = time.perf_counter()
    grid = next(iter(fused.values()))
    print(f"stations {','.join(str(st.number) for st in package.stations)} of "
          f"{','.join(map(str, package.available))}; grid {'x'.join(map(str, grid.shape))} at "
          f"{' x '.join(f'{s:.3f}' for s in grid.spacing)} mm")
    print(fused.swaps.describe())
    for note in package.notes:
        print(note)
    if package.skipped_objects:
        print(f"skipped {len(package.skipped_objects)} DICOM objects that are not Dixon slices:")
        for line in package.skipped_summary():
            print(f"  {line}")
    for path in paths.values():
        print(path)
    print(f"read {t1 - t0:.2f} s, resample {t2 - t1:.2f} s, write {t3 - t2:.2f} s")
    return 0


#: ``msmv export-labels --format`` choices (the owner is engine.imaging.export.FORMATS, which this module
#: does not import at start-up; tests/engine/cli/test_exports_cli.py checks the two agree).
EXPORT_LABEL_FORMATS: tuple[str, ...] = ("nrrd", "nifti", "dicom-seg")


def _eid(text: str) -> int:
    from store.vocabulary import parse_eid

    eid = parse_eid(text)
    if eid is None:
        raise argparse.ArgumentTypeError(f"expected a participant ID (a positive whole number), found {text!r}")
    return eid


def register_export_labels(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-labels",
        help="export a processed participant's label map as NRRD, NIfTI or a DICOM SEG",
        description="Write the label map the store records for participant EID (the engine's, or one msmv "
                    "import-labels stored) for other tools. nrrd: the stored file (LPS, 3D Slicer segment "
                    "names). nifti: .nii/.nii.gz on the same grid with a RAS affine, the label table and "
                    "metadata in a .json sidecar beside it. dicom-seg: a folder, or a .zip, holding seg.dcm "
                    "(one segment per structure, SNOMED CT codes where MSMV has one, else its 99MSMV scheme) "
                    "and water/, the fused water volume as a derived MR series the SEG references, so a PACS "
                    "viewer, OHIF or 3D Slicer shows the labels over it with every voxel kept.",
    )
    p.add_argument("eid", type=_eid, help="participant ID")
    p.add_argument("--instance", type=int, help="imaging visit (needed when the participant has several)")
    p.add_argument("--source", help="metric source whose label map to export (needed when there are several, "
                                    "e.g. msmv and musclemap)")
    p.add_argument("--format", required=True, choices=EXPORT_LABEL_FORMATS, dest="fmt")
    p.add_argument("--out", required=True, type=Path,
                   help="output: FILE.nrrd, FILE.nii[.gz] (+ FILE.json), or a folder / FILE.zip for dicom-seg")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out (a dicom-seg folder only if it is an earlier label export; "
                        "never an input)")
    p.set_defaults(func=export_labels_handler)


def export_labels_handler(args: argparse.Namespace) -> int:
    from engine.errors import EngineError
    from engine.imaging.export import export_labels, find_labels
    from store.errors import ExportError, NoSnapshotError
    from store.home import home
    from store.reader import Reader

    try:
        with Reader(home()) as reader:
            stored = find_labels(reader, args.eid, instance=args.instance, source=args.source)
        t0 = time.perf_counter()
        print(f"exporting participant {stored.eid}, instance {stored.instance}, source {stored.source}: "
              f"{stored.path}", file=sys.stderr)
        from tqdm import tqdm

        from engine.imaging.export import SEG_STEPS

        with tqdm(total=len(SEG_STEPS), desc="export", unit="step", file=sys.stderr, leave=False,
                  disable=args.fmt != "dicom-seg") as bar:
            result = export_labels(stored, args.fmt, args.out, force=args.force,
                                   on_step=lambda step: (bar.set_postfix_str(step), bar.update()))
    except (EngineError, ExportError, NoSnapshotError) as err:
        print(f"msmv export-labels: error: {err}", file=sys.stderr)
        return 2
    for note in result.notes:
        print(note, file=sys.stderr)
    frames = f", {result.frames} frames" if result.frames is not None else ""
    print(f"wrote {', '.join(map(str, result.files))} ({result.segments} segments{frames}) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
