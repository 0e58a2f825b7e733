"""The engine's worker count, retries and torch threads default to their settings; explicit values win."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.service.coordinator import Engine
from engine.service.pipeline import PipelineOptions
from store.home import home as make_home
from store.settings import SettingError


def test_engine_defaults_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MSMV_ENGINE_WORKERS", "MSMV_MAX_ATTEMPTS", "MSMV_ENGINE_THREADS"):
        monkeypatch.delenv(name, raising=False)
    h = make_home(tmp_path / "h")
    plain = Engine(h)
    assert (plain.workers, plain.max_attempts, plain.options.torch_threads) == (1, 3, 0)
    monkeypatch.setenv("MSMV_ENGINE_WORKERS", "3")
    monkeypatch.setenv("MSMV_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("MSMV_ENGINE_THREADS", "2")
    eng = Engine(h)
    assert (eng.workers, eng.max_attempts, eng.options.torch_threads) == (3, 5, 2)
    assert PipelineOptions().torch_threads == 2
    explicit = Engine(h, workers=2, max_attempts=1, options=PipelineOptions(torch_threads=4))
    assert (explicit.workers, explicit.max_attempts, explicit.options.torch_threads) == (2, 1, 4)


def test_a_bad_worker_count_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSMV_ENGINE_WORKERS", "0")
    with pytest.raises(SettingError, match=r"MSMV_ENGINE_WORKERS = '0': expected at least 1"):
        Engine(make_home(tmp_path / "h"))
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        Engine(make_home(tmp_path / "h"), workers=0)


def test_threads_default_to_the_cores_shared_among_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.service.coordinator import dask_tasks_per_host
    from engine.service.pipeline import worker_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert worker_threads(PipelineOptions(torch_threads=0)) == 8
    assert worker_threads(PipelineOptions(torch_threads=0, workers_per_host=3)) == 2  # 8 // 3
    assert worker_threads(PipelineOptions(torch_threads=0, workers_per_host=16)) == 1
    assert worker_threads(PipelineOptions(torch_threads=5, workers_per_host=16)) == 5  # set: it wins
    eng = Engine(make_home(tmp_path / "h"), workers=2, options=PipelineOptions(torch_threads=0))
    eng._start_executor()
    try:
        assert eng.options.workers_per_host == 2 and worker_threads(eng.options) == 4
    finally:
        eng._stop_executor()

    class Client:  # what distributed.Client.scheduler_info returns, in part
        def scheduler_info(self):
            return {"workers": {"tcp://a:1": {"host": "a", "nthreads": 1}, "tcp://a:2": {"host": "a", "nthreads": 2},
                                "tcp://b:1": {"host": "b", "nthreads": 1}}}

    assert dask_tasks_per_host(Client()) == 3  # host a runs three subjects at once
