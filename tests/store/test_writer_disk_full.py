"""A writer whose disk fills up: one clear error, the published snapshot untouched, the lock released."""

from __future__ import annotations

import duckdb
import pytest

from store.errors import DiskFullError
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer

ENOSPC = 'IO Error: Could not write file "store.duckdb.wal": No space left on device'


class _FullDisk:
    """The writer's connection, with the disk filling up at one statement (``COMMIT`` or ``CHECKPOINT``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fail_on: str) -> None:
        self._con, self._fail_on = con, fail_on

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        if sql.strip().upper() == self._fail_on:
            if self._fail_on == "COMMIT":  # DuckDB ends the transaction when its log write fails
                self._con.execute("ROLLBACK")
            raise duckdb.IOException(ENOSPC)
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._con, name)


def _jobs(h) -> list[str]:
    with Reader(h) as r:
        return sorted(r.jobs()["job_id"])


@pytest.fixture
def home_with_a_job(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    with Writer(h) as w:
        w.add_job("old.zip", job_id="old")
    return h


def test_full_disk_at_commit_is_one_clear_error_and_stores_nothing(home_with_a_job):
    h = home_with_a_job
    with Writer(h) as w:
        version = w.version
    with pytest.raises(DiskFullError, match=r"is full \(No space left on device\): nothing of this change was "
                                            r"stored and readers keep the last published snapshot") as caught:
        with Writer(h) as w:
            w._con = _FullDisk(w._con, "COMMIT")
            w.add_job("new.zip", job_id="new")
    assert str(h.root) in str(caught.value)
    assert isinstance(caught.value.__cause__, duckdb.IOException)
    assert caught.value.__context__ is caught.value.__cause__  # no second error raised while handling it
    assert _jobs(h) == ["old"]
    with Writer(h) as w:  # the lock was released and the store is as it was
        assert w.version == version and list(w.jobs()["job_id"]) == ["old"]


def test_full_disk_at_publish_keeps_the_old_snapshot(home_with_a_job):
    h = home_with_a_job
    before = sorted(p.name for p in h.snapshots.iterdir())
    with pytest.raises(DiskFullError, match=r"is stored but not published, so readers keep the last published "
                                            r"snapshot; free some space") as caught:
        with Writer(h) as w:
            w._con = _FullDisk(w._con, "CHECKPOINT")
            w.add_job("new.zip", job_id="new")
    assert isinstance(caught.value.__cause__, duckdb.IOException)
    assert sorted(p.name for p in h.snapshots.iterdir()) == before  # no half-written snapshot left
    assert _jobs(h) == ["old"]
    with Writer(h) as w:  # the committed job is published once there is room again
        assert list(w.jobs()["job_id"]) == ["old", "new"]
    assert _jobs(h) == ["new", "old"]


def test_full_disk_while_copying_the_snapshot_file(home_with_a_job, monkeypatch):
    h = home_with_a_job

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("store.snapshot.shutil.copyfile", full)
    with pytest.raises(DiskFullError, match="is stored but not published"):
        with Writer(h) as w:
            w.add_job("new.zip", job_id="new")
    assert not [p for p in h.snapshots.iterdir() if p.name.endswith(".tmp")]
    assert _jobs(h) == ["old"]
