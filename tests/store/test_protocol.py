"""The store protocol (docs/architecture.md): one writer, atomic snapshots, all-or-nothing commits.

Writers run in other processes (spawned) where the protocol is about processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from store import snapshot, wide
from store.errors import NoSnapshotError, SchemaError, WriterBusyError
from store.home import Home
from store.reader import Reader
from store.schema import SCHEMA_VERSION
from store.writer import Writer
from tests.store.conftest import metric_rows

N_ROWS = 54  # 27 structures x 2 sides per subject
CTX = mp.get_context("spawn")


def _commit_many(root: str, first: int, n: int, pause_s: float) -> None:
    """Child process: commit subjects first..first+n-1, publishing each."""
    with Writer(root) as w:
        for eid in range(first, first + n):
            w.commit_subject(eid, metric_rows(eid, volume=float(eid)), [], {"kind": "test", "input_sha256": str(eid)})
            w.publish(force=True)
            time.sleep(pause_s)


def _try_writer(root: str, out: mp.Queue) -> None:
    try:
        with Writer(root):
            out.put("acquired")
    except WriterBusyError as err:
        out.put(f"busy: {err}")


def _consistent(r: Reader) -> tuple[int, int]:
    """Check a snapshot's invariants; return (version, subjects)."""
    long = r.structure_metrics()
    wide_rows = r.participants(columns=["eid", "tmv_cm3", "has_imaging"])
    per_eid = long.groupby("eid").size()
    assert (per_eid == N_ROWS).all(), "a subject is half-committed"
    assert set(per_eid.index) == set(wide_rows.loc[wide_rows["has_imaging"], "eid"])
    assert wide_rows["tmv_cm3"].notna().all()
    return r.version, len(per_eid)


def test_no_snapshot_is_a_helpful_error(home: Home) -> None:
    with pytest.raises(NoSnapshotError, match=r"run `msmv demo` \(or `make run`\)"):
        Reader(home)


@pytest.mark.slow
def test_reader_sees_consistent_snapshots_while_another_process_writes(home: Home) -> None:
    with Writer(home) as w:
        w.commit_subject(1, metric_rows(1), [], {"kind": "test"})
    early = Reader(home)
    assert _consistent(early) == (early.version, 1)
    child = CTX.Process(target=_commit_many, args=(str(home.root), 100, 6, 0.05))
    child.start()
    seen: list[tuple[int, int]] = []
    while child.is_alive() or not seen:
        with Reader(home) as r:
            seen.append(_consistent(r))
    child.join(timeout=120)
    assert child.exitcode == 0
    with Reader(home) as r:
        seen.append(_consistent(r))
    versions = [v for v, _ in seen]
    assert versions == sorted(versions)  # never goes back
    assert seen[-1][1] == 7
    # The early reader still reads its own version, although that snapshot was pruned meanwhile.
    assert not (home.snapshots / snapshot.snapshot_name(early.version)).exists()
    assert _consistent(early) == (early.version, 1)
    early.close()


def test_second_writer_in_another_process_is_refused_with_the_holder_pid(home: Home) -> None:
    out: mp.Queue = CTX.Queue()
    with Writer(home):
        child = CTX.Process(target=_try_writer, args=(str(home.root), out))
        child.start()
        message = out.get(timeout=120)
        child.join(timeout=60)
        assert message.startswith("busy: ")
        assert f"is being written by process {os.getpid()}" in message
        assert str(home.lock) in message
        with pytest.raises(WriterBusyError, match=f"process {os.getpid()}"):
            Writer(home).open()  # also within one process
    child = CTX.Process(target=_try_writer, args=(str(home.root), out))
    child.start()
    assert out.get(timeout=120) == "acquired"  # released on exit
    child.join(timeout=60)


