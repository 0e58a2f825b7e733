"""A store built by an earlier release opens with today's Writer and is upgraded with its data intact."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb

from store import schema
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import metric_rows

# The schema of commit 0181d55 (version 1), kept as the DDL that release executed.
SCHEMA_V1 = Path(__file__).with_name("fixtures") / "schema_v1.sql"
T0 = datetime(2024, 5, 1, 12, 0)


def _old_store(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_V1.read_text(encoding="utf-8"))
    con.execute("""INSERT INTO participants (eid, sex, age, height_cm, visit_date, source, simulated, imported_at)
                VALUES (1001, 1, 63.5, 178.0, DATE '2016-04-05', 'ukb', false, ?),
                       (1002, 0, 58.0, 165.0, NULL, 'ukb', false, ?)""", [T0, T0])
    con.execute("INSERT INTO provenance VALUES (1, 'engine', 'pkgsha', 'modelsha', '0.1', NULL, ?)", [T0])
    con.executemany("INSERT INTO structure_metrics VALUES (1001, ?, ?, ?, ?, 'msmv', 1)",
                    [(m["structure"], m["side"], 10.0, 0.1) for m in metric_rows(1001)])
    con.execute("INSERT INTO metric_sets VALUES (1001, 'msmv', false, 1, ?)", [T0])
    # simulated values of the same participant written later: before V6 the latest written was current
    con.executemany("INSERT INTO structure_metrics VALUES (1001, ?, ?, 20.0, NULL, 'simulated', NULL)",
                    [(m["structure"], m["side"]) for m in metric_rows(1001)])
    con.execute("INSERT INTO metric_sets VALUES (1001, 'simulated', true, NULL, ?)", [datetime(2024, 6, 1)])
    con.execute("INSERT INTO artifacts VALUES (1001, 'labels', '/old/1001/labels.nrrd', 'sha', 1, ?)", [T0])
    con.execute("""INSERT INTO jobs (job_id, eid, input_path, input_sha256, status, attempts, created, updated)
                VALUES ('j1', 1001, '/p/a.zip', 'pkgsha', 'done', 1, ?, ?),
                       ('j2', NULL, '/p/b.zip', 'other', 'queued', 0, ?, ?)""", [T0, T0, T0, T0])
    con.execute("INSERT INTO meta VALUES ('wide_definition', 'from-an-older-release')")
    con.close()


def test_the_fixture_is_the_first_schema_version():
    con = duckdb.connect()
    con.execute(SCHEMA_V1.read_text(encoding="utf-8"))
    assert schema.schema_version(con) == 1
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "withdrawals" not in tables and "imports" not in tables and "structure_metrics" in tables


def test_a_version_1_store_opens_upgraded_with_its_rows(home):
    _old_store(home.store_db)
    with Writer(home) as w:
        assert schema.schema_version(w.con) == schema.SCHEMA_VERSION
        jobs = w.jobs().set_index("job_id")
        # a second visit now commits beside the first instead of replacing it
        w.commit_subject(1001, metric_rows(1001, 12.0), [], {"kind": "engine", "input_sha256": "repeat"},
                         instance=3)
    assert jobs.loc["j1", "instance"] == 2 and jobs.loc["j1", "status"] == "done"
    assert jobs.loc["j2"].isna()["instance"]  # no eid yet: no instance either
    with Reader(home) as r:
        m = r.structure_metrics([1001])
        assert sorted(m.groupby("instance").size().items()) == [(2, 54), (3, 54)]
        assert set(m.loc[m["instance"] == 2, "volume_cm3"]) == {10.0}
        assert list(r.artifacts(1001)[["instance", "path"]].itertuples(index=False, name=None)) == [
            (2, "/old/1001/labels.nrrd")]
        assert list(r.provenance([1])["input_sha256"]) == ["pkgsha"]
        # V6: each set's kind from its simulated flag and provenance; the artifact belongs to the engine's source
        assert r.metric_sources()[["source", "source_kind"]].to_dict("records") == [
            {"source": "msmv", "source_kind": "engine"}, {"source": "simulated", "source_kind": "simulated"}]
        assert list(r.artifacts(1001)["source"]) == ["msmv"]
        assert set(r.structure_metrics([1001], source="simulated")["volume_cm3"]) == {20.0}
        wide = r.participants(columns=["eid", "age", "height_cm", "tmv_cm3", "imaging_instance"])
        dates = r.visit_dates(1001)
        assert r.visit_dates(1002).empty
        assert r.withdrawn().empty
    assert wide.to_dict("records")[0] == {"eid": 1001, "age": 63.5, "height_cm": 178.0, "tmv_cm3": 500.0,
                                          "imaging_instance": 2}
    assert wide["eid"].tolist() == [1001, 1002]
    assert [(int(i), d.date()) for i, d in zip(dates["instance"], dates["visit_date"], strict=True)] == [
        (2, date(2016, 4, 5))]


def test_upgrading_twice_changes_nothing(home):
    _old_store(home.store_db)
    with Writer(home) as w:
        first = w.version
    with Writer(home) as w:
        assert w.version == first
        assert w.con.execute("SELECT count(*) FROM visit_dates").fetchone()[0] == 1
