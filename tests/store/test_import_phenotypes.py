from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from store.fields import ColumnRef, load_mapping, parse_column
from store.home import Home
from store.reader import Reader
from store.writer import Writer
from tests.store.conftest import write_phenotypes

PERSON = {
    "eid": 1000001, "sex": 1, "age": 64, "height_cm": 175, "weight_kg": 80, "bmi": 26.1, "grip_left_kg": 30,
    "grip_right_kg": 34, "falls_code": 2, "activity_group": 1, "death_date": "2021-03-04", "visit_date": "2016-05-06",
    "centre": 11025, "arm_lean_left_kg": 3.1, "arm_lean_right_kg": 3.3, "leg_lean_left_kg": 9.5, "leg_lean_right_kg": 10.0,
}  # fmt: skip
STORED = ["eid", "sex", "age", "height_cm", "weight_kg", "bmi", "grip_left_kg", "grip_right_kg", "activity_group",
          "centre", "visit_date", "death_date", "arm_lean_left_kg", "leg_lean_right_kg"]  # fmt: skip


def _read(home: Home, columns: list[str] = STORED) -> pd.DataFrame:
    with Reader(home) as r:
        return r.participants(columns=columns)


def _expected_person() -> dict[str, object]:
    out = {k: PERSON[k] for k in STORED}
    out["centre"] = "11025"
    out["visit_date"] = dt.date(2016, 5, 6)
    out["death_date"] = dt.date(2021, 3, 4)
    return out


def _row(df: pd.DataFrame, eid: int) -> dict[str, object]:
    rec = df.set_index("eid").loc[eid].to_dict()
    rec["eid"] = eid
    for k in ("visit_date", "death_date"):
        if isinstance(rec.get(k), pd.Timestamp):
            rec[k] = rec[k].date()
    return rec


@pytest.mark.parametrize(("style", "sep"), [("ukbconv", ","), ("rap", ","), ("ukbconv", "\t"), ("rap", "\t")])
def test_both_column_styles_and_delimiters_import_the_same_values(home: Home, tmp_path: Path, style: str, sep: str) -> None:
    path = write_phenotypes(tmp_path / "p.txt", [PERSON], style=style, sep=sep)
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    assert (report.rows_read, report.rows_imported, report.inserted, report.n_errors) == (1, 1, 1, 0)
    got = _row(_read(home), 1000001)
    for k, v in _expected_person().items():
        assert got[k] == pytest.approx(v) if isinstance(v, float) else got[k] == v, k


