"""The Jobs page and its builders: status counts, per-stage timings, uploads into the inbox."""

import json
import zipfile

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.jobs import stage_timing_figure, status_counts
from dashboard.registry import ROOT
from engine.service import inbox
from engine.service.jobs import jobs_table, stage_timings
from store.home import home as make_home
from store.writer import Writer


def _jobs() -> pd.DataFrame:
    return pd.DataFrame({
        "job_id": ["a", "b", "c"], "eid": [1, 2, 3], "status": ["done", "done", "failed"],
        "timings": [json.dumps({"ingest": 1.0, "fuse": 2.5}), json.dumps({"ingest": 3.0, "fuse": 0.5}), None],
    })


def test_stage_timings_and_figure():
    t = stage_timings(_jobs())
    assert sorted(t["stage"]) == ["fuse", "fuse", "ingest", "ingest"]
    assert t.groupby("stage")["seconds"].sum().to_dict() == {"fuse": 3.0, "ingest": 4.0}
    fig = stage_timing_figure(t)
    assert [tr.name for tr in fig.data] == ["ingest", "fuse"]  # pipeline order, not alphabetical
    assert sorted(fig.data[1].y) == [0.5, 2.5]
    assert status_counts(_jobs()) == {"queued": 0, "running": 0, "done": 2, "failed": 1}
    with pytest.raises(ValueError, match="lacks column"):
        stage_timing_figure(pd.DataFrame({"x": [1]}))


def _zip_bytes(tmp_path) -> bytes:
    p = tmp_path / "p.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("a.dcm", b"x")
    return p.read_bytes()


def test_upload_checks_size_type_and_content(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    data = _zip_bytes(tmp_path)
    big = inbox.submit_upload(h, "1_20201_2_0.zip", data, max_bytes=10)
    assert big.status == "rejected" and "upload limit" in big.message
    assert "expected a .zip" in inbox.submit_upload(h, "scan.tar", data).message
    assert "not a zip archive" in inbox.submit_upload(h, "x.zip", b"hello").message
    ok = inbox.submit_upload(h, "../../1234_20201_2_0.zip", data)
    assert ok.status == "queued"
    assert inbox.Ticket.read(h.inbox / f"{ok.sha256}.json").eid == 1234  # path parts dropped from the name
    assert not (tmp_path / "1234_20201_2_0.zip").exists()
    assert jobs_table(h)["stage"].tolist() == ["inbox"]


def test_jobs_page_shows_queue_and_failures(tmp_path, monkeypatch):
    h = make_home(tmp_path / "home").ensure()
    with Writer(h) as w:
        job = w.add_job(tmp_path / "x.zip", eid=77, input_sha256="f" * 64)
        w.update_job(job, status="failed", stage="fuse", attempts=3, error="FusionError: stations disagree")
        w.publish(force=True)
    monkeypatch.setenv("MSMV_HOME", str(h.root))
    at = AppTest.from_file(str(ROOT / "pages" / "jobs.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Failed"] == "1" and metrics["Done"] == "0"
    failures = at.dataframe[1].value
    assert failures["error"].iloc[0] == "FusionError: stations disagree" and failures["stage"].iloc[0] == "fuse"
    # the uploader points larger or many packages at the CLI and the inbox folder
    assert any("`msmv submit PATH…`" in c.value and "`MSMV_HOME/inbox/`" in c.value for c in at.caption)
