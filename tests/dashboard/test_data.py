import pandas as pd
import pytest

from dashboard.data import VIEW_KEY, participants, per_view, snapshot_version
from store.errors import NoSnapshotError
from store.filters import CohortFilter


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
