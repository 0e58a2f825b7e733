"""Imports and exports given careless or hostile input: a message and exit 2, never a traceback, and
nothing of the user's overwritten or left half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from store.errors import ExportError
from store.export import SIDECAR_MARKER, export
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import write_phenotypes

PEOPLE = [{"eid": 1, "sex": 1, "age": 55}, {"eid": 2, "sex": 0, "age": 65}, {"eid": 3, "sex": 1, "age": 70}]


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("careless")
    h = make_home(tmp / "msmv")
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", PEOPLE))
    return h


def _cli(home: Home, *args: str) -> int:
    return main(["--home", str(home.root), *args])


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# -- imports --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["import-phenotypes", "import-metrics"])
def test_a_file_of_only_invalid_rows_is_reported_and_exits_2(home: Home, tmp_path: Path, kind: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "all_bad.csv"
    if kind == "import-phenotypes":
        path.write_text("eid,31-0.0\nabc,1\n-3,0\n")
    else:
        path.write_text("eid,structure,side,volume_cm3\nabc,femur,left,3\n-3,femur,left,3\n")
    assert _cli(home, kind, str(path)) == 2
    captured = capsys.readouterr()
    assert f"nothing imported from {path}: all 2 rows have problems" in captured.err
    assert "Traceback" not in captured.err
    report = next(home.store_db.parent.glob("import-errors-*-all_bad.csv"))
    assert str(report) in captured.out
    errors = pd.read_csv(report, dtype=str)
    assert errors["row"].tolist() == ["1", "2"]
    assert errors["reason"].tolist()[0] == "eid is not an integer"
    assert errors["reason"].tolist()[1].startswith("eid is not positive")


@pytest.mark.parametrize("kind", ["import-phenotypes", "import-metrics"])
def test_a_header_only_file_exits_2_with_a_summary(home: Home, tmp_path: Path, kind: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("eid,31-0.0\n" if kind == "import-phenotypes" else "eid,structure,side,volume_cm3\n")
    assert _cli(home, kind, str(path)) == 2
    captured = capsys.readouterr()
    assert "read 0 rows from empty.csv, imported 0" in captured.out
    assert f"nothing imported from {path}: it has a header but no rows" in captured.err


def test_phenotype_eids_that_do_not_fit_are_reported_and_the_rest_imported(home: Home, tmp_path: Path) -> None:
    path = tmp_path / "eids.csv"
    path.write_text("eid,31-0.0\n1e30,1\n5,1\n-3,0\nabc,1\n1.5,0\n99999999999999999999999,1\n6,1e30\n7,0\n")
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    assert (report.rows_read, report.rows_imported) == (8, 3)
    errors = report.errors.set_index("row")
    assert errors.loc[1, "reason"] == "eid is too large (a UK Biobank eid has 7 digits)"
    assert errors.loc[3, "reason"].startswith("eid is not positive")
    assert errors.loc[4, "reason"] == errors.loc[5, "reason"] == "eid is not an integer"
    assert errors.loc[6, "value"] == "99999999999999999999999"
    assert errors.loc[7, ["column", "reason"]].tolist() == ["31-0.0", "code too large (not a UK Biobank code)"]
    with Reader(home) as r:
        got = r.participants(columns=["eid", "sex"]).set_index("eid")["sex"]
    assert got.index.tolist() == [5, 6, 7]
    assert got.loc[5] == 1 and pd.isna(got.loc[6]) and got.loc[7] == 0


def test_metric_eids_that_do_not_fit_are_reported_and_the_rest_imported(home: Home, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("eid,structure,side,volume_cm3\n1e30,femur,left,3\n5,femur,left,3\n"
                    "-3,femur,left,3\n7,femur,left,4\n1.5,femur,left,3\n")
    with Writer(home) as w:
        report = w.import_metrics(path)
    assert (report.rows_read, report.rows_imported) == (5, 2)
    assert report.errors[["row", "column", "reason"]].values.tolist() == [
        [1, "eid", "eid is too large (a UK Biobank eid has 7 digits)"],
        [3, "eid", "eid is not positive"],
        [5, "eid", "eid is not an integer"],
    ]
    with Reader(home) as r:
        assert r.participants(columns=["eid", "vol_femur_left_cm3"])["vol_femur_left_cm3"].tolist() == [3.0, 4.0]


# -- exports: never overwrite an input or someone else's file ------------------------------------
def test_an_export_never_overwrites_its_filter_file(store_home: Home, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    flt = tmp_path / "cohort.json"
    flt.write_text('{"sex": [1]}\n')
    before = flt.read_bytes()
    for extra in ([], ["--force"]):
        assert _cli(store_home, "export", "--out", str(tmp_path / "cohort.csv"), "--filters", str(flt), *extra) == 2
        assert f"the export would overwrite its input {flt}" in capsys.readouterr().err
        assert flt.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.json"]  # no data, dictionary or .tmp
    assert _cli(store_home, "export", "--out", str(tmp_path / "men.csv"), "--filters", str(flt)) == 0
    assert pd.read_csv(tmp_path / "men.csv")["eid"].tolist() == [1, 3]


def test_existing_files_need_force_unless_they_are_an_earlier_export(store_home: Home, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort.csv"
    assert _cli(store_home, "export", "--out", str(out)) == 0
    sidecar = json.loads((tmp_path / "cohort.json").read_text())
    assert sidecar[SIDECAR_MARKER] == 1 and sidecar["file"] == "cohort.csv"
    out.write_text("stale\n")
    assert _cli(store_home, "export", "--out", str(out)) == 0  # an earlier export of that name: replaced
    assert pd.read_csv(out)["eid"].tolist() == [1, 2, 3]

    mine = tmp_path / "mine.dictionary.csv"
    mine.write_text("my own notes\n")
    assert _cli(store_home, "export", "--out", str(tmp_path / "mine.csv")) == 2
    err = capsys.readouterr().err
    assert f"the export would replace {mine}, which is not from an earlier export of mine.csv" in err
    assert "--force" in err
    assert mine.read_text() == "my own notes\n" and not (tmp_path / "mine.csv").exists()
    assert _cli(store_home, "export", "--out", str(tmp_path / "mine.csv"), "--force") == 0
    assert pd.read_csv(mine)["column"].tolist()[0] == "eid"

    # another sidecar of the same stem (a .parquet beside this .csv) is no export of this name
    assert _cli(store_home, "export", "--out", str(tmp_path / "cohort.parquet")) == 2
    assert "not from an earlier export of cohort.parquet" in capsys.readouterr().err
    assert _temporaries(tmp_path) == []


def test_a_sidecar_written_before_the_marker_still_counts_as_an_earlier_export(store_home: Home,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "old.csv"
    out.write_text("eid\n9\n")
    legacy = {"file": "old.csv", "store_version": 1, "snapshot": "s", "software_version": "0", "created": "x"}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    with Reader(store_home) as r:
        export(r, out)
    assert pd.read_csv(out)["eid"].tolist() == [1, 2, 3]
    (tmp_path / "notes.json").write_text(json.dumps({"file": "notes.csv"}))  # the file key alone is not enough
    with Reader(store_home) as r, pytest.raises(ExportError, match=r"would replace .*notes\.json"):
        export(r, tmp_path / "notes.csv")


# -- exports: bad --filters and --out are a message and exit 2 -----------------------------------
@pytest.mark.parametrize(("content", "message"), [
    ('{"age": "abc"}', r"age must be a (low, high) pair or None, found 'abc'"),
    ('{"age": [null, 5]}', "age must be a (low, high) pair of numbers, found None in [None, 5]"),
    ('{"age": ["x", 5]}', "age must be a (low, high) pair of numbers, found 'x' in ['x', 5]"),
    ('{"sex": "x"}', "sex values must be integers, found 'x'"),
    ('{"sex": [1.5]}', "sex values must be integers, found 1.5"),
    ('{"sex": [2]}', "sex values must be 1 male, 0 female, found 2"),
    ('{"centre": [null]}', "centre values must be text, found None"),
    ("{not json", "cohort filter is not valid JSON"),
    ("\xff\xfe", "not UTF-8 text"),
])  # fmt: skip
def test_bad_filter_files_name_the_file(store_home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        content: str, message: str) -> None:
    flt = tmp_path / "f.json"
    flt.write_bytes(content.encode("latin-1"))
    assert _cli(store_home, "export", "--out", str(tmp_path / "x.csv"), "--filters", str(flt)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"msmv export: error: --filters {flt}: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


@pytest.mark.parametrize(("name", "message"), [("missing.json", "no such file"), (".", "not a regular file")])
def test_a_filter_path_that_is_no_file_is_a_message(store_home: Home, tmp_path: Path, name: str, message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(store_home, "export", "--out", str(tmp_path / "x.csv"), "--filters", str(tmp_path / name)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_out_paths_that_cannot_be_written_are_a_message(store_home: Home, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    note = tmp_path / "file.txt"
    note.write_text("a file\n")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    cases = [
        (note / "out.csv", f"cannot write {note / 'out.csv'}: {note} is a file, not a folder"),
        (folder, f"cannot write {folder}: it is a folder"),
        (Path("/sys/msmv-out.csv"), "cannot write /sys/msmv-out.csv: Permission denied"),
        (Path("/sys/msmv-dir/out.csv"), "cannot create the folder /sys/msmv-dir for out.csv"),
    ]
    for out, message in cases:
        for extra in ([], ["--aggregate", "sex"]):
            assert _cli(store_home, "export", "--out", str(out), *extra) == 2, out
            err = capsys.readouterr().err
            assert message in err, err
            assert ".tmp" not in err and "Traceback" not in err
    assert note.read_text() == "a file\n" and list(folder.iterdir()) == []
    assert _temporaries(tmp_path) == [] and not list(Path("/sys").glob(".msmv-out*"))


# -- the filter value itself -----------------------------------------------------------------------
def test_filter_values_of_the_wrong_type_or_value_are_refused() -> None:
    with pytest.raises(TypeError, match=r"age must be a \(low, high\) pair of numbers, found None"):
        CohortFilter(age=(None, 5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sex values must be integers, found True"):
        CohortFilter(sex=(True,))
    with pytest.raises(ValueError, match="bmi must be a .* found NaN"):
        CohortFilter(bmi=(float("nan"), 30))
    with pytest.raises(ValueError, match="sex values must be 1 male, 0 female, found 3"):
        CohortFilter.from_query_params({"sex": "3"})
    assert CohortFilter(sex=(1.0,), age=("50", 60), centre=(11025,)) == CohortFilter(  # type: ignore[arg-type]
        sex=(1,), age=(50.0, 60.0), centre=("11025",))

