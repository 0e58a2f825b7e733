"""Subject page: a TotalSegmentator import shows its thigh compartment volumes and P/A ratio (AppTest)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from tests.engine.interop.test_compartment_metrics import (
    ANTERIOR,
    BOTH,
    MEDIAL,
    POSTERIOR,
    TS_ONLY,
    build_store,
)

PAGE_TIMEOUT_S = 120


def _run(eid: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/subject.py"), default_timeout=PAGE_TIMEOUT_S)
    at.query_params["eid"] = str(eid)
    return at.run()


def test_a_compartment_level_source_shows_its_compartments(tmp_path, monkeypatch):
    monkeypatch.setenv("MSMV_HOME", str(build_store(tmp_path).root))
    at = _run(TS_ONLY)
    assert not at.exception
    assert [h.value for h in at.subheader if h.value == "Thigh compartments"] == ["Thigh compartments"]
    (table,) = [d.value for d in at.dataframe if "compartment" in d.value.columns and "left_cm3" in d.value.columns
                and "asymmetry_pct" not in d.value.columns]
    got = table.set_index("compartment")
    for name, expected in (("anterior", ANTERIOR), ("medial", MEDIAL), ("posterior", POSTERIOR)):
        assert got.loc[name, "left_cm3"] == pytest.approx(expected["left"])
        assert got.loc[name, "right_cm3"] == pytest.approx(expected["right"])
        assert got.loc[name, "volume_cm3"] == pytest.approx(expected["left"] + expected["right"])
    pa = sum(POSTERIOR.values()) / sum(ANTERIOR.values())
    assert {m.label: m.value for m in at.metric}["P/A ratio"] == f"{pa:.3f}"

    at = _run(BOTH)  # the engine's values are on display: no compartment section
    assert not at.exception
    assert "Thigh compartments" not in [h.value for h in at.subheader]
