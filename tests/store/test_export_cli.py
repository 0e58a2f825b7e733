"""Exports (CSV/Parquet + dictionary + sidecar) and the store CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from store.export import DEFAULT_EXPORT_COLUMNS, export
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.metrics import data_dictionary
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import metric_rows, write_phenotypes

PEOPLE = [
    {"eid": 1, "sex": 1, "age": 55, "height_cm": 180, "weight_kg": 80, "grip_left_kg": 30, "grip_right_kg": 20,
     "visit_date": "2016-01-01", "falls_code": 1, "centre": 11025},
    {"eid": 2, "sex": 0, "age": 65, "height_cm": 160, "weight_kg": 70, "grip_left_kg": 15, "visit_date": "2016-01-01",
     "death_date": "2018-01-01", "centre": 11026},
    {"eid": 3, "sex": 0, "age": 72, "height_cm": 165, "weight_kg": 60, "falls_code": 3, "centre": 11025},
    {"eid": 4, "sex": 1, "age": 68, "height_cm": 175, "weight_kg": 95, "grip_left_kg": 40, "centre": 11026},
]  # fmt: skip


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("export")
    h = make_home(tmp / "msmv")
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", PEOPLE), source="simulated", simulated=True)
        w.commit_subject(2, metric_rows(2, volume=50.0), [], {"kind": "test"}, simulated=True)
    return h


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_reads_back_equal_to_the_store(store_home: Home, tmp_path: Path, suffix: str) -> None:
    flt = CohortFilter(sex=(0,), age=(60, 80))
    out = tmp_path / f"cohort{suffix}"
    with Reader(store_home) as r:
        result = export(r, out, filters=flt)
        expected = r.participants(flt, columns=list(DEFAULT_EXPORT_COLUMNS))
    got = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(got.columns) == list(DEFAULT_EXPORT_COLUMNS)
    assert got["eid"].tolist() == [2, 3] == expected["eid"].tolist()
    for col in DEFAULT_EXPORT_COLUMNS:
        a, b = got[col], expected[col]
        if col == "simulated":
            assert [str(v).lower() for v in a] == [str(v).lower() for v in b] == ["true", "true"]
            continue
        if col in ("metric_source", "metric_source_kind", "compartment_level"):  # text and flags, as stored
            assert a.isna().tolist() == b.isna().tolist(), col
            assert [str(v).lower() for v in a[a.notna()]] == [str(v).lower() for v in b[b.notna()]], col
            continue
        assert a.isna().tolist() == b.isna().tolist(), col
        assert pd.to_numeric(a[a.notna()]).tolist() == pytest.approx(pd.to_numeric(b[b.notna()]).tolist()), col
    assert got.loc[0, "died"] == 1 and pd.isna(got.loc[1, "died"])  # eid 3 has no visit date: unknown
    assert got.loc[0, "tmv_cm3"] == pytest.approx(50.0 * 50)
    if suffix == ".csv":
        text = out.read_text().splitlines()
        assert text[2].split(",")[DEFAULT_EXPORT_COLUMNS.index("died")] == ""  # empty, not NaN
        assert text[1].split(",")[DEFAULT_EXPORT_COLUMNS.index("sex")] == "0"  # integer, not 0.0
    dictionary = pd.read_csv(result.dictionary_path)
    ref = data_dictionary().set_index("column").loc[list(DEFAULT_EXPORT_COLUMNS)].reset_index()
    assert dictionary["column"].tolist() == ref["column"].tolist()
    assert dictionary["definition"].tolist() == ref["definition"].tolist()
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["rows"] == 2 and sidecar["store_version"] == r.version
    assert CohortFilter.from_json(json.dumps(sidecar["filters"])) == flt
    assert sidecar["simulated"] is True and sidecar["software_version"]


def test_export_rejects_unknown_columns_and_formats(store_home: Home, tmp_path: Path) -> None:
    with Reader(store_home) as r:
        with pytest.raises(ValueError, match=r"unknown export column\(s\) \['shoe_size'\]"):
            export(r, tmp_path / "x.csv", columns=["eid", "shoe_size"])
        with pytest.raises(ValueError, match=r"must end in .csv or .parquet, found 'x.xlsx'"):
            export(r, tmp_path / "x.xlsx")


def test_cli_status_export_and_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "home"
    monkeypatch.setenv("MSMV_HOME", str(root))  # `--home` sets it; monkeypatch restores it afterwards
    assert main(["--home", str(root), "status", "--quiet"]) == 1
    assert capsys.readouterr().out == ""
    assert main(["--home", str(root), "status"]) == 1
    assert "msmv demo" in capsys.readouterr().err

    phen = write_phenotypes(tmp_path / "p.csv", [*PEOPLE, {"eid": "bad", "sex": 1}])
    assert main(["--home", str(root), "import-phenotypes", str(phen), "--source", "ukb"]) == 0
    out = capsys.readouterr().out
    assert "imported 4" in out and "1 problems" in out and "eid: eid is not an integer" in out
    metrics = tmp_path / "m.csv"
    metrics.write_text("eid,structure,side,volume_cm3\n1,femur,left,300\n1,femur,up,300\n")
    assert main(["--home", str(root), "import-metrics", str(metrics)]) == 0
    assert "unknown side" in capsys.readouterr().out

    assert main(["--home", str(root), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["participants"], status["with_imaging"], status["simulated"]) == (4, 1, False)

    flt = tmp_path / "f.json"
    flt.write_text(CohortFilter(sex=(1,)).to_json())
    out_csv = tmp_path / "e" / "men.csv"
    assert main(["--home", str(root), "export", "--out", str(out_csv), "--filters", str(flt),
                 "--columns", "eid,sex,vol_femur_left_cm3"]) == 0  # fmt: skip
    got = pd.read_csv(out_csv)
    assert got.columns.tolist() == ["eid", "sex", "vol_femur_left_cm3"]
    assert got["eid"].tolist() == [1, 4] and got["vol_femur_left_cm3"].tolist()[0] == 300.0
    assert (tmp_path / "e" / "men.dictionary.csv").is_file() and (tmp_path / "e" / "men.json").is_file()


def test_cli_reports_a_missing_file_as_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSMV_HOME", str(tmp_path / "h"))
    assert main(["--home", str(tmp_path / "h"), "import-metrics", str(tmp_path / "nope.csv")]) == 2
    assert "no such metrics file" in capsys.readouterr().err


def test_cli_bad_input_is_a_message_not_a_traceback(store_home: Home, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSMV_HOME", str(store_home.root))
    assert main(["--home", str(store_home.root), "export", "--out", str(tmp_path / "x.csv"), "--columns", "eid,nope"]) == 2
    assert "msmv export: error: unknown export column(s) ['nope']" in capsys.readouterr().err
    bad = tmp_path / "f.json"
    bad.write_text('{"sex": [1], "height": [1, 2]}')
    assert main(["--home", str(store_home.root), "export", "--out", str(tmp_path / "x.csv"), "--filters", str(bad)]) == 2
    assert "unknown cohort filter key(s) ['height']" in capsys.readouterr().err


def test_cli_aggregate_export_suppresses_small_counts(store_home: Home, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MSMV_HOME", str(store_home.root))
    out = tmp_path / "agg.csv"
    assert main(["export", "--out", str(out), "--aggregate", "sex", "--columns", "age", "--min-count", "3"]) == 0
    table = pd.read_csv(out, dtype=str).set_index("sex")
    assert table.loc["0", "n"] == "<3" and table.loc["1", "n"] == "<3"  # 2 women, 2 men: both suppressed
    assert table["mean_age"].isna().all()
    out2 = tmp_path / "agg2.csv"
    assert main(["export", "--out", str(out2), "--aggregate", "sex", "--columns", "age", "--min-count", "0"]) == 0
    raw = pd.read_csv(out2).set_index("sex")
    assert raw.loc[0, "n"] == 2 and raw.loc[0, "mean_age"] == pytest.approx((65 + 72) / 2)
    assert json.loads(out2.with_suffix(".json").read_text())["small_count_threshold"] is None
