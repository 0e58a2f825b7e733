"""The Method agreement page on a tiny store with two sources: simulated values for 16 participants, the
engine's for 12 of them (AppTest, in-process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from engine.cohort.agreement import PAIR_COLUMNS
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.dashboard.leaks import eid_hits, figure_specs, rendered_bytes
from tests.dashboard.test_access import DUMMY_AUTH
from tests.store.conftest import metric_rows, write_metrics_csv, write_phenotypes

PAGE = str(ROOT / "pages" / "agreement.py")
EIDS = list(range(1_000_001, 1_000_017))
ENGINE_EIDS = EIDS[:12]


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("agreement_home")
    home = make_home(tmp / "msmv")
    rng = np.random.default_rng(5)
    sizes = {eid: 8.0 + 4.0 * rng.random() for eid in EIDS}  # cm³ per structure side
    phen = write_phenotypes(tmp / "p.csv", [{"eid": e, "sex": 1, "age": 65.0, "height_cm": 175.0} for e in EIDS])
    sim = write_metrics_csv(tmp / "m.csv", [(e, m["structure"], m["side"], sizes[e], None)
                                            for e in EIDS for m in metric_rows(e)])
    with Writer(home) as w:
        w.import_phenotypes(phen, source="simulated", simulated=True)
        w.import_metrics(sim, source="simulated", simulated=True)
        for e in ENGINE_EIDS:  # the engine reads 3 % high, with noise
            w.commit_subject(e, metric_rows(e, sizes[e] * 1.03 + rng.normal(0, 0.2)), [],
                             {"kind": "engine", "input_sha256": str(e)})
    return home.root


def _run(home: Path, monkeypatch: pytest.MonkeyPatch, *, anonymous: bool = False, **params: str) -> AppTest:
    monkeypatch.setenv("MSMV_HOME", str(home))
    at = AppTest.from_file(PAGE, default_timeout=120)
    if anonymous:
        at.secrets["auth"] = DUMMY_AUTH
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_engine_against_simulated_with_points_and_a_table_of_every_metric(two_sources, monkeypatch):
    at = _run(two_sources, monkeypatch)
    assert at.selectbox(key="agreement_first").value == "msmv"  # the preferred kind first
    assert at.selectbox(key="agreement_second").value == "simulated"
    table = at.dataframe[0].value.set_index("Metric")
    assert len(table) == 29 and table.loc["TMV (cm³)", "n"] == "12"
    with Reader(two_sources) as r:
        engine = r.participants(columns=list(PAIR_COLUMNS)).set_index("eid").loc[ENGINE_EIDS, "tmv_cm3"]
        sim = r.structure_metrics(ENGINE_EIDS, source="simulated").groupby("eid")["volume_cm3"].first() * 50
    assert table.loc["TMV (cm³)", "r"] == f"{np.corrcoef(engine, sim)[0, 1]:.3f}"
    assert table.loc["TMV (cm³)", "Mean difference"] == f"{(sim - engine).mean():,.1f}"  # simulated - engine
    (spec,) = figure_specs(at)
    assert spec["layout"]["title"]["text"] == "Bland–Altman: TMV (cm³), simulated vs msmv (n = 12)"
    points = [t for t in spec["data"] if t["type"] == "scattergl"]
    assert sum(len(t["x"]) for t in points) == 12


def test_an_anonymous_visitor_gets_a_density_and_no_eid(two_sources, monkeypatch):
    at = _run(two_sources, monkeypatch, anonymous=True)
    (spec,) = figure_specs(at)
    assert {t["type"] for t in spec["data"] if t.get("mode") != "lines"} == {"heatmap"}
    assert eid_hits(rendered_bytes(at), EIDS) == set()
    assert "Sign in to see each participant as a point." in [i.value for i in at.info]


def test_the_sidebar_metric_source_follows_the_url(two_sources, monkeypatch):
    at = _run(two_sources, monkeypatch, metrics="simulated")
    choice = at.selectbox(key="msmv_filter_metrics")
    assert choice.value == "simulated" and choice.options == ["Preferred per participant", "msmv (MSMV engine)",
                                                              "simulated (simulated)"]