def test_rap_array_suffix_and_participant_prefix(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "rap.csv"
    path.write_text("participant.eid,participant.p31,p50_i2_a0,p50_i2_a1,p21003_i2\n7,0,162,999,58\n")
    with Writer(home) as w:
        w.import_phenotypes(path)
    got = _row(_read(home, ["eid", "sex", "height_cm", "age"]), 7)
    assert (got["sex"], got["height_cm"], got["age"]) == (0, 162.0, 58.0)


def test_parse_column() -> None:
    assert parse_column("50-2.0") == ColumnRef(50, 2, 0)
    assert parse_column("p23263_i2_a1") == ColumnRef(23263, 2, 1)
    assert parse_column("p31") == ColumnRef(31, 0, 0)
    assert parse_column("participant.p53_i3") == ColumnRef(53, 3, 0)
    assert parse_column("eid") is None
    assert parse_column("height") is None


def test_age_varying_measure_at_another_instance_is_not_imported_without_a_fallback(tmp_path: Path, home: Home) -> None:
    # Height only at instances 0 and 3: a height from another visit is not the imaging-visit height.
    path = tmp_path / "p.csv"
    path.write_text("eid,50-0.0,50-3.0,21003-2.0\n1,170,180,60\n2,160,165,61\n")
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    height_notes = [n for n in report.notes if n.startswith("height_cm")]
    assert len(height_notes) == 1
    assert height_notes[0].startswith("height_cm: field 50 instance 2 not in the file (it has instance(s) 0, 3); not imported")
    df = _read(home, ["eid", "height_cm", "age"])
    assert df["height_cm"].isna().all() and df["age"].tolist() == [60.0, 61.0]


def test_a_fallback_the_mapping_asks_for_is_used_per_participant_and_recorded(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    # eid 1 measured at the imaging visit; eid 2 only at baseline; eid 3 refused (-3) then measured.
    path.write_text("eid,50-2.0,50-0.0\n1,170,165\n2,,160\n3,-3,158\n4,,\n")
    mapping = tmp_path / "fields.toml"
    mapping.write_text('[height_cm]\nfield = 50\ninstance = 2\nfallback = [0]\nunit = "cm"\n')
    with Writer(home) as w:
        w.import_phenotypes(path, mapping=mapping)
        recorded = w.con.execute("SELECT eid, instance FROM phenotype_instances WHERE variable = 'height_cm' ORDER BY eid").fetchall()
    assert _read(home, ["eid", "height_cm"])["height_cm"].tolist()[:3] == [170.0, 160.0, 158.0]
    assert recorded == [(1, 2), (2, 0), (3, 0)]  # eid 4 has no height, so no instance


def test_ipaq_comes_from_the_imaging_visit_else_baseline_and_says_which(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text("eid,22032-2.0,22032-0.0\n1,2,0\n2,,1\n3,-1,0\n4,,\n")
    with Writer(home) as w:
        report = w.import_phenotypes(path)
        got = w.con.execute("SELECT eid, activity_group, activity_group_instance FROM participants ORDER BY eid").fetchall()
    assert got == [(1, 2, 2), (2, 1, 0), (3, 0, 0), (4, None, None)]
    assert report.n_errors == 0


def test_ipaq_only_at_baseline_falls_back_for_everyone(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text("eid,22032-0.0\n1,2\n2,1\n")
    with Writer(home) as w:
        report = w.import_phenotypes(path)
        got = w.con.execute("SELECT activity_group, activity_group_instance FROM participants ORDER BY eid").fetchall()
    assert got == [(2, 0), (1, 0)]
    assert [n for n in report.notes if n.startswith("activity_group")] == [
        "activity_group: field 22032 instance 2 not in the file; fallback instance(s) 0 used per participant (recorded)"
    ]


def test_negative_codes_are_missing_not_errors(tmp_path: Path, home: Home) -> None:
    person = dict(PERSON, falls_code=-3, grip_left_kg=-1, weight_kg=-818)
    path = write_phenotypes(tmp_path / "p.csv", [person])
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    assert report.n_errors == 0
    assert report.coded_missing == 3
    got = _row(_read(home, ["eid", "grip_left_kg", "grip_max_kg", "weight_kg", "falls"]), 1000001)
    assert pd.isna(got["grip_left_kg"]) and pd.isna(got["weight_kg"]) and pd.isna(got["falls"])
    assert got["grip_max_kg"] == 34.0  # the other hand still counts


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("height_cm", 1.72, 172.0),  # metres -> cm
        ("height_cm", 172, 172.0),
        ("leg_lean_left_kg", 9500, 9.5),  # grams -> kg (auto)
        ("leg_lean_left_kg", 9.5, 9.5),
        ("arm_lean_left_kg", 2500, 2.5),  # grams -> kg (auto)
    ],
)
def test_unit_normalisation(tmp_path: Path, home: Home, variable: str, raw: float, expected: float) -> None:
    path = write_phenotypes(tmp_path / "p.csv", [{"eid": 5, variable: raw}])
    with Writer(home) as w:
        w.import_phenotypes(path)
    assert _read(home, ["eid", variable])[variable].iloc[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (301, "outside plausible range [0.5, 8]"),  # just above the grams threshold: 0.301 kg, too light
        (300, "outside plausible range [0.5, 8]"),  # at the threshold: read as 300 kg
    ],
)
def test_auto_kg_threshold_values_are_implausible_arm_masses(tmp_path: Path, home: Home, raw: float, reason: str) -> None:
    rows = [{"eid": 5, "arm_lean_left_kg": raw}] + [{"eid": 6 + k, "arm_lean_left_kg": 3000 + k} for k in range(4)]
    path = write_phenotypes(tmp_path / "p.csv", rows)
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    assert report.errors.to_dict("records") == [{"row": 1, "column": "23250-2.0", "value": str(raw), "reason": reason}]
    assert _read(home, ["eid", "arm_lean_left_kg"])["arm_lean_left_kg"].isna().tolist() == [True, False, False, False, False]


def test_error_report_names_row_column_value_and_reason_and_never_aborts(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "eid,31-0.0,21003-2.0,53-2.0,2296-2.0\n"
        "1,1,60,2016-01-01,1\n"  # row 1: fine
        ",0,61,2016-01-02,1\n"  # row 2: eid missing
        "abc,0,62,2016-01-03,1\n"  # row 3: eid not an integer
        "1,0,63,2016-01-04,1\n"  # row 4: duplicate of row 1
        "2,0,sixty,2016-13-40,1.5\n"  # row 5: bad age, bad date, non-integer code; eid 2 still imported
        "-3,0,64,2016-01-05,1\n"  # row 6: withdrawn participant
        "4,NA,65,2016-01-06,2\n"  # row 7: NA is missing, not an error
    )
    with Writer(home) as w:
        report = w.import_phenotypes(path)
    expected = pd.DataFrame(
        [
            (2, "eid", None, "eid missing"),
            (3, "eid", "abc", "eid is not an integer"),
            (4, "eid", "1", "duplicate eid (first seen at row 1)"),
            (5, "21003-2.0", "sixty", "not a number"),
            (5, "2296-2.0", "1.5", "not an integer code"),
            (5, "53-2.0", "2016-13-40", "not a date (expected YYYY-MM-DD)"),
            (6, "eid", "-3", "eid is not positive (negative eids mark withdrawn participants)"),
        ],
        columns=["row", "column", "value", "reason"],
    )
    got = report.errors.reset_index(drop=True)
    assert got["row"].tolist() == expected["row"].tolist()
    assert got["column"].tolist() == expected["column"].tolist()
    assert got["reason"].tolist() == expected["reason"].tolist()
    assert [None if pd.isna(v) else v for v in got["value"]] == [None, "abc", "1", "sixty", "1.5", "2016-13-40", "-3"]
    assert (report.rows_read, report.rows_imported) == (7, 3)
    # The report is also written next to the store, and says the same.
    assert report.error_path is not None and report.error_path.parent == home.store_db.parent
    on_disk = pd.read_csv(report.error_path)
    assert on_disk["reason"].tolist() == expected["reason"].tolist()
    df = _read(home, ["eid", "sex", "age", "visit_date", "falls"]).set_index("eid")
    assert df.index.tolist() == [1, 2, 4]
    assert df.loc[1, "sex"] == 1 and df.loc[1, "age"] == 60  # first occurrence kept
    assert pd.isna(df.loc[2, "age"]) and pd.isna(df.loc[2, "visit_date"]) and df.loc[2, "sex"] == 0
    assert pd.isna(df.loc[4, "sex"]) and df.loc[4, "falls"] == 1


def test_reimport_is_idempotent_and_keeps_variables_absent_from_the_file(tmp_path: Path, home: Home) -> None:
    full = write_phenotypes(tmp_path / "full.csv", [PERSON, dict(PERSON, eid=1000002, sex=0)])
    with Writer(home) as w:
        w.import_phenotypes(full)
    first = _read(home, None)
    with Writer(home) as w:
        again = w.import_phenotypes(full)
    assert (again.inserted, again.updated) == (0, 2)
    pd.testing.assert_frame_equal(_read(home, None), first)
    # A later file with only grip updates grip and leaves everything else as it was.
    grips = write_phenotypes(tmp_path / "grip.csv", [{"eid": 1000001, "grip_left_kg": 40, "grip_right_kg": 41}])
    with Writer(home) as w:
        w.import_phenotypes(grips)
    after = _read(home, None).set_index("eid")
    assert after.loc[1000001, "grip_max_kg"] == 41.0
    assert after.loc[1000001, "height_cm"] == 175.0
    assert after.loc[1000002, "grip_max_kg"] == 34.0


def test_mapping_file_can_correct_a_field_id(tmp_path: Path, home: Home) -> None:
    path = tmp_path / "p.csv"
    path.write_text("eid,12144-2.0\n1,181\n")  # height under another field
    mapping = tmp_path / "fields.toml"
    mapping.write_text('[height_cm]\nfield = 12144\ninstance = 2\nunit = "cm"\n')
    with Writer(home) as w:
        w.import_phenotypes(path, mapping=mapping)
    assert _read(home, ["eid", "height_cm"])["height_cm"].tolist() == [181.0]


def test_bad_mapping_and_missing_eid_are_clear_errors(tmp_path: Path, home: Home) -> None:
    with pytest.raises(ValueError, match="unknown variable 'heigth'"):
        load_mapping({"heigth": {"field": 50}})
    with pytest.raises(ValueError, match=r"\[sex\] unit must be one of .* found 'inch'"):
        load_mapping({"sex": {"field": 31, "unit": "inch"}})
    with pytest.raises(ValueError, match=r"\[sex\] field must be a positive integer, found '31'"):
        load_mapping({"sex": {"field": "31"}})
    path = tmp_path / "noeid.csv"
    path.write_text("id,50-2.0\n1,170\n")
    with Writer(home) as w, pytest.raises(ValueError, match="no eid column"):
        w.import_phenotypes(path)


def test_default_mapping_has_every_variable() -> None:
    from store.fields import VARIABLES

    assert set(load_mapping()) == set(VARIABLES)
    assert load_mapping()["leg_lean_right_kg"].field == 23271


def test_dexa_lean_masses_come_from_the_real_fields_not_the_gynoid_ones(tmp_path: Path, home: Home) -> None:
    # A UKB-style extract holding both the limb lean masses (23250 arm L, 23254 arm R, 23267 leg L,
    # 23271 leg R, in grams) and 23263-23266 (gynoid lean mass g, gynoid tissue fat %, gynoid total
    # mass g, leg fat mass left g): only the first four may feed ALM.
    path = tmp_path / "ukb.csv"
    path.write_text(
        "eid,31-0.0,50-2.0,23250-2.0,23254-2.0,23267-2.0,23271-2.0,23263-2.0,23264-2.0,23265-2.0,23266-2.0\n"
        "11,1,170,2900,3100,9200,9800,6050,35.2,9480,4100\n"
    )
    with Writer(home) as w:
        w.import_phenotypes(path)
    got = _row(_read(home, ["eid", "alm_kg", "almi", "legs_lean_kg", "lr_asym_dexa_pct"]), 11)
    assert got["alm_kg"] == pytest.approx(2.9 + 3.1 + 9.2 + 9.8)  # 25.0 kg
    assert got["almi"] == pytest.approx(25.0 / 1.70**2)  # 8.6505 kg/m²
    assert got["legs_lean_kg"] == pytest.approx(19.0)
    assert got["lr_asym_dexa_pct"] == pytest.approx(0.6 / 9.5 * 100)  # |9.2 - 9.8| / 9.5 = 6.316 %
