"""The engine service: the coordinator that claims packages, runs workers and commits results.

Only the coordinator writes the store (it holds the single-writer lock for its lifetime). Workers, in a
local process pool or on a Dask cluster, run :func:`engine.service.pipeline.process_package` and return small
results; artifacts travel through ``MSMV_HOME/work/<job>/`` and are moved into
``MSMV_HOME/artifacts/<eid>/<instance>/`` (one folder per imaging visit) just before the subject's rows
commit in one transaction. A withdrawn participant's package is deleted unprocessed, and results that
turn out to be one's (the eid read from the DICOM) are discarded.

Crash safety (``kill -9`` at any moment, then a restart):

- a job is ``running`` in the store while a worker has it; on restart every ``running`` job goes back
  to ``queued`` (the interrupted attempt is not counted) and scratch folders are removed;
- a local worker does not outlive its coordinator (:mod:`engine.service.local_worker`: Linux's
  parent-death signal, else a watchdog thread), so a restarted engine never races an old worker for the
  same job;
- a local worker that dies (the OOM killer) fails every job of the pool; the attempt counts only for the
  job whose worker died on its own, the others (their workers terminated by the pool) are re-queued
  uncounted: one subject's crash costs the others nothing;
- a subject's rows and its ``done`` status commit in one transaction, so a result is either fully in
  the store or not at all; redoing a subject replaces its artifacts folder atomically and its rows
  with identical ones;
- the inbox is only ever written by atomic rename, and the package moves to ``packages/`` only after
  its job row exists, so no submission is lost between the two; a submission's staging folder is
  removed only once provably stale (:func:`engine.service.inbox.is_stale`), never under a copy still
  running.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import PackageRefused
from engine.interop import bundle as label_bundles
from engine.service import inbox
from engine.service.local_worker import die_with_parent, run_noting_pid, worker_pid
from engine.service.pipeline import PipelineOptions, StageError, SubjectResult, process_package, read_stage
from store import settings
from store.files import sha256_file
from store.home import Home
from store.vocabulary import FIRST_IMAGING_INSTANCE
from store.withdrawals import REFUSED_REASON
from store.writer import Writer

log = logging.getLogger("msmv.engine")

POLL_S = 0.2
PACKAGES_DIR = "packages"


def load_pipeline(spec: str | None) -> Callable[..., SubjectResult]:
    """``module:function`` → the callable (a custom or test pipeline); None → the imaging pipeline."""
    if not spec:
        return process_package
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"pipeline must look like 'package.module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


@dataclass
class _Running:
    job_id: str
    future: Any  # concurrent.futures.Future or distributed.Future
    work_dir: Path
    started: float
    bystander: bool = False  # its worker was terminated because another worker of the pool died


def _broke(future: Any) -> bool:
    return isinstance(future, Future) and future.done() and isinstance(future.exception(), BrokenProcessPool)


@dataclass
class EngineStats:
    done: int = 0
    failed: int = 0
    retried: int = 0
    seconds: list[float] = field(default_factory=list)


def dask_tasks_per_host(client: Any) -> int:
    """The most subjects a Dask cluster runs at once on one machine (its workers' threads there, summed):
    the share of cores each worker's pipeline takes when ``torch_threads`` is 0."""
    per_host: dict[str, int] = {}
    for info in client.scheduler_info().get("workers", {}).values():
        host = str(info.get("host", ""))
        per_host[host] = per_host.get(host, 0) + int(info.get("nthreads", 1) or 1)
    return max(per_host.values(), default=1)


class Engine:
    """The coordinator. ``run(once=True)`` drains the queue and returns; otherwise it watches the inbox."""

    def __init__(
        self,
        home: Home,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        max_attempts: int | None = None,
        options: PipelineOptions | None = None,
        pipeline: str | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        # None: the MSMV_ENGINE_WORKERS / MSMV_MAX_ATTEMPTS settings
        workers = settings.get("MSMV_ENGINE_WORKERS") if workers is None else workers
        max_attempts = settings.get("MSMV_MAX_ATTEMPTS") if max_attempts is None else max_attempts
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.home = home.ensure()
        self.workers = workers
        self.scheduler = scheduler
        self.max_attempts = max_attempts
        self.options = options or PipelineOptions(home=str(home.root))
        self.pipeline_spec = pipeline
        self.pipeline = load_pipeline(pipeline)
        self.on_event = on_event or (lambda _kind, _info: None)
        self.stats = EngineStats()
        self._running: dict[str, _Running] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._stop = False

    # -- executors -------------------------------------------------------------------------------
    def _start_executor(self) -> None:
        if self.scheduler:
            from distributed import Client

            self._client = self.scheduler if not isinstance(self.scheduler, str) else Client(self.scheduler)
            self.options = replace(self.options, workers_per_host=dask_tasks_per_host(self._client))
        else:
            self._pool = self._new_pool()
            self.options = replace(self.options, workers_per_host=self.workers)  # they share this machine

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                   initializer=die_with_parent, initargs=(os.getpid(),))
        # Start every worker now, each with a no-op: the pool's manager thread watches the workers it knew
        # when it last woke, and a submit wakes it before spawning a worker (CPython 3.11), so a worker
        # spawned by the last submit could die unnoticed until another result came back. These no-ops'
        # results wake it once all workers exist.
        for _ in range(self.workers):
            pool.submit(os.getpid)
        return pool

    def _stop_executor(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._client is not None and isinstance(self.scheduler, str):
            self._client.close()
        self._client = None

    @property
    def capacity(self) -> int:
        if self._client is not None:
            n = len(self._client.scheduler_info().get("workers", {}))
            return max(1, n)
        return self.workers

    def _submit(self, job: pd.Series, work_dir: Path) -> Any:
        eid = None if pd.isna(job["eid"]) else int(job["eid"])
        args = (str(job["job_id"]), str(job["input_path"]), str(work_dir), eid, self.options)
        if self._client is not None:
            return self._client.submit(self.pipeline, *args, key=f"msmv-{job['job_id']}-{uuid.uuid4().hex[:6]}",
                                       pure=False)
        assert self._pool is not None
        return self._pool.submit(run_noting_pid, self.pipeline, *args)

    # -- queue maintenance -------------------------------------------------------------------------
    def recover(self, w: Writer) -> int:
        """After a crash: running jobs back to queued (attempt not counted), scratch and temp files gone."""
        jobs = w.jobs()
        interrupted = jobs[jobs["status"] == "running"]
        for _, job in interrupted.iterrows():
            w.update_job(str(job["job_id"]), status="queued", attempts=max(int(job["attempts"]) - 1, 0))
        for p in self.home.work.iterdir() if self.home.work.exists() else []:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for p in self.home.artifacts.glob(".*"):  # half-moved artifact folders
            shutil.rmtree(p, ignore_errors=True)
        inbox.clean_temporaries(self.home)
        return len(interrupted)

    def claim_inbox(self, w: Writer) -> int:
        """Turn complete inbox packages into jobs, then move them to ``packages/``; remove stale staging
        folders of crashed submissions."""
        inbox.clean_temporaries(self.home)
        packages = self.home.root / PACKAGES_DIR
        packages.mkdir(parents=True, exist_ok=True)
        jobs = w.jobs()
        by_sha = {str(r["input_sha256"]): r for _, r in jobs.iterrows() if r["input_sha256"] is not None}
        added = 0
        for zip_path in sorted(self.home.inbox.glob("*.zip")):
            ticket_path = zip_path.with_suffix(".json")
            ticket = inbox.Ticket.read(ticket_path) if ticket_path.exists() else None
            # `msmv submit` names packages by content hash; a file dropped in by hand keeps its name
            sha = zip_path.stem if inbox.is_hash_name(zip_path) else sha256_file(zip_path)
            eid = ticket.eid if ticket else inbox.eid_from_name(zip_path.name)
            instance = inbox.instance_from_name(ticket.original_name if ticket else zip_path.name)
            if eid is not None and w.is_withdrawn(eid):  # nothing of theirs is kept, not even a job
                zip_path.unlink(missing_ok=True)
                ticket_path.unlink(missing_ok=True)
                log.warning("a package of a withdrawn participant was deleted unprocessed")
                self.on_event("withdrawn", {"sha256": sha})
                continue
            target = packages / f"{sha}.zip"
            existing = by_sha.get(sha)
            if existing is None:
                w.add_job(target, eid=eid, instance=instance, input_sha256=sha,
                          job_id=sha[:16] + uuid.uuid4().hex[:8])
                added += 1
            elif ticket is not None and ticket.force and existing["status"] in ("done", "failed"):
                # a resubmission under a corrected name carries the eid the user means now
                renamed = {} if eid is None else {"eid": eid}
                w.update_job(str(existing["job_id"]), status="queued", attempts=0, error=None, stage=None, **renamed)
                added += 1
            os.replace(zip_path, target)  # after the job row exists: nothing lost in between
            ticket_path.unlink(missing_ok=True)
        return added + label_bundles.claim(w, self.home)  # label imports sealed by `msmv import-labels`

    # -- results -----------------------------------------------------------------------------------
    def _install_artifacts(self, result: SubjectResult, instance: int) -> list[dict[str, str]]:
        """Move the worker's files into artifacts/<eid>/<instance>/ atomically (old folder replaced whole;
        the other imaging visit's folder is left alone)."""
        final = self.home.artifact_dir(result.eid, instance)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = self.home.artifacts / f".new-{result.job_id}"
        trash = self.home.artifacts / f".old-{result.job_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for art in result.artifacts:
            os.replace(Path(result.work_dir) / art["file"], staging / art["file"])
        if final.exists():
            os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
        return [{"kind": a["kind"], "path": str(final / a["file"]), "sha256": a["sha256"]} for a in result.artifacts]

    def _finish(self, w: Writer, run: _Running, job: pd.Series) -> None:
        elapsed = time.perf_counter() - run.started
        try:
            result: SubjectResult = run.future.result()
        except BaseException as err:  # noqa: BLE001 - any worker failure is this job's failure
            self._fail(w, run, job, err, elapsed)
            return
        instance = FIRST_IMAGING_INSTANCE if pd.isna(job.get("instance")) else int(job["instance"])
        if w.is_withdrawn(result.eid):  # the eid came from the package's DICOM: discard it all
            shutil.rmtree(run.work_dir, ignore_errors=True)
            Path(str(job["input_path"])).unlink(missing_ok=True)
            w.update_job(run.job_id, status="failed", stage="done", error=REFUSED_REASON, seconds=round(elapsed, 3))
            self.stats.failed += 1
            self.on_event("failed", {"job_id": run.job_id, "stage": "done", "error": REFUSED_REASON})
            return
        artifacts = self._install_artifacts(result, instance)
        w.update_job(run.job_id, stage="done", seconds=round(elapsed, 3), timings=result.timings, eid=result.eid)
        provenance = {
            "kind": "engine",
            "input_sha256": result.input_sha256,
            "model_sha256": result.model_sha256,
            "code_version": result.code_version,
            "details": {"job_id": run.job_id, "timings": result.timings, **result.summary},
        }
        w.commit_subject(result.eid, result.metrics, artifacts, provenance, job_id=run.job_id, instance=instance)
        shutil.rmtree(run.work_dir, ignore_errors=True)
        self.stats.done += 1
        self.stats.seconds.append(elapsed)
        self.on_event("done", {"job_id": run.job_id, "eid": result.eid, "seconds": elapsed})

    def _fail(self, w: Writer, run: _Running, job: pd.Series, err: BaseException, elapsed: float) -> None:
        permanent = False  # a refused package fails the same way every time: never retried
        if isinstance(err, StageError):
            stage, message, permanent = err.stage, err.message, err.permanent
        elif isinstance(err, BrokenProcessPool):
            stage, message = read_stage(run.work_dir) or "worker", "the worker process died"
        else:
            stage = read_stage(run.work_dir) or "worker"
            message = f"{type(err).__name__}: {err}"
            permanent = isinstance(err, PackageRefused)
        attempts = int(job["attempts"])
        if isinstance(err, BrokenProcessPool) and run.bystander:  # not this job's fault: uncounted
            w.update_job(run.job_id, status="queued", attempts=max(attempts - 1, 0), stage=None, error=None)
            shutil.rmtree(run.work_dir, ignore_errors=True)
            log.info("job %s re-queued: its worker was stopped when another worker died", run.job_id)
            self.on_event("requeued", {"job_id": run.job_id})
            return
        retry = attempts < self.max_attempts and not permanent
        w.update_job(run.job_id, status="queued" if retry else "failed", stage=stage,
                     error=message[:2000], seconds=round(elapsed, 3))
        shutil.rmtree(run.work_dir, ignore_errors=True)
        if retry:
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        log.warning("job %s failed at %s (attempt %d/%d): %s", run.job_id, stage, attempts, self.max_attempts,
                    message)
        self.on_event("retry" if retry else "failed", {"job_id": run.job_id, "stage": stage, "error": message})

    def _commit_label_imports(self, w: Writer) -> None:
        """Commit queued label-import jobs here: converted and measured already, they need only the writer."""
        for done in label_bundles.commit_queued(w, self.home):
            if done.error is not None:
                self.stats.failed += 1
                log.warning("label import %s failed: %s", done.job_id, done.error)
                self.on_event("failed", {"job_id": done.job_id, "stage": label_bundles.JOB_STAGE, "error": done.error})
            else:
                self.stats.done += 1
                self.on_event("done", {"job_id": done.job_id, "eid": done.eid, "seconds": 0.0})

    # -- main loop ---------------------------------------------------------------------------------
    def _dispatch(self, w: Writer) -> None:
        self._commit_label_imports(w)
        free = self.capacity - len(self._running)
        if free <= 0:
            return
        jobs = w.jobs()
        jobs = jobs[~jobs["input_path"].map(label_bundles.is_bundle).astype(bool)]
        queued = jobs[(jobs["status"] == "queued") & ~jobs["job_id"].isin(list(self._running))]
        for _, job in queued.head(free).iterrows():
            job_id = str(job["job_id"])
            work_dir = self.home.work / job_id
            shutil.rmtree(work_dir, ignore_errors=True)
            work_dir.mkdir(parents=True)
            w.update_job(job_id, status="running", stage="queued-on-worker", attempts=int(job["attempts"]) + 1,
                         error=None)
            self._running[job_id] = _Running(job_id, self._submit(job, work_dir), work_dir, time.perf_counter())
            self.on_event("started", {"job_id": job_id})

    def _replace_broken_pool(self) -> None:
        """A worker died: wait for the pool to fail all its jobs and stop its other workers, mark the jobs
        whose workers it stopped (SIGTERM) as bystanders, and start a fresh pool.

        If no job's worker is seen to have died on its own (a worker stopped from outside with SIGTERM,
        say), none is a bystander: every attempt counts, so retries stay capped.
        """
        assert self._pool is not None
        processes = dict(getattr(self._pool, "_processes", None) or {})  # pid -> Process, before shutdown
        self._pool.shutdown(wait=True, cancel_futures=True)  # its manager has terminated and joined them
        exits = {pid: proc.exitcode for pid, proc in processes.items()}
        runs = list(self._running.values())  # all of them the old pool's, all failed now
        # died on its own: its worker's exit was not the pool's SIGTERM (a job not yet picked up by a
        # worker has no pid noted and is a bystander too)
        culprit = [exits.get(worker_pid(r.work_dir) or -1) not in (None, -signal.SIGTERM) for r in runs]
        if any(culprit):
            for run, guilty in zip(runs, culprit, strict=True):
                run.bystander = not guilty
        self._pool = self._new_pool()

    def _collect(self, w: Writer) -> bool:
        if self._pool is not None and any(_broke(r.future) for r in self._running.values()):
            self._replace_broken_pool()
        finished = [r for r in self._running.values() if r.future.done()]
        if not finished:
            return False
        jobs = w.jobs().set_index("job_id", drop=False)
        for run in finished:
            del self._running[run.job_id]
            self._finish(w, run, jobs.loc[run.job_id])
        w.publish()
        return True

    def pending(self, w: Writer) -> int:
        jobs = w.jobs()
        return int((jobs["status"] == "queued").sum()) + len(self._running)

    def stop(self) -> None:
        self._stop = True

    def run(self, *, once: bool = False, idle_sleep_s: float = 1.0) -> EngineStats:
        """Process jobs until the queue is empty (``once``) or :meth:`stop` is called."""
        with Writer(self.home) as w:
            self.recover(w)
            self._start_executor()
            try:
                last_scan = 0.0
                while not self._stop:
                    if time.monotonic() - last_scan >= idle_sleep_s or once:
                        self.claim_inbox(w)
                        last_scan = time.monotonic()
                    self._dispatch(w)
                    progressed = self._collect(w)
                    if once and not self._running and self.pending(w) == 0:
                        break
                    if not progressed:
                        w.publish()
                        time.sleep(POLL_S)
            except BaseException:
                log.error("engine stopped: %s", traceback.format_exc())
                raise
            finally:
                self._stop_executor()
                w.publish(force=True)
        return self.stats
