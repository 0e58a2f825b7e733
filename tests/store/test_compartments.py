"""Compartment-level metrics: written with the subject in one transaction, replaced per source, withdrawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.home import home as make_home
from store.writer import Writer

PROV = {"kind": "label-import", "input_sha256": "ab" * 32}
METRICS = [{"structure": "sartorius", "side": "left", "volume_cm3": 12.5}]


def _comps(w: Writer, eid: int) -> list[tuple]:
    return w.con.execute("""SELECT source, compartment, side, volume_cm3, fat_fraction FROM compartment_metrics
        WHERE eid = ? ORDER BY source, compartment, side""", [eid]).fetchall()


def test_compartments_commit_with_the_subject_and_replace_per_source(tmp_path: Path) -> None:
    with Writer(make_home(tmp_path)) as w:
        w.commit_subject(11, METRICS, [], PROV, source="ts", compartments=[
            {"compartment": "anterior", "side": "left", "volume_cm3": 900.0, "fat_fraction": 0.08},
            {"compartment": "posterior", "side": "left", "volume_cm3": 400.0}])
        w.commit_subject(11, METRICS, [], PROV, source="other", compartments=[
            {"compartment": "medial", "side": "right", "volume_cm3": 300.0}])
        assert _comps(w, 11) == [("other", "medial", "right", 300.0, None), ("ts", "anterior", "left", 900.0, 0.08),
                                 ("ts", "posterior", "left", 400.0, None)]
        w.commit_subject(11, METRICS, [], PROV, source="ts")  # a new import of the source without compartments
        assert _comps(w, 11) == [("other", "medial", "right", 300.0, None)]


@pytest.mark.parametrize(("row", "message"), [
    ({"compartment": "lateral", "side": "left", "volume_cm3": 1.0}, "compartment must be one of"),
    ({"compartment": "anterior", "side": "both", "volume_cm3": 1.0}, "side must be left or right"),
    ({"compartment": "anterior", "side": "left", "volume_cm3": -1.0}, "volume_cm3 must be >= 0"),
    ({"compartment": "anterior", "side": "left"}, "lacks 'volume_cm3'"),
])
def test_bad_compartment_rows_store_nothing(tmp_path: Path, row: dict, message: str) -> None:
    with Writer(make_home(tmp_path)) as w:
        with pytest.raises(ValueError, match=message):
            w.commit_subject(12, METRICS, [], PROV, source="ts", compartments=[row])
        assert w.con.execute("SELECT count(*) FROM structure_metrics WHERE eid = 12").fetchone()[0] == 0


def test_withdrawal_removes_compartment_rows(tmp_path: Path) -> None:
    with Writer(make_home(tmp_path)) as w:
        w.commit_subject(13, METRICS, [], PROV, source="ts",
                         compartments=[{"compartment": "anterior", "side": "left", "volume_cm3": 5.0}])
        report = w.withdraw([13])
        assert report.rows["compartment_metrics"] == 1
        assert _comps(w, 13) == []
