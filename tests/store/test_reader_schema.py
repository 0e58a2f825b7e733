from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from store.errors import QueryTimeoutError
from store.home import Home
from store.reader import Reader
from store.schema import SCHEMA_VERSION, migrate, schema_version
from store.structures import STRUCTURES
from store.writer import Writer
from tests.store.conftest import metric_rows


def test_migrations_run_once_and_load_the_structure_table() -> None:
    con = duckdb.connect()
    assert schema_version(con) == 0
    assert migrate(con) == SCHEMA_VERSION
    assert migrate(con) == SCHEMA_VERSION  # forward-only and idempotent
    rows = con.execute("SELECT label, key, name, compartment, is_muscle FROM structures ORDER BY label").fetchall()
    assert rows == [(s.label, s.key, s.name, s.compartment, s.is_muscle) for s in STRUCTURES]
    assert con.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone() == ("0",)


def test_reader_reads_long_metrics_with_structure_names_and_rejects_unknown_columns(home: Home) -> None:
    with Writer(home) as w:
        w.commit_subject(1, metric_rows(1, volume=2.0), [], {"kind": "a"})
        w.commit_subject(2, metric_rows(2, volume=3.0), [], {"kind": "b"})
        w.commit_subject(2, metric_rows(2, volume=4.0), [], {"kind": "c"}, source="rerun")
    with Reader(home) as r:
        long = r.structure_metrics([2])
        assert len(long) == 54 and set(long["source"]) == {"rerun"}  # the latest set is current
        assert set(long["volume_cm3"]) == {4.0}
        assert long.loc[long["label"] == 21, ["key", "name", "compartment"]].iloc[0].tolist() == [
            "biceps_femoris", "Biceps femoris", "posterior"]  # fmt: skip
        assert len(r.structure_metrics([2], all_sources=True)) == 108
        assert r.participants(columns=["eid", "tmv_cm3"])["tmv_cm3"].tolist() == [100.0, 200.0]
        assert r.count() == 2 and not r.is_simulated()
        with pytest.raises(ValueError, match=r"unknown column\(s\) \['tmv'\]"):
            r.participants(columns=["eid", "tmv"])


def test_reader_stops_a_query_over_its_time_limit(home: Home) -> None:
    with Writer(home) as w:
        w.add_job("/x.zip")
    with Reader(home, timeout_s=0.2) as r, pytest.raises(QueryTimeoutError, match="longer than 0.2 s"):
        r.query("SELECT count(*) FROM range(100000000000) a")


def test_participants_frame_has_the_dtypes_duckdb_gives(home: Home, tmp_path: Path) -> None:
    from tests.store.conftest import write_phenotypes

    people = [{"eid": 1, "sex": 1, "age": 60, "visit_date": "2016-01-02", "falls_code": 1, "centre": 11025},
              {"eid": 2, "sex": 0, "age": 61, "falls_code": None}]  # fmt: skip
    with Writer(home) as w:
        w.import_phenotypes(write_phenotypes(tmp_path / "p.csv", people))
        w.commit_subject(1, metric_rows(1), [], {"kind": "a"})
    with Reader(home) as r:
        fast = r.participants()
        reference = r.query("SELECT * FROM participant_wide ORDER BY eid")  # DuckDB's own .df()
    pd.testing.assert_frame_equal(fast, reference)
    assert str(fast["sex"].dtype) == "int32" and str(fast["falls"].dtype) == "Int32"
    assert str(fast["visit_date"].dtype) == "datetime64[us]" and fast["has_imaging"].tolist() == [True, False]
