"""The engine service: queue, retries, idempotency, crash safety, concurrent readers, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import PackageError
from engine.service import inbox
from engine.service.coordinator import Engine
from store.files import sha256_file
from store.home import home as make_home
from store.reader import Reader
from tests.engine.service.fake_pipeline import expected_volumes, make_package, running

FAKE = "tests.engine.service.fake_pipeline:process"
ROOT = Path(__file__).resolve().parents[3]


def _packages(folder: Path, eids: list[int], **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_package(folder / f"{e}_20201_2_0.zip", e, **kw) for e in eids]


def _check_results(h, eids: list[int]) -> None:
    """Every eid done exactly once, 54 rows with the pipeline's values, artifacts intact, no scratch left."""
    with Reader(h) as r:
        jobs = r.jobs()
        metrics = r.structure_metrics()
        for eid in eids:
            assert (jobs[jobs["eid"] == eid]["status"] == "done").sum() == 1
            rows = metrics[metrics["eid"] == eid].sort_values(["label", "side"])
            assert len(rows) == 54
            got = rows.pivot(index="label", columns="side", values="volume_cm3")[["left", "right"]].to_numpy()
            np.testing.assert_allclose(got, expected_volumes(eid))
            art = r.artifacts(eid)
            assert len(art) == 1 and Path(art["path"].iloc[0]).is_file()

            assert sha256_file(Path(art["path"].iloc[0])) == art["sha256"].iloc[0]
        assert not metrics.duplicated(["eid", "label", "side", "source"]).any()
    assert list(h.work.iterdir()) == []
    assert [p.name for p in h.inbox.iterdir()] == []
    assert [p.name for p in h.artifacts.iterdir() if p.name.startswith(".")] == []


