"""QC from a real store: provenance details written by commit_subject, `msmv qc`, exports' QC columns and
the exclude_qc filter."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.cli import main
from engine.quality import qc_columns, stored_report
from store.export import export
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import metric_rows, write_phenotypes

REFERENCE = range(100, 112)  # twelve men aged 60 with ordinary volumes
PROBLEM, CLEAN, OLD = 1, 2, 3  # swapped + cut piriformis; clean; processed before QC was recorded


@pytest.fixture(scope="module")
def qc_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("qc")
    h = make_home(tmp / "msmv")
    people = [{"eid": e, "sex": 1, "age": 60, "height_cm": 175, "weight_kg": 80} for e in (PROBLEM, CLEAN, OLD, *REFERENCE)]
    prov = {PROBLEM: {"swapped_stations": [4], "touches_edge": [9, 27], "low_confidence_share": 0.02},
            CLEAN: {"swapped_stations": [], "touches_edge": [27], "low_confidence_share": 0.02},
            OLD: {"tmv_cm3": 250.0}}
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", people), source="ukb", simulated=False)
        for i, e in enumerate(REFERENCE):
            w.commit_subject(e, metric_rows(e, volume=9.0 + i % 3), [], {"kind": "engine", "input_sha256": str(e)})
        for e, details in prov.items():
            w.commit_subject(e, metric_rows(e, volume=10.0), [], {"kind": "engine", "input_sha256": str(e),
                                                                  "details": details})
    return h


def test_stored_results_get_their_flags(qc_home):
    with Reader(qc_home) as r:
        report = stored_report(r)
    assert len(report.subjects) == 15
    got = sorted(zip(report.flags["eid"], report.flags["code"], report.flags["structure"], strict=True))
    assert got == [(PROBLEM, "swap_corrected", ""), (PROBLEM, "touches_edge", "piriformis")]


def test_msmv_qc_lists_the_flagged_subject(qc_home, capsys):
    assert main(["--home", str(qc_home.root), "qc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imaged"] == 15 and out["flagged"] == 1
    assert [s["eid"] for s in out["subjects"]] == [PROBLEM]
    assert sorted(f["code"] for f in out["subjects"][0]["flags"]) == ["swap_corrected", "touches_edge"]
    assert main(["--home", str(qc_home.root), "qc"]) == 0
    text = capsys.readouterr().out
    assert "1 of 15 imaged subjects flagged" in text and "fat-water swap corrected in station 4" in text


def test_exports_carry_qc_columns_and_exclude_on_request(qc_home, tmp_path):
    with Reader(qc_home) as r:
        report = stored_report(r)
        qc = qc_columns(report, report.subjects["eid"])
        export(r, tmp_path / "all.csv", qc=qc)
        export(r, tmp_path / "kept.csv", CohortFilter(exclude_qc=True), qc=qc)
        with pytest.raises(ValueError, match="no QC table"):
            export(r, tmp_path / "x.csv", CohortFilter(exclude_qc=True))
    every = pd.read_csv(tmp_path / "all.csv", keep_default_na=False).set_index("eid")
    assert every.loc[PROBLEM, "qc_flag_count"] == 2
    assert every.loc[PROBLEM, "qc_flags"] == "touches_edge(piriformis); swap_corrected"
    assert every.loc[CLEAN, "qc_flag_count"] == 0 and every.loc[CLEAN, "qc_flags"] == ""
    kept = pd.read_csv(tmp_path / "kept.csv")
    assert PROBLEM not in set(kept["eid"]) and len(kept) == 14
    dictionary = pd.read_csv(tmp_path / "all.dictionary.csv").set_index("column")
    assert {"qc_flag_count", "qc_flags"} <= set(dictionary.index)


def test_cli_export_honours_exclude_qc(qc_home, tmp_path):
    flt = tmp_path / "filter.json"
    flt.write_text(json.dumps({"exclude_qc": True}))
    assert main(["--home", str(qc_home.root), "export", "--out", str(tmp_path / "c.csv"), "--filters", str(flt)]) == 0
    kept = pd.read_csv(tmp_path / "c.csv")
    assert sorted(kept["eid"]) == sorted([CLEAN, OLD, *REFERENCE]) and "qc_flags" in kept.columns


def test_filter_round_trips_exclude_qc():
    f = CohortFilter(sex=(1,), exclude_qc=True)
    assert f.to_query_params() == {"sex": "1", "qc": "exclude"}
    assert CohortFilter.from_query_params({"qc": "exclude"}) == CohortFilter(exclude_qc=True)
    assert CohortFilter.from_json(f.to_json()) == f and not f.is_empty and CohortFilter().to_json() == "{}"
    with pytest.raises(ValueError, match="expected 'exclude'"):
        CohortFilter.from_query_params({"qc": "yes"})
    with pytest.raises(TypeError, match="true or false"):
        CohortFilter(exclude_qc="yes")  # type: ignore[arg-type]
