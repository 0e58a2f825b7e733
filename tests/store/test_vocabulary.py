"""The store's vocabulary: every column has a label, titles carry units, names and codes are the documented ones."""

from __future__ import annotations

import duckdb
import pytest

from store.metrics import BY_NAME, METRICS, column_title
from store.schema import migrate
from store.structures import STRUCTURES
from store.vocabulary import (
    FEMALE,
    JOB_STATUSES,
    MALE,
    METRIC_LABELS,
    SEX_CODING,
    SEX_LABELS,
    fat_fraction_column,
    volume_column,
)


def test_every_wide_table_column_has_exactly_one_label() -> None:
    names = [m.name for m in METRICS]
    assert set(METRIC_LABELS) == set(names)
    assert all(m.label.strip() for m in METRICS)
    # a label that named two columns would make two rows of a table or two axes indistinguishable
    labels = [m.label for m in METRICS]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(("column", "title"), [
    ("age", "Age (years)"),
    ("almi", "ALMI (kg/m²)"),
    ("tmv_cm3", "TMV (cm³)"),
    ("tvi", "TVI (cm³/cm²)"),
    ("pa_ratio", "P/A ratio"),  # "ratio" is a kind, not a unit
    ("lr_asym_dexa_pct", "L/R asymmetry, DEXA legs (%)"),
    ("lr_asym_mri_pct", "L/R asymmetry, MRI TMV (%)"),
    ("muscle_strength", "Muscle-specific strength (kg/L)"),
    ("weak_grip", "Weak grip"),  # 0/1 outcomes carry no unit
    ("vol_gracilis_left_cm3", "Gracilis volume, left (cm³)"),
    ("ff_femur", "Femur fat fraction"),
])
def test_titles_add_measurement_units_only(column: str, title: str) -> None:
    assert BY_NAME[column].title == title


def test_column_title_falls_back_to_the_name_of_a_computed_value() -> None:
    assert column_title("almi") == "ALMI (kg/m²)"
    assert column_title("share:gracilis") == "share:gracilis"


def test_column_names_follow_the_wide_table_pattern() -> None:
    assert volume_column("gracilis") == "vol_gracilis_cm3"
    assert volume_column("gracilis", "left") == "vol_gracilis_left_cm3"
    assert volume_column("femur", "right") == "vol_femur_right_cm3"
    assert fat_fraction_column("psoas_major") == "ff_psoas_major"
    with pytest.raises(ValueError, match="side must be one of .* got 'both'"):
        volume_column("gracilis", "both")
    # 4 columns per structure: total, left, right volume and fat fraction
    per_structure = [m for m in METRICS if m.name.startswith(("vol_", "ff_"))]
    assert len(per_structure) == 4 * len(STRUCTURES) == 108


def test_sex_coding_is_ukb_field_31() -> None:
    assert (MALE, FEMALE) == (1, 0)
    assert SEX_LABELS == {1: "Men", 0: "Women"}
    assert BY_NAME["sex"].unit == SEX_CODING == "1 male, 0 female"


def test_the_jobs_table_accepts_exactly_the_job_statuses() -> None:
    con = duckdb.connect()
    migrate(con)
    insert = ("INSERT INTO jobs (job_id, status, attempts, created, updated) "
              "VALUES (?, ?, 0, current_timestamp, current_timestamp)")
    for i, status in enumerate(JOB_STATUSES):
        con.execute(insert, [f"j{i}", status])
    assert JOB_STATUSES == ("queued", "running", "done", "failed")
    with pytest.raises(duckdb.ConstraintException, match="CHECK constraint"):
        con.execute(insert, ["bad", "retry"])