def test_submit_is_idempotent_and_rejects_bad_uploads(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    (pkg,) = _packages(tmp_path / "in", [1001])
    first = inbox.submit(h, [pkg])
    assert first[0].status == "queued" and first[0].sha256 == sha256_file(pkg)
    again = inbox.submit(h, [pkg])
    assert again[0].status == "already queued"
    assert inbox.submit(h, [pkg], known={first[0].sha256}, force=True)[0].status == "queued"
    ticket = inbox.Ticket.read(h.inbox / f"{first[0].sha256}.json")
    assert ticket.eid == 1001 and ticket.original_name == pkg.name

    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    res = inbox.submit(h, [empty, text])
    assert [r.status for r in res] == ["rejected", "rejected"]
    assert "empty" in res[0].message and "not a zip archive" in res[1].message
    with pytest.raises(PackageError, match="not a zip archive"):
        inbox.check_zip(text)
    assert sorted(p.suffix for p in h.inbox.iterdir()) == [".json", ".zip"]  # nothing else landed


def test_folder_of_zips_queues_each(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    _packages(tmp_path / "batch", [1, 2, 3])
    res = inbox.submit(h, [tmp_path / "batch"])
    assert [r.status for r in res] == ["queued"] * 3
    assert len(list(h.inbox.glob("*.zip"))) == 3


def test_engine_processes_queue_and_failures_stay_alone(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    good = _packages(tmp_path / "in", [11, 12])
    (bad,) = _packages(tmp_path / "bad", [13], fail="segment")
    inbox.submit(h, [*good, bad])
    events = []
    stats = Engine(h, workers=1, max_attempts=2, pipeline=FAKE, on_event=lambda k, i: events.append(k)).run(once=True)
    assert (stats.done, stats.failed, stats.retried) == (2, 1, 1)
    _check_results(h, [11, 12])
    with Reader(h) as r:
        jobs = r.jobs().set_index("eid")
        assert jobs.loc[13, "status"] == "failed"
        assert jobs.loc[13, "stage"] == "segment"
        assert jobs.loc[13, "attempts"] == 2
        assert "synthetic failure in segment" in jobs.loc[13, "error"]
        assert set(json.loads(jobs.loc[11, "timings"])) == {"ingest", "fuse", "segment", "measure"}
        assert r.structure_metrics([13]).empty

    # re-submitting a processed package does nothing; --force processes it again without duplicates
    assert inbox.submit(h, [good[0]], known=set(jobs["input_sha256"]))[0].status == "already queued"
    inbox.submit(h, [good[0]], force=True)
    stats = Engine(h, workers=1, pipeline=FAKE).run(once=True)
    assert stats.done == 1
    _check_results(h, [11, 12])


def _engine_proc(h, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MSMV_HOME": str(h.root), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "engine", "--pipeline", FAKE, *extra],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_kill_minus_nine_at_random_points_loses_nothing(tmp_path):
    """Kill the service (and sometimes a worker) at seeded random moments; every package ends done once, and
    no worker outlives the service it belonged to."""
    h = make_home(tmp_path / "home").ensure()
    eids = list(range(500, 512))
    inbox.submit(h, _packages(tmp_path / "in", eids, sleep=0.4))
    rng = np.random.default_rng(7)
    for round_ in range(8):
        proc = _engine_proc(h, "--workers", "2")
        time.sleep(float(rng.uniform(1.5, 4.0)))
        if round_ % 3 == 2:  # kill one worker process first
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                os.kill(int(kids[-1]), signal.SIGKILL)
                time.sleep(float(rng.uniform(0.2, 1.0)))
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10  # its workers die with it: none races the next engine for a job
        while (alive := [k for k in kids if running(int(k))]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive == [], f"round {round_}: processes {alive} outlived the killed engine"
    final = _engine_proc(h, "--workers", "2", "--once")
    assert final.wait(timeout=300) == 0
    _check_results(h, eids)


@pytest.mark.slow
def test_readers_never_see_partial_subjects(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    eids = list(range(700, 710))
    inbox.submit(h, _packages(tmp_path / "in", eids, sleep=0.1))
    proc = _engine_proc(h, "--workers", "2", "--once")
    seen_versions, polls = set(), 0
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            r = Reader(h)
        except Exception as err:  # only "no snapshot yet" is acceptable, before the first publish
            assert "snapshot" in str(err).lower()
            time.sleep(0.05)
            continue
        with r:
            counts = r.structure_metrics().groupby("eid").size()
            assert set(counts.unique()) <= {54}, f"partial subject visible: {counts.to_dict()}"
            seen_versions.add(r.version)
        polls += 1
    assert proc.wait(timeout=10) == 0
    assert polls > 5 and len(seen_versions) >= 2
    _check_results(h, eids)


@pytest.mark.slow
def test_dask_local_cluster_runs_the_work_and_only_the_coordinator_writes(tmp_path, monkeypatch):
    import distributed

    from store.writer import Writer
    from tests.engine.service import fake_pipeline

    h = make_home(tmp_path / "home").ensure()
    eids = [901, 902, 903, 904]
    inbox.submit(h, _packages(tmp_path / "in", eids))
    log = tmp_path / "pids.log"
    # The coordinator is this process: note its Writer opens in the same log as the workers'.
    original = Writer.__init__

    def init(self, *args, **kwargs):
        fake_pipeline.note("writer")
        original(self, *args, **kwargs)

    monkeypatch.setattr(Writer, "__init__", init)
    monkeypatch.setitem(fake_pipeline._WATCH, "log", log)
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl,
          distributed.Client(cl) as client):
        worker_pids = set(client.run(fake_pipeline.watch, str(log)).values())
        stats = Engine(h, scheduler=client, pipeline=FAKE).run(once=True)
    assert stats.done == 4
    _check_results(h, eids)
    events = [line.split() for line in log.read_text().splitlines()]
    ran = [int(pid) for kind, pid in events if kind == "pipeline"]
    opened = {int(pid) for kind, pid in events if kind == "writer"}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert len(ran) == 4 and set(ran) <= worker_pids  # every subject was processed on a worker...
    assert opened == {os.getpid()}  # ...and only the coordinator opened the store's writer


def test_package_dropped_into_inbox_by_name_is_claimed_once(tmp_path):
    from store.writer import Writer

    h = make_home(tmp_path / "home").ensure()
    (pkg,) = _packages(h.inbox, [4242])  # written straight into the inbox, not via submit
    sha = sha256_file(pkg)
    eng = Engine(h, pipeline=FAKE)
    with Writer(h) as w:
        assert eng.claim_inbox(w) == 1
        assert eng.claim_inbox(w) == 0
        jobs = w.jobs()
    assert jobs["eid"].tolist() == [4242] and jobs["input_sha256"].tolist() == [sha]
    assert (h.root / "packages" / f"{sha}.zip").is_file() and not list(h.inbox.iterdir())


def test_a_forced_resubmission_under_a_corrected_name_takes_the_new_eid(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    (tmp_path / "in").mkdir()
    unnamed = make_package(tmp_path / "in" / "scan.zip", None)  # no eid in the name or the content
    inbox.submit(h, [unnamed])
    stats = Engine(h, workers=1, max_attempts=1, pipeline=FAKE).run(once=True)
    assert stats.failed == 1
    renamed = tmp_path / "in" / "1000777_20201_2_0.zip"
    unnamed.rename(renamed)  # the same bytes, now named as UK Biobank names it
    inbox.submit(h, [renamed], force=True)
    stats = Engine(h, workers=1, max_attempts=1, pipeline=FAKE).run(once=True)
    assert (stats.done, stats.failed) == (1, 0)
    with Reader(h) as r:
        jobs = r.jobs()
        assert jobs["eid"].tolist() == [1000777] and jobs["status"].tolist() == ["done"]
        assert sorted(r.structure_metrics([1000777])["label"].unique()) == list(range(1, 28))
