"""Repeat imaging: results keyed by eid and instance; the cohort uses one visit per participant."""

from __future__ import annotations

import pytest

from store.reader import Reader
from store.structures import STRUCTURES
from store.writer import Writer
from tests.store.conftest import metric_rows, write_metrics_csv, write_phenotypes

PROV = {"kind": "engine", "input_sha256": "abc", "model_sha256": "m", "code_version": "t"}
N_ROWS = 2 * len(STRUCTURES)


def _commit(w: Writer, eid: int, volume: float, instance: int) -> None:
    w.commit_subject(eid, metric_rows(eid, volume), [{"kind": "labels", "path": f"/x/{eid}/{instance}/labels.nrrd",
                                                      "sha256": "s"}], {**PROV, "input_sha256": f"pkg{instance}"},
                     instance=instance)


def test_a_repeat_visit_no_longer_replaces_the_first(home):
    with Writer(home) as w:
        _commit(w, 1001, 10.0, 2)
        _commit(w, 1001, 12.0, 3)
        _commit(w, 1001, 12.5, 3)  # redoing the repeat visit replaces only that visit's rows
    with Reader(home) as r:
        m = r.structure_metrics([1001])
        assert sorted(m.groupby("instance").size().items()) == [(2, N_ROWS), (3, N_ROWS)]
        assert set(m.loc[m["instance"] == 2, "volume_cm3"]) == {10.0}
        assert set(m.loc[m["instance"] == 3, "volume_cm3"]) == {12.5}
        arts = r.artifacts(1001)
        assert list(arts["instance"]) == [2, 3]
        assert list(r.artifacts(1001, 3)["path"]) == ["/x/1001/3/labels.nrrd"]
        wide = r.participants(columns=["eid", "tmv_cm3", "imaging_instance"])
    # the cohort shows the first imaging visit: 25 muscles x 2 sides x 10 cm³
    assert wide.to_dict("records") == [{"eid": 1001, "tmv_cm3": 500.0, "imaging_instance": 2}]


def test_cohort_visit_setting_picks_the_repeat_visit(home, monkeypatch):
    with Writer(home) as w:
        _commit(w, 1001, 10.0, 2)
        _commit(w, 1001, 12.0, 3)
        _commit(w, 1002, 8.0, 2)  # imaged once
    monkeypatch.setenv("MSMV_COHORT_VISIT", "3")
    with Writer(home):  # the wide table is rebuilt for the new definition when the writer opens
        pass
    with Reader(home) as r:
        wide = r.participants(columns=["eid", "tmv_cm3", "imaging_instance", "has_imaging"])
    rows = wide.to_dict("records")
    assert rows[0] == {"eid": 1001, "tmv_cm3": 600.0, "imaging_instance": 3, "has_imaging": True}
    assert rows[1]["eid"] == 1002 and rows[1]["has_imaging"] is False


def test_metrics_import_reads_the_instance_column(home, tmp_path):
    rows = [(1001, s.label, side, 20.0, 0.1, inst) for inst in ("", 3) for s in STRUCTURES for side in ("L", "R")]
    rows.append((1001, 1, "L", 5.0, 0.1, "x"))
    path = write_metrics_csv(tmp_path / "m.csv", rows, header="eid,structure,side,volume_cm3,fat_fraction,instance")
    with Writer(home) as w:
        report = w.import_metrics(path)
    assert report.rows_imported == 2 * N_ROWS
    assert list(report.errors["reason"]) == ["instance is not a UK Biobank assessment instance (expected 2 or 3)"]
    with Reader(home) as r:
        assert sorted(r.structure_metrics([1001]).groupby("instance").size().items()) == [(2, N_ROWS), (3, N_ROWS)]


def test_phenotype_import_records_each_imaging_visit_date(home, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("eid,53-0.0,53-2.0,53-3.0\n1001,2009-05-01,2015-03-02,2017-08-01\n1002,2008-01-01,2016-01-01,\n")
    with Writer(home) as w:
        w.import_phenotypes(path)
    with Reader(home) as r:
        one = r.visit_dates(1001)
        two = r.visit_dates(1002)
    assert [(int(i), str(d.date())) for i, d in zip(one["instance"], one["visit_date"], strict=True)] == [
        (2, "2015-03-02"), (3, "2017-08-01")]
    assert list(two["instance"]) == [2]  # no repeat visit: no date, and baseline (instance 0) is no imaging visit


@pytest.mark.parametrize("bad", [True, -1, "3"])
def test_commit_refuses_a_bad_instance(home, bad):
    with Writer(home) as w, pytest.raises(ValueError, match="instance must be a UK Biobank assessment instance"):
        w.commit_subject(1001, metric_rows(1001), [], PROV, instance=bad)


def test_write_phenotypes_helper_still_maps_the_first_visit_date(home, tmp_path):
    path = write_phenotypes(tmp_path / "p.csv", [{"eid": 7, "visit_date": "2016-02-03"}])
    with Writer(home) as w:
        w.import_phenotypes(path)
    with Reader(home) as r:
        assert [str(d.date()) for d in r.visit_dates(7)["visit_date"]] == ["2016-02-03"]
