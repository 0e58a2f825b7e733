"""What the engine leaves behind when something dies: half-copied submissions, orphan workers, scratch.

A submission still copying survives an engine (re)start; a crashed one's staging folder goes once it is
provably stale; a submission that would fill the disk is refused before copying; a worker does not
outlive its coordinator; a restart re-queues the interrupted jobs; a worker that dies every time is
failed after ``max_attempts`` with its scratch removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.service import inbox
from engine.service.coordinator import Engine
from engine.service.local_worker import watch_parent
from store.files import sha256_file
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.engine.service.fake_pipeline import make_package, running

FAKE = "tests.engine.service.fake_pipeline:process"
ROOT = Path(__file__).resolve().parents[3]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _staging_folder(h, host: str, pid: int, tag: str = "abcd1234") -> Path:
    folder = h.inbox / f".incoming-{host}-{pid}-{tag}"
    folder.mkdir()
    (folder / "package.zip").write_bytes(b"PK half a package")
    return folder


def test_an_engine_starting_mid_copy_leaves_the_submission_alone(tmp_path, monkeypatch):
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    pkg = make_package(tmp_path / "in" / "1001_20201_2_0.zip", 1001)
    copy = inbox._copy_bounded
    removed = []

    def engine_starts_meanwhile(fin, fout, limit, label):
        with Writer(h) as w:  # what `msmv engine` does first: recover, then claim the inbox
            eng = Engine(h, pipeline=FAKE)
            eng.recover(w)
            removed.append(eng.claim_inbox(w))
        return copy(fin, fout, limit, label)

    monkeypatch.setattr(inbox, "_copy_bounded", engine_starts_meanwhile)
    (res,) = inbox.submit(h, [pkg])
    assert removed == [0]  # nothing complete to claim yet, and the copy in progress was left alone
    assert res.status == "queued" and res.sha256 == sha256_file(pkg)
    assert sorted(p.name for p in h.inbox.iterdir()) == [f"{res.sha256}.json", f"{res.sha256}.zip"]
    assert (h.inbox / f"{res.sha256}.zip").read_bytes() == pkg.read_bytes()
    assert inbox.Ticket.read(h.inbox / f"{res.sha256}.json").eid == 1001


def test_a_staging_folder_goes_only_when_its_writer_is_gone_or_it_is_older_than_the_stated_age(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    host = inbox._host()
    crashed = _staging_folder(h, host, _dead_pid())
    copying = _staging_folder(h, host, os.getpid())  # a live writer on this host
    elsewhere = _staging_folder(h, "other-node-07", _dead_pid())  # its pid means nothing here
    legacy = h.inbox / ".incoming-k2j4x9"  # a name without host and pid (an older msmv)
    legacy.mkdir()
    assert inbox.clean_temporaries(h) == 1
    assert not crashed.exists() and copying.exists() and elsewhere.exists() and legacy.exists()

    # nothing changed for longer than STALE_AFTER_S: stale whoever wrote it (a pid may have been reused)
    later = time.time() + inbox.STALE_AFTER_S + 60
    recent = _staging_folder(h, "other-node-07", 1, "fresh123")
    assert inbox.is_stale(copying, now=later) and not inbox.is_stale(recent)
    # the newest file inside decides, not the folder's own time
    os.utime(elsewhere, (0, 0))
    assert not inbox.is_stale(elsewhere)
    assert inbox.clean_temporaries(h, now=later) == 4
    assert list(h.inbox.iterdir()) == []


def test_a_submission_that_would_fill_the_disk_is_refused_before_copying(tmp_path, monkeypatch):
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    pkg = make_package(tmp_path / "in" / "1002_20201_2_0.zip", 1002)
    size = pkg.stat().st_size
    usage = shutil.disk_usage(h.inbox)
    free = {"bytes": size + inbox.FREE_RESERVE_BYTES - 1}
    monkeypatch.setattr(inbox.shutil, "disk_usage", lambda _p: usage._replace(free=free["bytes"]))
    (res,) = inbox.submit(h, [pkg])
    mb = 2**20
    assert res.status == "rejected"
    assert res.message == (f"not enough free space for {pkg} in {h.inbox}: it needs {size / mb:.1f} MB and "
                           f"{free['bytes'] / mb:.1f} MB are free, of which 1024 MB are kept for the engine's results")
    assert list(h.inbox.iterdir()) == []
    up = inbox.submit_upload(h, "scan.zip", pkg.read_bytes())  # needs room for the upload and its copy
    assert up.status == "rejected" and up.message.startswith("not enough free space for scan.zip")
    free["bytes"] = size + inbox.FREE_RESERVE_BYTES  # exactly enough
    assert inbox.submit(h, [pkg])[0].status == "queued"


def test_the_watchdog_exits_once_the_parent_is_gone():
    codes: list[int] = []
    watch_parent(os.getppid() + 100_000, interval_s=0.01, exit_now=codes.append)  # not our parent: at once
    assert codes == [1]


# A worker as the pool starts one (the initializer with its coordinator's pid), in a "coordinator"
# process that only waits; ``without`` switches off one of the two ways of dying with the parent.
_WORKER = """
import sys, time
from engine.service import local_worker as pw
if sys.argv[2] == "prctl":
    pw.set_parent_death_signal = lambda: False  # as on macOS: only the watchdog is left
