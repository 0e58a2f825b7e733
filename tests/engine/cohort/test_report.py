"""The one-page report: its tables carry the reference numbers, and the PDF has exactly one page."""

import dataclasses
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from engine.cohort.reference import compare, reference_group, structure_table, subject_row
from engine.cohort.report import report_content, report_pdf
from store.metrics import BY_NAME
from tests.cohort_data import synthetic_cohort


def _pdf_text(pdf: bytes) -> str:
    """The page's text runs, joined: matplotlib writes each line as a ``[(S) 1.2 (i) ...] TJ`` array."""
    runs = []
    for array in re.findall(rb"\[(.*?)\]\s*TJ", pdf, flags=re.DOTALL):
        chars = re.findall(rb"\(((?:\\.|[^\\)])*)\)", array)
        runs.append(b"".join(re.sub(rb"\\(.)", rb"\1", c) for c in chars).decode("latin-1"))
    return "\n".join(runs)


@pytest.fixture(scope="module")
def content_and_frames():
    df = synthetic_cohort(200)
    df["bmi"], df["height_cm"] = 24.0, 172.0
    df["weak_grip"], df["low_muscle_mass"] = 1, 1
    eid = int(df.eid.iloc[9])
    structures = structure_table(df, eid)
    derived = compare(df, eid, ["tmv_cm3", "bmi"])
    content = report_content(subject_row(df, eid), structures, derived,
                             group_description=reference_group(df, eid).description, simulated=True)
    return content, structures, derived, eid


def test_content_holds_the_reference_numbers(content_and_frames):
    content, structures, derived, eid = content_and_frames
    assert content.title.endswith(f"participant {eid}")
    assert content.status == "EWGSOP2: sarcopenia (weak grip and low muscle mass)"
    assert len(content.structures) == 27
    femur = content.structures.set_index("Structure").loc["Femur"]
    expected = structures.set_index("name").loc["Femur"]
    assert femur["Pctl"] == f"{expected['percentile']:.0f}"
    assert femur["Left cm³"] == f"{expected['left_cm3']:,.1f}"
    tmv = content.derived.set_index("Metric").loc["TMV (cm³)"]
    assert tmv["n ref"] == f"{int(derived.iloc[0]['n_ref']):,}"
    assert tmv["z"] == f"{derived.iloc[0]['z_score']:.2f}"
    assert content.derived.set_index("Metric").loc["BMI (kg/m²)", "z"] == "–"  # SD 0: no z-score
    # rows are titled with the store's metric titles, in the order they were compared
    assert list(content.derived["Metric"]) == ["TMV (cm³)", "BMI (kg/m²)"]
    assert list(content.derived["Metric"]) == [BY_NAME["tmv_cm3"].title, BY_NAME["bmi"].title]


def test_pdf_is_one_page_with_the_participant_in_its_metadata(content_and_frames):
    content, *_, eid = content_and_frames
    with matplotlib.rc_context({"pdf.compression": 0}):
        pdf = report_pdf(content, software_version="9.9")
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    title = re.search(rb"/Title \(([^)]*)\)", pdf).group(1)
    assert f"participant {eid}".encode("utf-16-be") in title
    png = report_pdf(content, fmt="png")
    assert png.startswith(b"\x89PNG")


def test_simulated_reports_say_so_on_the_page(content_and_frames):
    content, *_, eid = content_and_frames
    with matplotlib.rc_context({"pdf.compression": 0}):
        simulated = _pdf_text(report_pdf(content))
        real = _pdf_text(report_pdf(dataclasses.replace(content, simulated=False)))
    assert "MSMV muscle report" in simulated and f"participant {eid}" in simulated  # the reader sees text
    assert "Simulated data: not a UK Biobank participant" in simulated
    assert "no clinical conclusion may be drawn" in simulated
    assert "Simulated" not in real and f"participant {eid}" in real


def test_missing_columns_and_format_are_rejected(content_and_frames):
    content, structures, derived, eid = content_and_frames
    row = pd.Series({"eid": eid, "sex": 1, "age": 60.0})
    with pytest.raises(ValueError, match=r"structures table lacks columns \['fat_fraction'\]"):
        report_content(row, structures.drop(columns="fat_fraction"), derived, group_description="x")
    with pytest.raises(ValueError, match="report format must be 'pdf' or 'png', found 'svg'"):
        report_pdf(content, fmt="svg")
    assert np.isnan(structures["z_score"]).sum() == 0
