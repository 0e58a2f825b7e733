"""Subject page: both imaging visits side by side with the change per structure per year (AppTest)."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from store.home import home as make_home
from store.structures import STRUCTURES
from store.writer import Writer
from tests.store.conftest import metric_rows

PAGE_TIMEOUT_S = 120
YEARS = 731 / 365.25  # 2015-01-01 to 2017-01-01


@pytest.fixture
def two_visit_home(tmp_path, monkeypatch):
    h = make_home(tmp_path / "msmv")
    phen = tmp_path / "p.csv"
    phen.write_text("eid,31-0.0,21003-2.0,53-2.0,53-3.0\n1001,1,60,2015-01-01,2017-01-01\n1002,0,58,2016-01-01,\n"
                    "1003,1,61,2015-06-01,\n")
    with Writer(h) as w:
        w.import_phenotypes(phen)
        for eid in (1001, 1002):
            w.commit_subject(eid, metric_rows(eid, 10.0), [], {"kind": "engine", "input_sha256": f"{eid}a"})
            w.commit_subject(eid, metric_rows(eid, 9.0), [], {"kind": "engine", "input_sha256": f"{eid}b"},
                             instance=3)
        w.commit_subject(1003, metric_rows(1003, 10.0), [], {"kind": "engine", "input_sha256": "1003a"})
    monkeypatch.setenv("MSMV_HOME", str(h.root))
    return h


def _run(eid: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/subject.py"), default_timeout=PAGE_TIMEOUT_S)
    at.query_params["eid"] = str(eid)
    return at.run()


def _visits_table(at: AppTest):
    found = [d.value for d in at.dataframe if "change_cm3" in d.value.columns]
    return found[0] if found else None


def test_subject_page_shows_both_visits_and_the_change_per_year(two_visit_home):
    at = _run(1001)
    assert not at.exception
    table = _visits_table(at)
    assert table is not None and len(table) == len(STRUCTURES)
    # each structure: 2 sides x 5 cm³ at visit 2, 2 x 4.5 cm³ at visit 3
    assert set(table["first_cm3"]) == {20.0} and set(table["last_cm3"]) == {18.0}
    assert all(math.isclose(v, -2.0 / YEARS) for v in table["change_per_year_cm3"])
    assert any("Instance 2 to instance 3: 2.0 years (2015-01-01 to 2017-01-01)" in c.value for c in at.caption)


def test_without_both_visit_dates_the_interval_is_unknown(two_visit_home):
    at = _run(1002)
    table = _visits_table(at)
    assert not at.exception and table is not None
    assert "change_per_year_cm3" not in table.columns and set(table["change_cm3"]) == {-2.0}
    assert any("interval unknown" in c.value for c in at.caption)


def test_one_visit_shows_no_visit_table(two_visit_home):
    at = _run(1003)
    assert not at.exception and _visits_table(at) is None
    assert not any(h.value == "Imaging visits" for h in at.subheader)
