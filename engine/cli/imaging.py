"""``msmv fuse INPUT --out DIR``: a Dixon package (UKB zip, DICOM folder or files) → one NRRD per contrast."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from store.vocabulary import DEFAULT_STATIONS, UKB_STATION_COUNT


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
        help="fuse a Dixon package's stations into water/fat/in_phase/opposed_phase NRRD volumes",
        description="Read a UK Biobank Dixon package (field 20201 zip, DICOM folder or DICOM files), keep the "
                    "chosen stations, resample them onto one grid (trilinear, overlaps averaged) and write "
                    "DIR/water.nrrd, DIR/fat.nrrd, DIR/in_phase.nrrd and DIR/opposed_phase.nrrd.",
    )
    p.add_argument("input", nargs="+", help="a {eid}_20201_2_0.zip, a folder of DICOM files, or DICOM files")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--stations", type=parse_stations, default=None,
                   help="comma-separated station numbers, 1 = most superior … 6 = most inferior "
                        f"(default {','.join(map(str, DEFAULT_STATIONS))}: pelvis, hip, mid-thigh, thigh-to-knee)")
    p.add_argument("--ff", action="store_true", help="also write DIR/fat_fraction.nrrd = fat / (fat + water)")
    p.add_argument("--gzip", action="store_true",
                   help="gzip-compress the NRRD files (about 1.3x smaller on MR data, several seconds slower)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="resampling device (default: CUDA when numba finds a GPU, else CPU)")
    p.set_defaults(func=handler)


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
        paths = write_fused(fused, args.out, with_fat_fraction=args.ff, compress=args.gzip)
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
