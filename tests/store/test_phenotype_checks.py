"""Real-extract checks of the phenotype import: plausible ranges, DEXA totals, the recorded mapping."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from store.centres import centre_name
from store.export import export
from store.fields import load_mapping
from store.home import Home
from store.metrics import data_dictionary
from store.reader import Reader
from store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from store.writer import Writer


def _import(home: Home, path: Path, mapping: Path | None = None):  # noqa: ANN202 - ImportReport
    with Writer(home) as w:
        return w.import_phenotypes(path, mapping=mapping)


def _participants(home: Home, columns: str) -> list[tuple]:
    with Writer(home) as w:
        return w.con.execute(f"SELECT {columns} FROM participants ORDER BY eid").fetchall()


def test_an_out_of_range_cell_is_missing_and_reported(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    good = "".join(f"{k},{160 + k},{60 + k}\n" for k in range(6, 11))  # so 2 of 10 heights are out: cells
    path.write_text("eid,50-2.0,21002-2.0\n1,172,80\n2,1720,81\n3,119.9,20\n4,220,250\n5,120,30\n" + good)
    report = _import(home, path)
    assert report.errors.to_dict("records") == [
        {"row": 2, "column": "50-2.0", "value": "1720", "reason": "outside plausible range [120, 220]"},
        {"row": 3, "column": "21002-2.0", "value": "20", "reason": "outside plausible range [30, 250]"},
        {"row": 3, "column": "50-2.0", "value": "119.9", "reason": "outside plausible range [120, 220]"},
    ]
    # The bounds themselves are plausible (inclusive); the other cells of a row are kept.
    assert _participants(home, "height_cm, weight_kg")[:5] == [
        (172.0, 80.0), (None, 81.0), (None, None), (220.0, 250.0), (120.0, 30.0)
    ]


def test_one_fifth_out_of_range_is_cells_more_is_a_rejected_column(tmp_path: Path, home: Home) -> None:
    one = tmp_path / "one.csv"
    one.write_text("eid,46-2.0\n1,30\n2,31\n3,32\n4,33\n5,130\n")  # 1 of 5 out: a bad cell
    report = _import(home, one)
    assert report.rejected == [] and len(report.errors) == 1
    assert _participants(home, "grip_left_kg") == [(30.0,), (31.0,), (32.0,), (33.0,), (None,)]
    two = tmp_path / "two.csv"
    two.write_text("eid,46-2.0\n1,40\n2,41\n3,42\n4,140\n5,150\n")  # 2 of 5 out: the column is wrong
    report = _import(home, two)
    assert report.variables == []
    assert report.errors.empty  # one summary line instead of a line per cell
    assert len(report.rejected) == 1
    assert report.rejected[0].startswith(
        "grip_left_kg (field 46, column 46-2.0) not stored: 2 of 5 values outside plausible range [0, 100]"
    )
    assert _participants(home, "grip_left_kg") == [(30.0,), (31.0,), (32.0,), (33.0,), (None,)]  # kept


def test_a_rejected_column_says_what_its_values_look_like(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    # Weight exported in grams but mapped as kilograms; a fat percentage mapped as arm lean mass.
    path.write_text("eid,21002-2.0,23250-2.0\n1,72500,35.2\n2,24500,41.0\n3,80100,28.3\n")
    report = _import(home, path)
    weight, arm = sorted(report.rejected)[1], sorted(report.rejected)[0]
    assert weight.endswith("3 of 3 values outside plausible range [30, 250]; median 72,500: grams read as kilograms?")
    assert arm.endswith("median 35.2: check that field 23250 is the right field for arm_lean_left_kg")
    summary = report.summary()
    assert "NOT STORED: weight_kg (field 21002" in summary and "grams read as kilograms?" in summary


def test_a_user_mapping_without_ranges_inherits_the_shipped_ones(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text("eid,12144-2.0\n1,181\n2,18.1\n3,175\n4,170\n5,168\n")
    inherits = tmp_path / "inherit.toml"
    inherits.write_text('[height_cm]\nfield = 12144\nunit = "cm"\n')
    assert load_mapping(inherits)["height_cm"].range == (120.0, 220.0)
    report = _import(home, path, inherits)
    assert report.errors["reason"].tolist() == ["outside plausible range [120, 220]"]
    own = tmp_path / "own.toml"
    own.write_text('[height_cm]\nfield = 12144\nunit = "cm"\nrange = [10, 250]\n')
    report = _import(home, path, own)
    assert report.n_errors == 0
    assert _participants(home, "height_cm")[1] == (18.1,)


def test_bad_ranges_and_fallbacks_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\[bmi\] range must be \[low, high\] with low <= high, found \[75, 12\]"):
        load_mapping({"bmi": {"field": 21001, "range": [75, 12]}})
    with pytest.raises(ValueError, match=r"\[death_date\] range applies to numbers, not unit 'date'"):
        load_mapping({"death_date": {"field": 40000, "unit": "date", "range": [0, 1]}})
    with pytest.raises(ValueError, match=r"\[age\] fallback must list other instances than 2, once each; found \[2\]"):
        load_mapping({"age": {"field": 21003, "instance": 2, "fallback": [2]}})
    with pytest.raises(ValueError, match=r"\[age\] unknown key\(s\) \['fallbak'\]"):
        load_mapping({"age": {"field": 21003, "fallbak": [0]}})


def test_limb_sums_that_disagree_with_the_dexa_totals_are_reported(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "eid,23250-2.0,23254-2.0,23258-2.0,23267-2.0,23271-2.0,23275-2.0,23280-2.0\n"
        "1,3000,3100,6150,9000,9400,18300,52000\n"  # arms 6.1 vs 6.15 (0.8 %), legs 18.4 vs 18.3 (0.5 %)
        "2,3000,3100,6400,9000,9400,18400,52000\n"  # arms 6.1 vs 6.4: 4.7 % off
        "3,3000,3100,6100,9000,9400,17600,52000\n"  # legs 18.4 vs 17.6: 4.5 % off
    )
    report = _import(home, path)
    assert report.errors.to_dict("records") == [
        {"row": 2, "column": "23258-2.0", "value": "6400",
         "reason": "arm lean mass left + right = 6.1 kg differs from the total 6.4 kg by 4.7 % (more than 2 %)"},
        {"row": 3, "column": "23275-2.0", "value": "17600",
         "reason": "leg lean mass left + right = 18.4 kg differs from the total 17.6 kg by 4.5 % (more than 2 %)"},
    ]  # fmt: skip
    # Reported, not dropped: the totals are stored in kg beside the limbs.
    assert _participants(home, "dexa_arms_lean_kg, dexa_legs_lean_kg, dexa_total_lean_kg")[1] == (6.4, 18.4, 52.0)


def test_the_dictionary_names_the_fields_the_import_used(tmp_path: Path, home: Home) -> None:
    default = data_dictionary().set_index("column")["source_field"]
    assert default["alm_kg"] == "23250, 23254, 23267, 23271"
    assert default["almi"] == "23250, 23254, 23267, 23271, 50"
    assert default["lr_asym_dexa_pct"] == "23267, 23271"
    assert default["activity_group"] == "22032 (instance 2, else 0)"
    assert default["tvi"] == "MSMV, 50"
    # A user whose release put left arm lean mass under another field corrects the mapping only.
    path = tmp_path / "p.csv"
    path.write_text("eid,31-0.0,50-2.0,99250-2.0,23254-2.0,23267-2.0,23271-2.0\n1,1,170,2900,3100,9200,9800\n")
    mapping = tmp_path / "fields.toml"
    mapping.write_text('[arm_lean_left_kg]\nfield = 99250\ninstance = 2\nunit = "auto_kg"\n')
    _import(home, path, mapping)
    with Writer(home) as w:
        w.import_phenotypes(path)  # the shipped mapping imports the other fields; 99250 is not in it
    with Reader(home) as r:
        used = r.field_mapping()
        result = export(r, tmp_path / "cohort.csv", columns=["eid", "alm_kg", "arm_lean_left_kg", "sex"])
    assert used["arm_lean_left_kg"].field == 99250 and used["arm_lean_right_kg"].field == 23254
    dictionary = pd.read_csv(result.dictionary_path, dtype=str).set_index("column")["source_field"]
    assert dictionary["alm_kg"] == "99250, 23254, 23267, 23271"
    assert dictionary["arm_lean_left_kg"] == "99250"
    assert dictionary["sex"] == "31"


def test_a_version_1_store_is_upgraded_and_keeps_its_participants(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO participants (eid, sex, activity_group, source, simulated, imported_at) "
        "VALUES (7, 0, 1, 'ukb', false, TIMESTAMP '2024-01-02 03:04:05')"
    )
    assert migrate(con) == SCHEMA_VERSION
    assert con.execute(
        "SELECT eid, sex, activity_group, activity_group_instance, dexa_legs_lean_kg FROM participants"
    ).fetchall() == [(7, 0, 1, None, None)]
    assert con.execute("SELECT count(*) FROM imports").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM phenotype_instances").fetchone() == (0,)


@pytest.mark.parametrize(
    ("code", "name"),
    [("11025", "Cheadle (imaging)"), (11028, "Bristol (imaging)"), ("11003", "Cardiff"), ("10003", "Stockport (pilot)"),
     ("11019", "centre 11019 (not in UK Biobank coding 10)"), (None, "unknown centre")],
)  # fmt: skip
def test_centres_are_named_by_ukb_coding_10(code: str | int | None, name: str) -> None:
    assert centre_name(code) == name
