"""The dashboard's data dictionary names the fields the store's imports used, not the shipped ones."""

from __future__ import annotations

from pathlib import Path

from dashboard.data import data_dictionary, snapshot_version
from store.home import home as make_home
from store.writer import Writer


def test_data_dictionary_follows_the_recorded_mapping(tmp_path: Path) -> None:
    home = make_home(tmp_path / "msmv")
    csv = tmp_path / "p.csv"
    # height from field 12144 (a user's corrected mapping), grip left from the shipped field 46
    csv.write_text("eid,12144-2.0,46-2.0\n1,180,30\n2,165,22\n", encoding="utf-8")
    mapping = {"height_cm": {"field": 12144, "instance": 2, "unit": "cm"},
               "grip_left_kg": {"field": 46, "instance": 2, "unit": "kg"}}
    with Writer(home) as w:
        w.import_phenotypes(csv, mapping=mapping)
    root = str(home.root)
    d = data_dictionary(snapshot_version(root), root=root).set_index("column")
    assert d.loc["height_cm", "source_field"] == "12144"
    assert d.loc["tvi", "source_field"] == "MSMV, 12144"  # derived metrics follow their inputs' fields
    assert d.loc["grip_left_kg", "source_field"] == "46"
    assert d.loc["amra_thigh_muscle_cm3", "source_field"] == "22409"  # not imported: the shipped mapping's
