"""One subject, end to end, in a worker: ingest → fuse → segment → measure.

Runs in a worker process (local pool or a Dask worker): it reads the package, writes every artifact
into its own scratch folder and returns a small :class:`SubjectResult`. It never touches the store;
the coordinator moves the artifacts into place and commits the rows in one transaction.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engine
from engine.errors import EngineError, PackageRefused
from store import settings
from store.files import sha256_file

STAGE_FILE = "STAGE"


class StageError(EngineError):
    """A subject failed at one stage; carries the stage name across process boundaries.

    ``permanent`` marks a failure that retrying cannot cure (a refused package): the coordinator
    fails the job at once.
    """

    def __init__(self, stage: str, message: str, permanent: bool = False) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message
        self.permanent = permanent

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for process pools and Dask
        return (StageError, (self.stage, self.message, self.permanent))


@dataclass(frozen=True)
class PipelineOptions:
    """Per-run settings shipped to every worker (picklable)."""

    checkpoint: str | None = None  # None: the active checkpoint of MSMV_HOME
    home: str | None = None
    stations: tuple[int, ...] | None = None
    overlap: float | None = None  # sliding-window overlap; None: the checkpoint's own placement (segment_fused)
    # CPU threads per worker (torch and ONNX Runtime); 0: the machine's cores shared among
    # ``workers_per_host`` (:func:`worker_threads`)
    torch_threads: int = field(default_factory=lambda: settings.get("MSMV_ENGINE_THREADS"))
    workers_per_host: int = 1  # worker processes sharing this machine's cores (the local pool sets it)
    runtime: str = "onnx"  # engine.segmentation.infer.RUNTIMES; "torch" for comparison
    mesh_method: str = "surface-nets"  # engine.imaging.mesh.MESH_METHODS; "marching-cubes" for comparison


def worker_threads(options: PipelineOptions) -> int:
    """CPU threads for one worker: ``torch_threads`` when set, else this machine's cores (the ones this
    process may use) divided among ``workers_per_host``, at least 1."""
    if options.torch_threads > 0:
        return options.torch_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, options.workers_per_host))


@dataclass
class SubjectResult:
    """What a worker hands back to the coordinator."""

    job_id: str
    eid: int
    work_dir: str
    metrics: list[dict[str, Any]]
    artifacts: list[dict[str, str]]  # kind, file (relative to work_dir), sha256
    timings: dict[str, float]
    input_sha256: str
    model_sha256: str | None
    code_version: str
    summary: dict[str, Any] = field(default_factory=dict)


Pipeline = Callable[[str, str, str, "int | None", PipelineOptions], SubjectResult]


def read_stage(work_dir: str | os.PathLike[str]) -> str | None:
    """The stage a worker is in (written by :func:`stage`), or None."""
    try:
        return (Path(work_dir) / STAGE_FILE).read_text().strip() or None
    except OSError:
        return None


@contextmanager
def stage(name: str, work_dir: Path, timings: dict[str, float]) -> Iterator[None]:
    """Record the current stage on disk (for `msmv jobs`) and its duration; wrap failures."""
    (work_dir / STAGE_FILE).write_text(name)
    t0 = time.perf_counter()
    try:
        yield
    except StageError:
        raise
    except Exception as err:  # any failure becomes this subject's error, never the service's
        permanent = isinstance(err, PackageRefused)
        raise StageError(name, f"{type(err).__name__}: {err}", permanent) from err
    finally:
        timings[name] = round(time.perf_counter() - t0, 3)


def patient_id(package: Path) -> int | None:
    """PatientID of the first DICOM file in a zip (UKB writes the eid there)."""
    import pydicom

    with zipfile.ZipFile(package) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.filename.endswith((".cvs", ".csv", ".txt")):
                continue
            try:
                with zf.open(info) as fh:
                    ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=["PatientID"])
                pid = str(getattr(ds, "PatientID", "")).strip()
                return int(pid) if pid.isdigit() else None
            except Exception:  # a non-DICOM entry: try the next one
                continue
    return None


def process_package(
    job_id: str, package: str, work_dir: str, eid: int | None, options: PipelineOptions
) -> SubjectResult:
    """Run the imaging chain on one package; every artifact lands in ``work_dir``."""
    import numba
    import torch

    from engine.imaging.dicom.package import check_zip_file
    from engine.imaging.dicom.read import read_package
    from engine.imaging.fusion.fuse import fuse as fuse_stations
    from engine.imaging.fusion.fuse import write_fused
    from engine.imaging.measure import measure
    from engine.imaging.mesh import build_meshes, save_meshes
    from engine.segmentation.checkpoint import active_checkpoint
    from engine.segmentation.infer import low_confidence, segment_fused, stray_removed, write_labels
    from store.home import home

    threads = worker_threads(options)
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # the kernels of every stage share them
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    pkg = Path(package)
    timings: dict[str, float] = {}
    with stage("ingest", out, timings):
        check_zip_file(pkg)  # before anything is inflated, reading the PatientID included
        if eid is None:
            eid = patient_id(pkg)
        if eid is None:
            raise EngineError("no participant ID: name the file {eid}_20201_2_0.zip or set PatientID")
        stations = read_package(pkg, stations=options.stations, threads=threads)
        input_sha256 = stations.source_sha256 or sha256_file(pkg)  # hashed as it was read: no second pass
    with stage("fuse", out, timings):
        fused = fuse_stations(stations)
        paths = write_fused(fused, out, with_fat_fraction=True)
        swapped = list(fused.swapped_stations)  # goes to the subject's provenance with the summary
        volumes = dict(fused)  # kept in memory for segment and measure: nothing written is read back
        del fused, stations
    with stage("segment", out, timings):
        checkpoint = Path(options.checkpoint) if options.checkpoint else active_checkpoint(options.home)
        labels, sidecar = segment_fused(volumes, checkpoint, overlap=options.overlap, runtime=options.runtime,
                                        onnx_cache=home(options.home).onnx_cache, threads=threads)
        label_path = write_labels(out / "labels.nrrd", labels, sidecar.labels)
    with stage("measure", out, timings):
        result = measure(labels, water=volumes["water"], fat=volumes["fat"], table=sidecar.labels)
        (out / "measure.json").write_text(json.dumps(result, indent=1, default=float))
        del volumes
    mesh_path: Path | None = None
    mesh_error: str | None = None
    try:
        with stage("mesh", out, timings):  # made once here; the Subject page only loads the file
            scene = build_meshes(labels, midline=result["midline_x_mm"], method=options.mesh_method,
                                 threads=threads)
            mesh_path = save_meshes(scene, out / "meshes.npz")
    except StageError as err:  # the mesh only draws the 3-D view: the measurements commit without it
        mesh_error = err.message
    metrics = [
        {"structure": int(label), "side": side, "volume_cm3": row[f"{side}_cm3"],
         "fat_fraction": None if row["fat_fraction"] != row["fat_fraction"] else row["fat_fraction"]}
        for label, row in result["structures"].items()
        for side in ("left", "right")
    ]
    files = {**{k: Path(v) for k, v in paths.items()}, "labels": label_path, "measure": out / "measure.json"}
    if mesh_path is not None:
        files["meshes"] = mesh_path
    with ThreadPoolExecutor(max_workers=threads) as pool:  # hashlib releases the GIL: the files hash side by side
        digests = list(pool.map(sha256_file, files.values()))
    artifacts = [{"kind": kind, "file": p.name, "sha256": digest}
                 for (kind, p), digest in zip(files.items(), digests, strict=True)]
    return SubjectResult(
        job_id=job_id, eid=int(eid), work_dir=str(out), metrics=metrics, artifacts=artifacts,
        timings=timings, input_sha256=input_sha256, model_sha256=sha256_file(Path(checkpoint)),
        code_version=engine.__version__,
        summary={"tmv_cm3": result["tmv_cm3"], "pa_ratio": result["pa_ratio"], "swapped_stations": swapped,
                 # stray components the checkpoint's post-processing removed, cm³ per structure label
                 "stray_removed_cm3": {str(k): v for k, v in stray_removed(labels.meta).items()},
                 # for QC (engine.quality): how sure the network was, and the structures at the scan's ends
                 "low_confidence_share": low_confidence(labels.meta),
                 "touches_edge": sorted(int(k) for k, row in result["structures"].items() if row["touches_edge"]),
                 "edge_share": {k: round(row["edge_share"], 4) for k, row in result["structures"].items()
                                if row["edge_share"] > 0},
                 **({"mesh_error": mesh_error} if mesh_error else {})},
    )
