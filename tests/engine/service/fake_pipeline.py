"""A stand-in for the imaging pipeline, for engine-service tests: fast, deterministic, seeded.

A fake package is a zip holding ``subject.json``: ``{"eid": int, "sleep": seconds, "fail": stage|null,
"seed": int, "exit": stage|null, "wait_for_workers": int, "first_run_sleep": seconds}`` (``exit``: the worker
process dies there, as one the OOM killer takes; ``wait_for_workers``: first wait until that many jobs run
in pool workers, on the first run only where it sleeps then; ``first_run_sleep``: the package's first run
sleeps that long (a ``.ran`` file beside the package notes it ran)).
Results are a pure function of that content, so re-processing gives identical rows.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from engine.imaging.dicom.package import check_zip_file
from engine.service.local_worker import WORKER_PID_FILE
from engine.service.pipeline import PipelineOptions, StageError, SubjectResult, stage
from store.files import sha256_file
from store.structures import STRUCTURES

# Where this process notes its PID for each pipeline run and each store Writer it opens (set by watch()).
_WATCH: dict[str, Path] = {}


def note(event: str) -> None:
    """Append ``"<event> <pid>"`` to the watch log, if this process is watched."""
    log = _WATCH.get("log")
    if log is not None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{event} {os.getpid()}\n")


def watch(log: str) -> int:
    """Watch this (worker) process: note every pipeline run and every ``store.writer.Writer`` opened here.

    Run on each Dask worker with ``Client.run``; returns the worker's PID. The patch lives as long as
    the worker process does.
    """
    from store.writer import Writer

    _WATCH["log"] = Path(log)
    original = Writer.__init__

    def init(self: Writer, *args: object, **kwargs: object) -> None:
        note("writer")
        original(self, *args, **kwargs)

    Writer.__init__ = init  # type: ignore[method-assign]
    return os.getpid()


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (Linux ``/proc``; a zombie left to an init that does not reap counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def make_package(path: Path, eid: int | None, *, sleep: float = 0.0, fail: str | None = None, seed: int = 0,
                 exit_at: str | None = None, wait_for_workers: int = 0, first_run_sleep: float = 0.0) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("subject.json", json.dumps({"eid": eid, "sleep": sleep, "fail": fail, "seed": seed,
                                                "exit": exit_at, "wait_for_workers": wait_for_workers,
                                                "first_run_sleep": first_run_sleep}))
        zf.writestr("manifest.cvs", "filename,date\nsubject.json,\"Nov 23, 2026\"\n")
    return path


def expected_volumes(eid: int, seed: int = 0) -> np.ndarray:
    """The (27, 2) volumes the fake pipeline reports for a subject."""
    rng = np.random.default_rng([eid, seed])
    return np.round(rng.uniform(10, 500, size=(len(STRUCTURES), 2)), 3)


def process(job_id: str, package: str, work_dir: str, eid: int | None, options: PipelineOptions) -> SubjectResult:
    out = Path(work_dir)
    note("pipeline")
    timings: dict[str, float] = {}
    with stage("ingest", out, timings):
        check_zip_file(package)  # as the imaging pipeline does, before anything is inflated
    with zipfile.ZipFile(package) as zf:
        spec = json.loads(zf.read("subject.json"))
    if spec["eid"] is None:  # a package that does not say whose it is: the job's eid (from its name) decides
        if eid is None:
            raise StageError("ingest", "no participant ID: name the file {eid}_20201_2_0.zip")
        spec["eid"] = eid
    ran = Path(package).with_suffix(".ran")  # beside the package: this is not its first run
    first_run = bool(spec.get("first_run_sleep")) and not ran.exists()
    if first_run:
        ran.touch()
    if first_run or not spec.get("first_run_sleep"):  # a package that sleeps on its first run waits then only
        deadline = time.monotonic() + 120
        while len(list(out.parent.glob(f"*/{WORKER_PID_FILE}"))) < spec.get("wait_for_workers", 0):
            if time.monotonic() > deadline:
                raise StageError("ingest", "the other jobs never reached a worker")
            time.sleep(0.05)
    if first_run:
        time.sleep(spec.get("first_run_sleep", 0.0))
    for name in ("ingest", "fuse", "segment", "measure"):
        with stage(name, out, timings):
            time.sleep(spec["sleep"] / 4)
            if spec["fail"] == name:
                raise StageError(name, f"synthetic failure in {name}")
            if spec.get("exit") == name:
                os._exit(3)
    vols = expected_volumes(spec["eid"], spec["seed"])
    labels = out / "labels.bin"
    labels.write_bytes(vols.tobytes())
    metrics = [{"structure": s.label, "side": side, "volume_cm3": float(vols[i, j]), "fat_fraction": 0.1}
               for i, s in enumerate(STRUCTURES) for j, side in enumerate(("left", "right"))]
    return SubjectResult(job_id=job_id, eid=int(spec["eid"]), work_dir=str(out), metrics=metrics,
                         artifacts=[{"kind": "labels", "file": labels.name, "sha256": sha256_file(labels)}],
                         timings=timings, input_sha256=sha256_file(Path(package)), model_sha256=None,
                         code_version="test")
