"""Withdrawals: a withdrawn participant leaves no trace but the withdrawal record; imports refuse them."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.cli import main as msmv
from store import snapshot
from store.reader import Reader
from store.structures import STRUCTURES
from store.withdrawals import REFUSED_REASON, read_withdrawal_file
from store.writer import Writer
from tests.store.conftest import metric_rows, write_metrics_csv, write_phenotypes

GONE, KEPT = 5550123, 1001
MARK = "ZQWITHDRAWNCENTRE"  # a text value only the withdrawn participant has
PKG_SHA = "f00dfeed" * 8


def _store_files(home) -> list:
    files = [home.store_db, *(p for _, p in snapshot.available(home))]
    return [p for p in files if p.exists()]


def _populate(home, tmp_path) -> None:
    phen = write_phenotypes(tmp_path / "p.csv", [
        {"eid": GONE, "sex": 1, "age": 61, "centre": MARK, "height_cm": 180},
        {"eid": KEPT, "sex": 0, "age": 55, "centre": "11010", "height_cm": 170},
        {"eid": GONE, "sex": 1},  # a duplicate: the error report names the eid
    ])
    art = home.artifact_dir(GONE, 2)
    art.mkdir(parents=True)
    (art / "labels.nrrd").write_bytes(b"labels")
    package = home.root / "packages" / f"{PKG_SHA}.zip"
    package.parent.mkdir(parents=True)
    package.write_bytes(b"zip")
    with Writer(home) as w:
        w.import_phenotypes(phen)
        for eid in (GONE, KEPT):
            w.commit_subject(eid, metric_rows(eid), [{"kind": "labels", "path": str(art / "labels.nrrd"),
                                                      "sha256": "s"}] if eid == GONE else [],
                             {"kind": "engine", "input_sha256": PKG_SHA if eid == GONE else "keptsha"})
        job = w.add_job(package, eid=GONE, input_sha256=PKG_SHA)
        w.update_job(job, status="done")
    (home.inbox / f"{GONE}_20201_3_0.zip").write_bytes(b"queued repeat visit")


def test_a_withdrawn_participant_leaves_no_trace_but_the_record(home, tmp_path, capsys):
    _populate(home, tmp_path)
    error_reports = list(home.store_db.parent.glob("import-errors-*.csv"))
    assert len(error_reports) == 1 and str(GONE) in error_reports[0].read_text()
    assert any(MARK.encode() in p.read_bytes() for p in _store_files(home))
    listing = tmp_path / "w.txt"
    listing.write_text(f"# withdrawals 2025-01\n\n{GONE}\n{GONE}  # twice\nnot-an-eid\n")

    assert msmv(["--home", str(home.root), "withdraw", str(listing)]) == 1  # a bad line is reported
    out = capsys.readouterr()
    assert "line 5: 'not-an-eid' is not a participant ID" in out.err
    assert "withdrew 1 participant(s)" in out.out

    for path in _store_files(home):
        data = path.read_bytes()
        assert MARK.encode() not in data and PKG_SHA.encode() not in data and str(GONE).encode() not in data, path
    assert len(snapshot.available(home)) == 1
    assert not home.artifact_dir(GONE).exists()
    assert not (home.root / "packages" / f"{PKG_SHA}.zip").exists()
    assert list(home.inbox.iterdir()) == []
    assert str(GONE) not in error_reports[0].read_text()
    with Reader(home) as r:
        assert r.withdrawn()["eid"].tolist() == [GONE]
        assert r.participants(columns=["eid"])["eid"].tolist() == [KEPT]
        assert r.structure_metrics()["eid"].unique().tolist() == [KEPT]
        assert r.jobs().empty and r.artifacts(GONE).empty
        assert r.provenance()["input_sha256"].tolist() == ["keptsha"]
        for table in ("participants", "structure_metrics", "metric_sets", "artifacts", "jobs", "visit_dates",
                      "phenotype_instances", "participant_wide"):
            assert r.query(f"SELECT count(*) AS n FROM {table} WHERE eid = ?", [GONE])["n"][0] == 0, table


def test_later_imports_refuse_a_withdrawn_participant(home, tmp_path):
    _populate(home, tmp_path)
    with Writer(home) as w:
        w.withdraw([GONE])
        phen = w.import_phenotypes(write_phenotypes(tmp_path / "p2.csv", [
            {"eid": GONE, "sex": 1, "age": 61, "centre": MARK}, {"eid": KEPT, "sex": 0, "age": 56}]))
        rows = [(e, s.label, side, 10.0, 0.1) for e in (GONE, KEPT) for s in STRUCTURES for side in ("L", "R")]
        metrics = w.import_metrics(write_metrics_csv(tmp_path / "m.csv", rows))
        with pytest.raises(Exception, match=f"participant {GONE} withdrew from UK Biobank"):
            w.commit_subject(GONE, metric_rows(GONE), [], {"kind": "engine"}, instance=3)
    assert phen.rows_imported == 1
    assert phen.errors.to_dict("records") == [{"row": 1, "column": "eid", "value": None, "reason": REFUSED_REASON}]
    assert metrics.rows_imported == 54
    assert set(metrics.errors["reason"]) == {REFUSED_REASON} and len(metrics.errors) == 54
    assert metrics.errors["value"].isna().all()
    with Reader(home) as r:
        assert r.participants(columns=["eid"])["eid"].tolist() == [KEPT]
        assert r.structure_metrics()["eid"].unique().tolist() == [KEPT]
    # the refusals' error reports name rows, never the eid or the participant's values
    for report in home.store_db.parent.glob("import-errors-*.csv"):
        text = report.read_text()
        assert str(GONE) not in text and MARK not in text


def test_withdrawal_file_parsing(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("\ufeff1000001\n 1000002 \n#c\n\n-5\n1.5\n1000001\n")
    eids, problems = read_withdrawal_file(path)
    assert eids == [1000001, 1000002]
    assert problems == ["line 5: '-5' is not a participant ID (a positive whole number)",
                        "line 6: '1.5' is not a participant ID (a positive whole number)"]
    with pytest.raises(FileNotFoundError, match="no such withdrawal file"):
        read_withdrawal_file(tmp_path / "missing.txt")


def test_withdrawing_twice_keeps_the_first_date(home):
    with Writer(home) as w:
        w.withdraw([42])
        first = w.withdrawn()
        w.withdraw([42])
        assert w.withdrawn().equals(first)
    assert isinstance(first["withdrawn_on"][0], pd.Timestamp)
