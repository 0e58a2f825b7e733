from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from store.home import Home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import write_metrics_csv


def _long(home: Home) -> pd.DataFrame:
    with Reader(home) as r:
        return r.structure_metrics(all_sources=True)


def test_structure_by_label_key_and_name_and_side_aliases(tmp_path: Path, home: Home) -> None:
    path = write_metrics_csv(
        tmp_path / "m.csv",
        [
            (1, 2, "left", 101.5, 0.1),  # label
            (1, "rectus_femoris", "R", 99.0, ""),  # key, R, no fat fraction
            (1, "Biceps femoris", "L", 50.0, 0.25),  # display name, L
            (1, "vastus-lateralis", "Right", 300.0, 0.05),  # hyphen, capitalised side
        ],
    )
    with Writer(home) as w:
        report = w.import_metrics(path)
    assert (report.rows_read, report.rows_imported, report.n_errors) == (4, 4, 0)
    got = _long(home)[["eid", "key", "side", "volume_cm3", "fat_fraction", "compartment"]]
    rows = {(r.key, r.side): (r.volume_cm3, None if pd.isna(r.fat_fraction) else r.fat_fraction, r.compartment)
            for r in got.itertuples()}  # fmt: skip
    assert rows == {
        ("rectus_femoris", "left"): (101.5, 0.1, "anterior"),
        ("rectus_femoris", "right"): (99.0, None, "anterior"),
        ("biceps_femoris", "left"): (50.0, 0.25, "posterior"),
        ("vastus_lateralis", "right"): (300.0, 0.05, "anterior"),
    }


def test_bad_rows_are_reported_and_the_rest_imported(tmp_path: Path, home: Home) -> None:
    path = write_metrics_csv(
        tmp_path / "m.csv",
        [
            (1, 1, "left", 10.0, 0.1),  # 1 ok
            (1, 28, "left", 10.0, 0.1),  # 2 unknown label
            (1, "quadriceps", "left", 10.0, 0.1),  # 3 unknown name
            (1, 1, "middle", 10.0, 0.1),  # 4 bad side
            (1, 2, "left", "big", 0.1),  # 5 volume not a number
            (1, 3, "left", -1.0, 0.1),  # 6 negative volume
            (1, 4, "left", 10.0, 1.5),  # 7 fat fraction > 1
            ("x", 5, "left", 10.0, 0.1),  # 8 eid not an integer
            (1, 1, "L", 11.0, 0.1),  # 9 duplicate of row 1
            (2, 6, "right", 12.0, "abc"),  # 10 fat fraction not a number
            (2, 7, "right", 13.0, None),  # 11 ok
        ],
    )
    with Writer(home) as w:
        report = w.import_metrics(path)
    errs = report.errors
    assert errs["row"].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert errs["column"].tolist() == ["structure", "structure", "side", "volume_cm3", "volume_cm3",
                                       "fat_fraction", "eid", "eid", "fat_fraction"]  # fmt: skip
    assert errs["value"].tolist() == ["28", "quadriceps", "middle", "big", "-1.0", "1.5", "x", "1", "abc"]
    assert errs["reason"].tolist() == [
        "unknown structure (expected a label 1-27 or a structure name)",
        "unknown structure (expected a label 1-27 or a structure name)",
        "unknown side (expected left, right, L or R)",
        "volume is not a number",
        "volume is negative",
        "fat fraction outside 0-1",
        "eid is not an integer",
        "duplicate eid x instance x structure x side (first at row 1)",
        "fat fraction is not a number",
    ]
    assert report.rows_imported == 2
    got = _long(home)
    assert sorted(zip(got["eid"], got["label"], got["volume_cm3"], strict=True)) == [(1, 1, 10.0), (2, 7, 13.0)]


def test_reimport_replaces_the_same_rows_and_keeps_other_sources(tmp_path: Path, home: Home) -> None:
    first = write_metrics_csv(tmp_path / "a.csv", [(1, 1, "left", 10.0, 0.1), (1, 1, "right", 11.0, 0.1)])
    second = write_metrics_csv(tmp_path / "b.csv", [(1, 1, "left", 20.0, 0.2)])
    with Writer(home) as w:
        w.import_metrics(first)
        again = w.import_metrics(first)
        assert (again.inserted, again.updated) == (0, 2)
        w.import_metrics(first, source="other")
        w.import_metrics(second)
    got = _long(home).sort_values(["source", "side"])
    assert list(zip(got["source"], got["side"], got["volume_cm3"], strict=True)) == [
        ("other", "left", 10.0),
        ("other", "right", 11.0),
        ("ukb", "left", 20.0),  # replaced
        ("ukb", "right", 11.0),  # untouched
    ]


def test_parquet_with_typed_columns(tmp_path: Path, home: Home) -> None:
    df = pd.DataFrame(
        {"eid": [3, 3, 4], "structure": [27, 26, 1], "side": ["left", "right", "left"],
         "volume_cm3": [400.0, 250.0, -5.0]}  # fmt: skip
    )
    path = tmp_path / "m.parquet"
    df.to_parquet(path)
    with Writer(home) as w:
        report = w.import_metrics(path)
    assert report.errors[["row", "reason"]].values.tolist() == [[3, "volume is negative"]]
    got = _long(home)
    assert got[["key", "volume_cm3"]].values.tolist() == [["iliac_bone", 250.0], ["femur", 400.0]]
    assert got["fat_fraction"].isna().all()


def test_missing_required_column_is_a_clear_error(tmp_path: Path, home: Home) -> None:
    path = write_metrics_csv(tmp_path / "m.csv", [(1, 1, 10.0)], header="eid,structure,volume_cm3")
    with Writer(home) as w, pytest.raises(ValueError, match=r"m.csv: missing column\(s\) side; expected eid"):
        w.import_metrics(path)
