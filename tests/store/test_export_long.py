"""``msmv export --long``: per-structure rows of a filtered cohort, every metric source side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from store.errors import ExportError
from store.export import LONG_COLUMNS, export_long
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import write_phenotypes

PEOPLE = [{"eid": 11, "sex": 1, "age": 55}, {"eid": 12, "sex": 0, "age": 66}, {"eid": 13, "sex": 0, "age": 70}]


def _rows(sartorius_left: float, femur_right: float, ff: float | None) -> list[dict[str, object]]:
    return [{"structure": 1, "side": "left", "volume_cm3": sartorius_left, "fat_fraction": ff},
            {"structure": 27, "side": "right", "volume_cm3": femur_right, "fat_fraction": None}]


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("long")
    h = make_home(tmp / "msmv")
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", PEOPLE))
        w.commit_subject(11, _rows(101.5, 301.0, 0.08), [], {"kind": "engine", "input_sha256": "a"})
        w.commit_subject(12, _rows(202.5, 402.0, 0.12), [], {"kind": "engine", "input_sha256": "b"})
        w.commit_subject(12, _rows(190.0, 400.0, 0.15), [], {"kind": "engine", "input_sha256": "c"}, instance=3)
        w.commit_subject(12, _rows(210.0, 399.0, None), [], {"kind": "label-import", "input_sha256": "d"},
                         source="musclemap")
    return h


def test_long_rows_hold_every_source_of_the_filtered_participants(store_home: Home, tmp_path: Path) -> None:
    out = tmp_path / "long.csv"
    with Reader(store_home) as r:
        result = export_long(r, out, CohortFilter(sex=(0,)))
    got = pd.read_csv(out)
    assert [c for c in got.columns if c != "source_kind"] == list(LONG_COLUMNS)
    assert set(got["eid"]) == {12}  # 11 is male, 13 has no imaging
    key = got.set_index(["instance", "source", "structure", "side"])
    assert key.loc[(2, "msmv", "sartorius", "left"), "volume_cm3"] == pytest.approx(202.5)
    assert key.loc[(3, "msmv", "sartorius", "left"), "fat_fraction"] == pytest.approx(0.15)
    assert key.loc[(2, "musclemap", "femur", "right"), "volume_cm3"] == pytest.approx(399.0)
    assert pd.isna(key.loc[(2, "musclemap", "sartorius", "left"), "fat_fraction"])
    assert len(got) == 6 == result.rows  # 3 metric sets x 2 rows
    if "source_kind" in got.columns:  # the store records each source's kind
        assert got["source_kind"].notna().all()
    side = json.loads(result.sidecar_path.read_text())
    assert side["kind"] == "long" and side["sources"] == ["msmv", "musclemap"] and side["participants"] == 1
    dictionary = pd.read_csv(result.dictionary_path)
    assert dictionary["column"].tolist() == list(got.columns)


def test_long_export_keeps_the_export_safety_rules(store_home: Home, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MSMV_HOME", str(store_home.root))
    home = ["--home", str(store_home.root)]
    out = tmp_path / "long.csv"
    (tmp_path / "long.json").write_text('{"sex": [1]}')  # a filter file where the sidecar would go
    assert main([*home, "export", "--long", "--out", str(out), "--filters", str(tmp_path / "long.json")]) == 2
    assert "would overwrite its input" in capsys.readouterr().err
    out.write_text("mine")
    assert main([*home, "export", "--long", "--out", str(out)]) == 2
    assert "not from an earlier export of long.csv" in capsys.readouterr().err
    assert main([*home, "export", "--long", "--out", str(out), "--force"]) == 0
    assert set(pd.read_csv(out)["eid"]) == {11, 12}
    assert main([*home, "export", "--long", "--out", str(tmp_path / "again.csv"), "--columns", "eid"]) == 2
    assert "--long writes its own columns" in capsys.readouterr().err
    with Reader(store_home) as r, pytest.raises(ExportError, match="is a file, not a folder"):
        export_long(r, out / "x.csv")
