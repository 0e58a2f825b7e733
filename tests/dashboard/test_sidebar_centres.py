"""The sidebar names assessment centres (UK Biobank coding 10) while the filter keeps their codes."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _app() -> None:
    import streamlit as st

    from dashboard.sidebar import FilterOptions, cohort_filter

    opts = FilterOptions((50.0, 80.0), (20.0, 30.0), ("11025", "11027", "99999"), ("ukb",))
    st.session_state["chosen"] = cohort_filter(opts).centre


def test_centre_widget_shows_names_and_filters_by_code() -> None:
    at = AppTest.from_function(_app).run(timeout=30)
    widget = at.sidebar.multiselect[0]
    assert widget.label == "Centre"
    assert widget.options == ["Cheadle (imaging)", "Newcastle (imaging)", "centre 99999 (not in UK Biobank coding 10)"]
    widget.select("11027").run(timeout=30)
    assert at.session_state["chosen"] == ("11027",)
