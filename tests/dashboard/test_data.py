import io
import zipfile

import pandas as pd
import pytest

from dashboard.data import (
    VIEW_KEY,
    export_bundle,
    jobs,
    participants,
    per_view,
    processed_eids,
    snapshot_version,
)
from dashboard.uploads import queue_upload
from store.errors import NoSnapshotError
from store.filters import CohortFilter
from store.home import home as make_home
from store.writer import Writer


def _frame(view):
    df = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    if view is not None:
        df.attrs[VIEW_KEY] = view
    return df


def test_per_view_computes_once_per_view_and_never_caches_unknown_frames():
    calls = []

    def total(df: pd.DataFrame) -> float:
        calls.append(1)
        return float(df["x"].sum())

    view = ("/tmp/x", 7, (("sex", "1"),), None)
    assert per_view(total, _frame(view)) == 7.0
    assert per_view(total, _frame(view)) == 7.0
    assert len(calls) == 1
    assert per_view(total, _frame(("/tmp/x", 8, (), None))) == 7.0  # a new snapshot version: recomputed
    assert len(calls) == 2
    per_view(total, _frame(None))
    per_view(total, _frame(None))
    assert len(calls) == 4


def test_per_view_rejects_lambdas():
    with pytest.raises(ValueError, match="named function .* got a lambda"):
        per_view(lambda df: 1, _frame(None))


def test_participants_filters_through_the_reader_and_tags_the_view(demo_home, demo_participants):
    version = snapshot_version(str(demo_home))
    flt = CohortFilter(sex=(0,), age=(60.0, 70.0))
    df = participants(version, flt, root=str(demo_home))
    full = demo_participants
    expected = full[(full.sex == 0) & full.age.between(60, 70)]
    assert sorted(df.eid) == sorted(expected.eid)
    assert df.attrs[VIEW_KEY][1:3] == (version, tuple(sorted(flt.to_query_params().items())))


def test_snapshot_version_without_a_store_raises(tmp_path):
    with pytest.raises(NoSnapshotError):
        snapshot_version(str(tmp_path))


def test_jobs_loader_sees_a_new_upload_and_a_new_snapshot(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    root = str(h.root)
    assert jobs(root=root).empty  # no snapshot, empty inbox
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.dcm", b"x")
    assert queue_upload("1234_20201_2_0.zip", buf.getvalue(), max_bytes=2**20, root=root).status == "queued"
    queued = jobs(root=root)  # same (absent) snapshot, but the inbox changed: not the cached empty table
    assert queued[["status", "stage"]].values.tolist() == [["queued", "inbox"]]
    with Writer(h) as w:
        job = w.add_job(tmp_path / "x.zip", eid=77, input_sha256="f" * 64)
        w.update_job(job, status="failed", stage="fuse", attempts=3, error="FusionError: stations disagree")
        w.publish(force=True)
    table = jobs(root=root)
    assert sorted(table["status"]) == ["failed", "queued"]
    assert table.loc[table["status"] == "failed", "error"].tolist() == ["FusionError: stations disagree"]


def test_processed_eids_lists_finished_jobs(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    with Writer(h) as w:
        for eid, status in ((77, "done"), (78, "failed"), (79, "done")):
            job = w.add_job(tmp_path / f"{eid}.zip", eid=eid, input_sha256=str(eid) * 32)
            w.update_job(job, status=status)
        w.publish(force=True)
    assert processed_eids(snapshot_version(str(h.root)), root=str(h.root)) == [77, 79]


def test_export_bundle_holds_the_filtered_rows_with_dictionary_and_sidecar(demo_home, demo_participants):
    version = snapshot_version(str(demo_home))
    flt = CohortFilter(sex=(1,))
    payload = export_bundle(version, "csv", flt, ["sex", "age"], root=str(demo_home))
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        names = sorted(zf.namelist())
        assert names == ["cohort.csv", "cohort.dictionary.csv", "cohort.json"]
        rows = pd.read_csv(zf.open("cohort.csv"))
    assert sorted(rows["eid"]) == sorted(demo_participants.loc[demo_participants.sex == 1, "eid"])
    assert set(rows["sex"]) == {1}
