"""Every metric source is kept side by side; a preference order of kinds picks each participant's default."""

from __future__ import annotations

import math

import pytest

from store.filters import CohortFilter
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import metric_rows, write_metrics_csv

ENGINE = {"kind": "engine", "input_sha256": "pkg"}
WIDE = ["eid", "tmv_cm3", "has_imaging", "metric_source", "metric_source_kind"]


def _simulated_then_engine(home, tmp_path) -> None:
    """Participants 1 and 2 simulated at 10 cm³ a structure side; the engine then measures 1 at 12 cm³."""
    rows = [(eid, m["structure"], m["side"], 10.0, 0.1) for eid in (1, 2) for m in metric_rows(eid)]
    with Writer(home) as w:
        w.import_metrics(write_metrics_csv(tmp_path / "sim.csv", rows), source="simulated", simulated=True)
        w.commit_subject(1, metric_rows(1, 12.0), [], ENGINE)


def _wide(home, flt: CohortFilter | None = None) -> list[dict]:
    with Reader(home) as r:
        return r.participants(flt, columns=WIDE).to_dict("records")


def test_an_engine_commit_after_a_simulated_import_keeps_both_and_is_preferred(home, tmp_path):
    _simulated_then_engine(home, tmp_path)
    # TMV: 25 muscles x 2 sides x the structure volume
    assert _wide(home) == [
        {"eid": 1, "tmv_cm3": 600.0, "has_imaging": True, "metric_source": "msmv", "metric_source_kind": "engine"},
        {"eid": 2, "tmv_cm3": 500.0, "has_imaging": True, "metric_source": "simulated",
         "metric_source_kind": "simulated"},
    ]
    with Reader(home) as r:
        both = r.structure_metrics([1], all_sources=True)
        assert both.groupby("source")["volume_cm3"].agg(["size", "max"]).to_dict("index") == {
            "msmv": {"size": 54, "max": 12.0}, "simulated": {"size": 54, "max": 10.0}}
        assert set(r.structure_metrics([1])["source"]) == {"msmv"}
        assert set(r.structure_metrics([1], source="simulated")["volume_cm3"]) == {10.0}
        sources = r.metric_sources()
    assert sources[["source", "source_kind", "simulated", "participants"]].to_dict("records") == [
        {"source": "msmv", "source_kind": "engine", "simulated": False, "participants": 1},
        {"source": "simulated", "source_kind": "simulated", "simulated": True, "participants": 2},
    ]


def test_the_preference_setting_changes_the_wide_table(home, tmp_path, monkeypatch):
    _simulated_then_engine(home, tmp_path)
    monkeypatch.setenv("MSMV_SOURCE_PREFERENCE", "simulated")  # the other kinds follow in the default order
    with Writer(home):  # the writer rebuilds the wide table for the new order when it opens
        pass
    assert [(r["eid"], r["tmv_cm3"], r["metric_source"]) for r in _wide(home)] == [
        (1, 500.0, "simulated"), (2, 500.0, "simulated")]
    with Reader(home) as r:
        assert set(r.structure_metrics([1])["source"]) == {"simulated"}
        assert list(r.metric_sources()["source"]) == ["simulated", "msmv"]


def test_a_chosen_metric_source_shows_its_values_and_leaves_the_others_stored(home, tmp_path):
    _simulated_then_engine(home, tmp_path)
    by_sim = _wide(home, CohortFilter(metric_source="simulated"))
    assert [(r["eid"], r["tmv_cm3"], r["metric_source"]) for r in by_sim] == [(1, 500.0, "simulated"),
                                                                            (2, 500.0, "simulated")]
    by_engine = _wide(home, CohortFilter(metric_source="msmv"))
    assert [(r["eid"], r["has_imaging"]) for r in by_engine] == [(1, True), (2, False)]
    assert by_engine[0]["tmv_cm3"] == 600.0 and math.isnan(by_engine[1]["tmv_cm3"])
    with Reader(home) as r:
        assert r.count(CohortFilter(metric_source="msmv")) == 2
    flt = CohortFilter(metric_source="ukb,2024")
    assert CohortFilter.from_query_params(flt.to_query_params()) == flt
    assert CohortFilter.from_json(flt.to_json()) == flt


def test_within_a_kind_the_latest_written_is_the_default(home, tmp_path):
    row = [(7, m["structure"], m["side"], 10.0, None) for m in metric_rows(7)]
    later = [(7, m["structure"], m["side"], 20.0, None) for m in metric_rows(7)]
    with Writer(home) as w:
        w.import_metrics(write_metrics_csv(tmp_path / "a.csv", row), source="site_a")
        w.import_metrics(write_metrics_csv(tmp_path / "b.csv", later), source="site_b")
    assert [(r["tmv_cm3"], r["metric_source"], r["metric_source_kind"]) for r in _wide(home)] == [
        (1000.0, "site_b", "metrics-import")]


def test_artifacts_of_different_sources_do_not_replace_each_other(home, tmp_path):
    engine_labels = {"kind": "labels", "path": "/a/7/labels.nrrd", "sha256": "e"}
    imported = {"kind": "labels", "path": "/a/7/import-musclemap/labels.nrrd", "sha256": "i"}
    with Writer(home) as w:
        w.commit_subject(7, metric_rows(7), [engine_labels], ENGINE)
        w.commit_subject(7, metric_rows(7, 11.0), [imported], {"kind": "label-import", "input_sha256": "mm"},
                         source="musclemap", kind="label-import")
        w.commit_subject(7, metric_rows(7), [{**engine_labels, "sha256": "e2"}], ENGINE)  # replaces its own only
    with Reader(home) as r:
        arts = r.artifacts(7)
        assert sorted(arts[["source", "path", "sha256"]].itertuples(index=False, name=None)) == [
            ("msmv", "/a/7/labels.nrrd", "e2"), ("musclemap", "/a/7/import-musclemap/labels.nrrd", "i")]
        assert list(r.artifacts(7, source="musclemap")["sha256"]) == ["i"]
        assert list(r.imaging_provenance(7)[["source", "source_kind"]].itertuples(index=False, name=None)) == [
            ("msmv", "engine")]


def test_an_unknown_kind_is_refused_before_anything_is_stored(home, tmp_path):
    with Writer(home) as w:
        with pytest.raises(ValueError, match=r"source kind must be one of engine, label-import, metrics-import, "
                                             r"simulated, found 'amra'"):
            w.commit_subject(7, metric_rows(7), [], ENGINE, kind="amra")
        assert w.con.execute("SELECT count(*) FROM metric_sets").fetchone()[0] == 0