def test_subject_commit_is_all_or_nothing(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    with Writer(home) as w:
        job = w.add_job("/in/1.zip", eid=5)
        w.commit_subject(4, metric_rows(4), [], {"kind": "test"})
        before = w.version

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("injected failure after the metric rows were written")

        monkeypatch.setattr(wide, "rebuild", boom)
        with pytest.raises(RuntimeError, match="injected failure"):
            w.commit_subject(5, metric_rows(5), [{"kind": "labels", "path": "a/5.nrrd", "sha256": "00"}],
                             {"kind": "test"}, job_id=job)  # fmt: skip
        assert w.version == before
        counts = w.con.execute(
            """SELECT (SELECT count(*) FROM structure_metrics WHERE eid = 5),
                      (SELECT count(*) FROM metric_sets WHERE eid = 5),
                      (SELECT count(*) FROM artifacts WHERE eid = 5),
                      (SELECT status FROM jobs WHERE job_id = ?)""",
            [job],
        ).fetchone()
        assert counts == (0, 0, 0, "queued")
    with Reader(home) as r:
        assert r.structure_metrics([5]).empty and r.version == before


def test_commit_subject_is_idempotent_and_marks_the_job_done(home: Home) -> None:
    prov = {"kind": "segment", "input_sha256": "ab", "model_sha256": "cd", "code_version": "1.0"}
    art = [{"kind": "labels", "path": "artifacts/7/labels.nrrd", "sha256": "ef"}]
    with Writer(home) as w:
        job = w.add_job("/in/7.zip", eid=7, input_sha256="ab")
        w.update_job(job, status="running", stage="segment", attempts=1)
        p1 = w.commit_subject(7, metric_rows(7), art, prov, job_id=job)
        p2 = w.commit_subject(7, metric_rows(7), art, prov)
    assert p1 == p2
    with Reader(home) as r:
        assert len(r.structure_metrics([7])) == N_ROWS
        assert r.artifacts(7)[["kind", "path", "sha256"]].values.tolist() == [["labels", "artifacts/7/labels.nrrd", "ef"]]
        assert r.provenance(eid=7)[["kind", "model_sha256"]].values.tolist() == [["segment", "cd"]]
        jobs = r.jobs()
        assert jobs[["status", "stage", "attempts"]].values.tolist() == [["done", "segment", 1]]


def test_bad_job_updates_and_metrics_are_rejected(home: Home) -> None:
    with Writer(home) as w:
        job = w.add_job("/in/1.zip")
        with pytest.raises(ValueError, match="job status must be one of queued, running, done, failed, found 'ok'"):
            w.update_job(job, status="ok")
        with pytest.raises(ValueError, match=r"unknown job field\(s\) \['colour'\]"):
            w.update_job(job, colour="red")
        with pytest.raises(ValueError, match=r"metrics\[0\]: side must be left or right, found 'up'"):
            w.commit_subject(1, [{"structure": 1, "side": "up", "volume_cm3": 1.0}], [], {"kind": "t"})
        with pytest.raises(ValueError, match=r"metrics\[1\]: sartorius left given twice"):
            w.commit_subject(1, [{"structure": 1, "side": "left", "volume_cm3": 1.0}] * 2, [], {"kind": "t"})


def test_publish_replaces_the_snapshot_atomically_and_prunes(home: Home) -> None:
    with Writer(home) as w:
        versions = []
        for eid in range(1, 6):
            w.commit_subject(eid, metric_rows(eid), [], {"kind": "test"})
            versions.append(w.publish(force=True))
        assert w.publish() == versions[-1]  # nothing new: no new snapshot
    names = sorted(p.name for p in home.snapshots.iterdir())
    kept = [snapshot.snapshot_name(v) for v in versions[-3:]]  # MSMV_KEEP_SNAPSHOTS defaults to 3
    assert names == sorted([snapshot.CURRENT_NAME, *kept])  # no temporary files left behind
    assert (home.snapshots / snapshot.CURRENT_NAME).read_text().strip() == kept[-1]
    # The snapshot is a complete database on its own (copied after CHECKPOINT, not the live WAL).
    con = duckdb.connect(str(home.snapshots / kept[-1]), read_only=True)
    assert con.execute("SELECT count(*) FROM structure_metrics").fetchone()[0] == 5 * N_ROWS
    con.close()


def test_publish_is_rate_limited_but_flushed_on_close(home: Home) -> None:
    with Writer(home) as w:
        w.commit_subject(1, metric_rows(1), [], {"kind": "test"})
        first = w.publish(force=True)
        w.commit_subject(2, metric_rows(2), [], {"kind": "test"})  # within the interval: not published
        assert w.publish() == first
        last = w.version
    with Reader(home) as r:
        assert r.version == last > first


def _kill_target(root: str) -> None:
    _commit_many(root, 1, 10_000, 0.0)


def test_kill_9_loses_nothing_committed_and_leaves_nothing_half_written(home: Home) -> None:
    child = CTX.Process(target=_kill_target, args=(str(home.root),))
    child.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with Reader(home) as r:
                if r.structure_metrics().eid.nunique() >= 3:
                    break
        except NoSnapshotError:
            pass
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    with Writer(home) as w:  # the lock died with the process; the database recovers from its WAL
        n_sets = w.con.execute("SELECT count(*) FROM metric_sets").fetchone()[0]
        per_eid = w.con.execute("SELECT eid, count(*) FROM structure_metrics GROUP BY eid").fetchall()
        assert n_sets >= 3 and len(per_eid) == n_sets
        assert all(n == N_ROWS for _, n in per_eid)


def test_store_newer_than_the_code_is_refused(home: Home) -> None:
    with Writer(home) as w:
        w.commit_subject(1, metric_rows(1), [], {"kind": "test"})
        w.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
        w.con.execute("UPDATE meta SET value = '99' WHERE key = 'store_version'")
        w.publish(force=True)
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1} but this MSMV understands up to"):
        Writer(home).open()
    with pytest.raises(SchemaError, match="upgrade MSMV"):
        Reader(home)


def test_fresh_writer_creates_the_layout(tmp_path: Path) -> None:
    home = Home(tmp_path / "new")
    with Writer(home) as w:
        assert w.version == 0
    assert home.store_db.is_file() and home.lock.exists()
