"""Export page helpers: zipped export bundle (read back equal to the store), aggregates, small-count suppression."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest

from store.export import aggregate, export_aggregate, export_zip, suppress_small_counts
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import write_phenotypes

PEOPLE = [
    {"eid": i, "sex": i % 2, "age": 50 + i, "height_cm": 160 + i, "weight_kg": 60 + i, "grip_left_kg": 20 + i,
     "centre": 11025 + i % 3} for i in range(1, 15)
]  # fmt: skip


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("export_zip")
    h = make_home(tmp / "msmv")
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", PEOPLE), source="simulated", simulated=True)
    return h


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_zip_bundle_reads_back_equal_to_the_store(store_home: Home, fmt: str) -> None:
    flt = CohortFilter(sex=(1,), age=(52, 60))
    cols = ["eid", "age", "height_cm", "grip_max_kg"]
    with Reader(store_home) as r:
        blob, result = export_zip(r, fmt, flt, cols)
        expected = r.participants(flt, cols)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == sorted([f"cohort.{fmt}", "cohort.dictionary.csv", "cohort.json"])
        raw = zf.read(f"cohort.{fmt}")
        got = pd.read_csv(io.BytesIO(raw)) if fmt == "csv" else pd.read_parquet(io.BytesIO(raw))
        sidecar = json.loads(zf.read("cohort.json"))
        dictionary = pd.read_csv(io.BytesIO(zf.read("cohort.dictionary.csv")))
    assert got["eid"].tolist() == expected["eid"].tolist() == [3, 5, 7, 9]
    pd.testing.assert_frame_equal(got.astype(float), expected.astype(float))
    assert sidecar["rows"] == 4 == result.rows and CohortFilter.from_json(json.dumps(sidecar["filters"])) == flt
    assert dictionary["column"].tolist() == cols
    with Reader(store_home) as r, pytest.raises(ValueError, match=r"export format must be one of .* found 'xlsx'"):
        export_zip(r, "xlsx")


def test_aggregate_counts_and_means() -> None:
    df = pd.DataFrame({"sex": [0, 0, 1, 1, 1], "age_stratum": ["50-59"] * 3 + ["60-69"] * 2,
                       "tmv_cm3": [1.0, 3.0, 5.0, 7.0, 9.0]})
    out = aggregate(df, ["sex", "age_stratum"], ["tmv_cm3"])
    assert out.to_dict("records") == [
        {"sex": 0, "age_stratum": "50-59", "n": 2, "mean_tmv_cm3": 2.0},
        {"sex": 1, "age_stratum": "50-59", "n": 1, "mean_tmv_cm3": 5.0},
        {"sex": 1, "age_stratum": "60-69", "n": 2, "mean_tmv_cm3": 8.0},
    ]
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['bmi'\]"):
        aggregate(df, ["sex"], ["bmi"])


def test_small_counts_are_shown_as_below_threshold_and_their_means_blanked() -> None:
    table = pd.DataFrame({"group": list("abcd"), "n": [0, 4, 5, 120], "mean_tmv_cm3": [None, 3.0, 4.0, 5.0]})
    out = suppress_small_counts(table)
    assert out["n"].tolist() == ["<5", "<5", "5", "120"]
    assert out["mean_tmv_cm3"].tolist()[1:] == [None, 4.0, 5.0]
    assert out["group"].tolist() == list("abcd")
    strict = suppress_small_counts(table, threshold=10)
    assert strict["n"].tolist() == ["<10", "<10", "<10", "120"]
    assert table["n"].tolist() == [0, 4, 5, 120]  # the input is left alone
    with pytest.raises(ValueError, match="threshold must be a positive integer, found 0"):
        suppress_small_counts(table, threshold=0)
    with pytest.raises(ValueError, match=r"count column\(s\) \['cases'\] not in the table"):
        suppress_small_counts(table, ["cases"])


def test_export_aggregate_writes_suppressed_csv_dictionary_and_sidecar(store_home: Home, tmp_path) -> None:
    flt = CohortFilter(age=(50, 62))  # eids 1..12: 6 men (odd eids), 6 women
    with Reader(store_home) as r:
        result = export_aggregate(r, tmp_path / "agg.csv", ["sex"], ["height_cm"], flt, threshold=7)
        people = r.participants(flt, ["sex", "height_cm"])
    got = pd.read_csv(result.path, dtype={"n": str})
    assert got["n"].tolist() == ["<7", "<7"] and got["mean_height_cm"].isna().all()
    with Reader(store_home) as r:
        open_result = export_aggregate(r, tmp_path / "open.csv", ["sex"], ["height_cm"], flt, threshold=None)
    opened = pd.read_csv(open_result.path)
    expected = people.groupby("sex")["height_cm"].agg(["size", "mean"]).reset_index()
    assert opened["n"].tolist() == expected["size"].tolist() == [6, 6]
    assert opened["mean_height_cm"].tolist() == pytest.approx(expected["mean"].tolist())
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["small_count_threshold"] == 7 and sidecar["participants"] == 12 and sidecar["group_by"] == ["sex"]
    dictionary = pd.read_csv(result.dictionary_path)
    assert dictionary["column"].tolist() == ["sex", "n", "mean_height_cm"]
    with Reader(store_home) as r, pytest.raises(ValueError, match="written as .csv, found 'a.parquet'"):
        export_aggregate(r, tmp_path / "a.parquet", ["sex"])
