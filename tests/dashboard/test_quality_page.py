"""The Quality page, its builders, the Subject page's scanned-range marks and the loader's exclude_qc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from dashboard.data import participants, snapshot_version
from dashboard.figures.quality import (
    SCAN_RANGE_MARK,
    aggregate_counts,
    distribution_figure,
    flagged_table,
    scan_range_marks,
)
from dashboard.registry import ROOT
from engine.quality import stored_report
from store.filters import CohortFilter
from store.reader import Reader
from tests.engine.quality.test_stored import PROBLEM, qc_home  # noqa: F401 - the fixture


def test_distribution_marks_the_threshold_and_counts_beyond_it():
    fig = distribution_figure(pd.Series([0.01, 0.02, 0.09, 0.2, None]), threshold=0.08, title="t", x_title="x",
                              nbins=19)
    bars = fig.data[0]  # binned on the server: 0.01 .. 0.2 in 19 bins of 0.01
    assert list(bars.y) == [1, 1] + [0] * 6 + [1] + [0] * 9 + [1]
    np.testing.assert_allclose(bars.x, np.arange(19) * 0.01 + 0.015)
    line = fig.layout.shapes[0]
    assert line.x0 == line.x1 == 0.08
    assert fig.layout.annotations[0].text == "threshold 0.08 · 2 above"


def test_distribution_sends_counts_not_values():
    rng = np.random.default_rng(3)
    values = pd.Series(rng.gamma(2.0, 1.5, size=5000))
    fig = distribution_figure(values, threshold=6.0, title="t", x_title="x", nbins=40)
    expected, edges = np.histogram(values, bins=40)
    assert len(fig.data[0].y) == 40 and list(fig.data[0].y) == expected.tolist()
    np.testing.assert_allclose(fig.data[0].customdata[:, 0], edges[:-1])
    assert fig.layout.annotations[0].text == f"threshold 6 · {int((values > 6).sum()):,} above"
    assert len(distribution_figure(pd.Series([], dtype=float), threshold=1, title="t", x_title="x").data) == 0


def test_aggregate_counts_hide_small_numbers():
    counts = pd.DataFrame({"code": ["a", "b", "c"], "check": ["A", "B", "C"], "flags": [0, 3, 12],
                           "subjects": [0, 2, 5]})
    shown = aggregate_counts(counts, min_count=5)
    assert shown["flags"].tolist() == ["0", "< 5", "12"] and shown["subjects"].tolist() == ["0", "< 5", "5"]


def test_scan_range_marks():
    labels = pd.Series([1, 9, 27])
    assert scan_range_marks(labels, frozenset({9, 27})).tolist() == [
        "", f"{SCAN_RANGE_MARK} · QC flag", SCAN_RANGE_MARK]  # the femur leaves the field in every scan
    assert scan_range_marks(labels, None).tolist() == [None, None, None]


def test_flagged_table_links_each_subject(qc_home):  # noqa: F811
    with Reader(qc_home) as r:
        report = stored_report(r)
    table = flagged_table(report.flagged, report.flags)
    assert table["eid"].tolist() == [PROBLEM] and table["subject"].tolist() == [f"/subject?eid={PROBLEM}"]
    assert table["flags"].tolist() == [2]
    assert "Piriformis reaches the first or last slice" in table["reasons"].iloc[0]


def test_the_loader_leaves_flagged_subjects_out_on_request(qc_home):  # noqa: F811
    root = str(qc_home.root)
    version = snapshot_version(root)
    every = participants(version, None, root=root)
    kept = participants(version, CohortFilter(exclude_qc=True), root=root)
    assert len(every) - len(kept) == 1 and PROBLEM not in set(kept["eid"])


def test_quality_page_lists_the_flagged_subject(qc_home, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MSMV_HOME", str(qc_home.root))
    at = AppTest.from_file(str(ROOT / "pages" / "quality.py"), default_timeout=120).run()
    assert not at.exception
    assert [m.value for m in at.metric][:2] == ["15", "1"]
    shown = next(df.value for df in at.dataframe if "subject" in df.value.columns)
    assert shown["subject"].tolist() == [f"/subject?eid={PROBLEM}"]


@pytest.fixture
def remote():
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_anonymous_visitors_get_counts_only(qc_home, monkeypatch, remote):  # noqa: F811
    monkeypatch.setenv("MSMV_HOME", str(qc_home.root))
    at = AppTest.from_file(str(ROOT / "pages" / "quality.py"), default_timeout=120).run()
    assert not at.exception
    assert at.metric[1].value == "< 5"
    assert all(str(PROBLEM) not in str(df.value) for df in at.dataframe if "eid" in df.value.columns)
    assert not [df for df in at.dataframe if "subject" in df.value.columns]