else:
    pw.watch_parent = lambda *a, **k: None  # only Linux's parent-death signal is left
pw.die_with_parent(int(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
"""
_COORDINATOR = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]])
print(worker.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("without", ["prctl", "watchdog"])
def test_a_worker_dies_with_its_coordinator_killed_by_sigkill(without):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    coord = subprocess.Popen([sys.executable, "-c", _COORDINATOR, _WORKER, without], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    worker = int(coord.stdout.readline())
    try:
        assert coord.stdout.readline().strip() == "ready"
        assert running(worker)
        coord.kill()
        coord.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(worker), f"worker {worker} outlived its coordinator ({without} off)"
    finally:
        if running(worker):
            os.kill(worker, signal.SIGKILL)
        coord.stdout.close()


def test_a_restart_requeues_the_interrupted_jobs_and_removes_their_scratch(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    inbox.submit(h, [make_package(tmp_path / "in" / "1003_20201_2_0.zip", 1003)])
    eng = Engine(h, workers=1, max_attempts=1, pipeline=FAKE)
    with Writer(h) as w:  # a coordinator that dispatched the job and was killed before it came back
        eng.claim_inbox(w)
        job_id = str(w.jobs()["job_id"].iloc[0])
        w.update_job(job_id, status="running", stage="segment", attempts=1)
        (h.work / job_id).mkdir()
        (h.work / job_id / "water.nrrd").write_bytes(b"half a volume")
        (h.artifacts / f".new-{job_id}").mkdir()  # killed while moving artifacts into place
        h.onnx_cache.mkdir(parents=True)
        (h.onnx_cache / "abc.onnx").write_bytes(b"an export")  # made once per checkpoint: not scratch
        assert eng.recover(w) == 1
        job = w.jobs().iloc[0]
        assert (job["status"], job["attempts"]) == ("queued", 0)  # the interrupted attempt is not counted
    assert list(h.work.iterdir()) == [] and list(h.artifacts.iterdir()) == []
    assert (h.onnx_cache / "abc.onnx").read_bytes() == b"an export"


def test_a_worker_that_dies_every_time_is_failed_after_max_attempts_with_its_scratch_removed(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    inbox.submit(h, [make_package(tmp_path / "in" / "1004_20201_2_0.zip", 1004, exit_at="segment")])
    events: list[str] = []
    stats = Engine(h, workers=1, max_attempts=2, pipeline=FAKE,
                   on_event=lambda kind, _info: events.append(kind)).run(once=True)
    assert (stats.done, stats.failed, stats.retried) == (0, 1, 1)
    assert events.count("started") == 2 and events.count("retry") == 1
    with Reader(h) as r:
        job = r.jobs().iloc[0]
        assert r.structure_metrics([1004]).empty
    assert (job["status"], job["stage"], job["attempts"]) == ("failed", "segment", 2)
    assert job["error"] == "the worker process died"
    assert list(h.work.iterdir()) == [] and list(h.inbox.iterdir()) == []


def test_a_worker_that_dies_costs_only_its_own_job_an_attempt(tmp_path):
    """Its death fails every job of the pool; the job running beside it is re-queued uncounted and commits."""
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    dies = make_package(tmp_path / "in" / "1006_20201_2_0.zip", 1006, exit_at="ingest", wait_for_workers=2)
    # running when the other dies: both wait until both run in workers, then one dies and the other's first
    # run would sleep a minute (the pool stops it)
    beside = make_package(tmp_path / "in" / "1007_20201_2_0.zip", 1007, wait_for_workers=2, first_run_sleep=60.0)
    inbox.submit(h, [dies, beside])
    events: list[tuple[str, object]] = []
    stats = Engine(h, workers=2, max_attempts=1, pipeline=FAKE,
                   on_event=lambda kind, info: events.append((kind, info.get("job_id")))).run(once=True)
    with Reader(h) as r:
        jobs = r.jobs().set_index("eid")
        assert len(r.structure_metrics([1007])) == 54
    assert (stats.done, stats.failed, stats.retried) == (1, 1, 0)
    assert [kind for kind, job in events if job == jobs.loc[1007, "job_id"]] == ["started", "requeued", "started", "done"]
    assert (jobs.loc[1006, "status"], jobs.loc[1006, "attempts"], jobs.loc[1006, "error"]) == (
        "failed", 1, "the worker process died")
    assert (jobs.loc[1007, "status"], jobs.loc[1007, "attempts"]) == ("done", 1)  # the stopped attempt not counted
    assert list(h.work.iterdir()) == []
