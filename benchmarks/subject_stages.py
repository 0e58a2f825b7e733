"""Benchmark: the worker's ingest, fuse and measure stages on one UKB-size demo phantom, wall and CPU seconds.

The stages as :func:`engine.service.pipeline.process_package` runs them, without the network:

- ``ingest``: ``check_zip_file``, ``patient_id``, ``read_package`` (the package's SHA-256 taken as it is read);
- ``fuse``: ``fuse`` and ``write_fused`` (four contrasts and the fat fraction, raw NRRD);
- ``measure``: ``measure`` on the phantom's truth label map (on the fused grid) and ``measure.json``;
- ``hashes``: the artifacts' SHA-256 (the worker's last step), in ``worker_threads`` threads.

Goals on the 2-core development machine: ingest <= 0.6 s, fuse <= 0.5 s, measure <= 0.4 s. CPU seconds
(``time.process_time``, every thread) are printed beside wall seconds: on a shared machine the wall
figures swing 1.5-2x with the neighbours' load (``load_avg_1m``). Prints one JSON line per repeat
(the first one pays numba's cache load and the page cache), then the medians of the others.

    .venv/bin/python -m benchmarks.subject_stages [--repeats 3] [--package P.zip --labels L.nrrd]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.imaging.dicom.package import check_zip_file
from engine.imaging.dicom.read import read_package
from engine.imaging.fusion.fuse import fuse, write_fused
from engine.imaging.measure import measure
from engine.imaging.volume import read_nrrd
from engine.service.pipeline import PipelineOptions, patient_id, worker_threads
from store.files import sha256_file


def _phantom(root: Path) -> tuple[Path, Path]:
    from engine.demo.phantom.subject import add_demo_phantoms
    from store.home import home

    (package,) = add_demo_phantoms(home(root).ensure(), count=1, seed=0, progress=False)
    return package, root / "phantoms" / package.name.split("_")[0] / "labels.nrrd"


def run_once(package: Path, labels_path: Path, out: Path, threads: int) -> dict[str, list[float]]:
    """Seconds ``[wall, cpu]`` per stage for one subject."""
    labels = read_nrrd(labels_path)
    clock: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]
    stages: dict[str, list[float]] = {}

    def lap(name: str) -> None:
        clock.append((time.perf_counter(), time.process_time()))
        (w0, c0), (w1, c1) = clock[-2], clock[-1]
        stages[name] = [round(w1 - w0, 3), round(c1 - c0, 3)]

    check_zip_file(package)
    patient_id(package)
    stations = read_package(package, threads=threads)
    if stations.source_sha256 is None:
        raise SystemExit(f"{package}: no SHA-256 taken while reading; expected a zip")
    lap("ingest")
    fused = fuse(stations)
    paths = write_fused(fused, out, with_fat_fraction=True)
    volumes = dict(fused)
    del fused, stations
    lap("fuse")
    result = measure(labels, water=volumes["water"], fat=volumes["fat"])
    (out / "measure.json").write_text(json.dumps(result, indent=1, default=float))
    lap("measure")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(sha256_file, [*paths.values(), out / "measure.json"]))
    lap("hashes")
    return stages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--package", type=Path, help="a UKB-layout zip (default: a fresh demo phantom)")
    parser.add_argument("--labels", type=Path, help="its label map on the fused grid (with --package)")
    args = parser.parse_args(argv)
    if (args.package is None) != (args.labels is None):
        parser.error("--package and --labels go together")
    threads = worker_threads(PipelineOptions(torch_threads=0))
    with tempfile.TemporaryDirectory(prefix="msmv-stages-") as tmp:
        package, labels = (args.package, args.labels) if args.package else _phantom(Path(tmp) / "home")
        runs = []
        for n in range(max(args.repeats, 2)):
            out = Path(tmp) / f"run{n}"
            out.mkdir()
            runs.append(run_once(package, labels, out, threads))
            print(json.dumps({"repeat": n, **runs[-1], "threads": threads,
                              "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
        steady = runs[1:]
        print(json.dumps({"median": {stage: [statistics.median(r[stage][i] for r in steady) for i in (0, 1)]
                                     for stage in steady[0]}}))


if __name__ == "__main__":
    main()
