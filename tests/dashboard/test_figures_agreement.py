"""The Concordance page's AMRA pairs: regression line, Bland-Altman traces and annotation, the page itself."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.concordance import (
    ConcordanceOptions,
    agreement_figure,
    concordance_figure,
    format_agreement,
)
from engine.cohort.stats import bland_altman
from engine.cohort.tables import DEXA_PAIRS, agreement, agreement_applies, concordance
from tests.cohort_data import synthetic_cohort


def amra_cohort(n: int = 600, seed: int = 5) -> pd.DataFrame:
    """The shared cohort plus MSMV compartment volumes and AMRA's, AMRA about 8 % smaller with noise."""
    df = synthetic_cohort(n, seed, analysis=True)
    rng = np.random.default_rng(seed)
    df["anterior_cm3"] = df["tmv_cm3"] * 0.28
    df["posterior_cm3"] = df["tmv_cm3"] * 0.12
    for msmv, amra in (("tmv_cm3", "amra_thigh_muscle_cm3"), ("anterior_cm3", "amra_anterior_cm3"),
                       ("posterior_cm3", "amra_posterior_cm3")):
        df[amra] = df[msmv] * 0.92 * np.exp(rng.normal(0, 0.04, n))
    df.loc[[0, 1], "amra_thigh_muscle_cm3"] = np.nan  # no AMRA result for two participants
    return df


def _tiny() -> pd.DataFrame:
    """Four participants whose differences (AMRA posterior -> MSMV posterior) are 2, -1, 5, 2 cm³."""
    return pd.DataFrame({"sex": [1, 1, 0, 0], "amra_posterior_cm3": [10.0, 20.0, 30.0, 40.0],
                         "posterior_cm3": [12.0, 19.0, 35.0, 42.0]})


def test_agreement_applies_only_where_both_sides_share_a_unit() -> None:
    assert agreement_applies("tmv_amra_thigh") and agreement_applies("anterior_amra")
    assert agreement_applies("posterior_amra")
    assert not any(agreement_applies(p) for p in DEXA_PAIRS)  # cm³ vs kg, cm³/cm² vs kg/m²
    with pytest.raises(ValueError, match="agreement needs one unit: legs_lean_kg is in kg, tmv_cm3 in cm³"):
        agreement(amra_cohort(50), "legs_lean_kg", "tmv_cm3")


def test_agreement_table_by_sex_is_bland_altman_of_each_group() -> None:
    df = amra_cohort()
    table = agreement(df, "amra_thigh_muscle_cm3", "tmv_cm3").set_index("group")
    assert list(table.index) == ["All", "Men", "Women"]
    complete = df.dropna(subset=["amra_thigh_muscle_cm3"])
    for group, part in (("All", complete), ("Men", complete[complete.sex == 1]), ("Women", complete[complete.sex == 0])):
        d = part.tmv_cm3 - part.amra_thigh_muscle_cm3
        assert table.loc[group, "n"] == len(part)
        assert table.loc[group, "mean_difference"] == pytest.approx(d.mean(), rel=1e-12)
        assert table.loc[group, "upper_limit"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1), rel=1e-12)
    assert table.loc["All", "n"] == len(df) - 2


def test_bland_altman_figure_draws_the_mean_and_limits_it_is_given() -> None:
    df = _tiny()
    table = agreement(df, "amra_posterior_cm3", "posterior_cm3")
    fig = agreement_figure(df, "posterior_amra", table)
    men, women, mean, upper, lower = fig.data
    assert (men.name, women.name) == ("Men", "Women")
    # each point: x = mean of the two methods, y = MSMV - AMRA
    np.testing.assert_allclose(men.x, [11.0, 19.5])
    np.testing.assert_allclose(men.y, [2.0, -1.0])
    np.testing.assert_allclose(women.y, [5.0, 2.0])
    assert [t.name for t in (mean, upper, lower)] == ["Mean difference", "Upper limit of agreement",
                                                      "Lower limit of agreement"]
    # mean 2, SD sqrt(6): limits 2 -/+ 1.96 x 2.449490 (hand computation, as in the stats test)
    assert list(mean.y) == pytest.approx([2.0, 2.0])
    assert list(upper.y) == pytest.approx([6.800999895855029] * 2)
    assert list(lower.y) == pytest.approx([-2.800999895855029] * 2)
    assert list(mean.x) == pytest.approx([11.0, 41.0])  # the lines span the means of the two methods
    text = fig.layout.annotations[0].text
    assert "Mean difference 2.0 cm³" in text and "95 % limits of agreement -2.8 to 6.8 cm³" in text
    assert text.endswith("n = 4")
    assert fig.layout.title.text == ("Bland–Altman: Posterior compartment (MSMV) vs AMRA posterior thigh (n = 4)")
    assert fig.layout.yaxis.title.text == "Posterior compartment − AMRA posterior thigh (cm³)"


def test_bland_altman_figure_writes_the_table_not_its_own_numbers() -> None:
    df = _tiny()
    made_up = pd.DataFrame({"group": ["All"], "n": [7], "mean_difference": [100.0], "ci_low": [90.0],
                            "ci_high": [110.0], "sd_difference": [10.0], "lower_limit": [80.4],
                            "upper_limit": [119.6], "error": [""]})
    fig = agreement_figure(df, "posterior_amra", made_up, ConcordanceOptions(by_sex=False))
    assert [t.name for t in fig.data] == ["All", "Mean difference", "Upper limit of agreement",
                                          "Lower limit of agreement"]
    assert fig.data[1].y[0] == 100.0 and fig.data[2].y[0] == 119.6
    assert "n = 7" in fig.layout.annotations[0].text and fig.layout.meta["agreement"][0]["upper_limit"] == 119.6
    failed = made_up.assign(mean_difference=np.nan, lower_limit=np.nan, upper_limit=np.nan, n=1,
                            error="Bland-Altman limits need at least 2 complete pairs, got 1")
    fig = agreement_figure(df, "posterior_amra", failed)
    assert not any(t.name == "Mean difference" for t in fig.data)
    assert fig.layout.annotations[0].text.startswith("Limits of agreement not available (Bland-Altman limits")
    with pytest.raises(ValueError, match=r"lacks columns \['upper_limit'\]"):
        agreement_figure(df, "posterior_amra", made_up.drop(columns="upper_limit"))
    with pytest.raises(ValueError, match="must have an 'All' row"):
        agreement_figure(df, "posterior_amra", made_up.assign(group="Men"))


def test_bland_altman_density_keeps_the_lines() -> None:
    df = amra_cohort(400)
    table = agreement(df, "amra_anterior_cm3", "anterior_cm3")
    fig = agreement_figure(df, "anterior_amra", table, ConcordanceOptions(kind="density", density_bins=10))
    expected, _, _ = np.histogram2d((df["amra_anterior_cm3"] + df["anterior_cm3"]) / 2,
                                    df["anterior_cm3"] - df["amra_anterior_cm3"], bins=10)
    assert isinstance(fig.data[0], go.Heatmap) and len(fig.data[0].x) == 10
    np.testing.assert_array_equal(np.nan_to_num(np.asarray(fig.data[0].z, dtype=float)), expected.T)
    assert fig.data[1].name == "Mean difference"


def test_regression_line_is_the_least_squares_fit() -> None:
    df = amra_cohort()
    stats = concordance(df, "amra_thigh_muscle_cm3", "tmv_cm3")
    fig = concordance_figure(df, "tmv_amra_thigh", stats, ConcordanceOptions(fit_line=True))
    line = fig.data[-1]
    assert line.name == "Least-squares line" and line.mode == "lines"
    complete = df.dropna(subset=["amra_thigh_muscle_cm3"])
    slope, intercept = np.polyfit(complete.amra_thigh_muscle_cm3, complete.tmv_cm3, 1)
    assert list(line.x) == pytest.approx([complete.amra_thigh_muscle_cm3.min(), complete.amra_thigh_muscle_cm3.max()])
    assert list(line.y) == pytest.approx([intercept + slope * v for v in line.x], rel=1e-9)
    without = concordance_figure(df, "tmv_amra_thigh", stats)
    assert len(without.data) == len(fig.data) - 1


def test_format_agreement() -> None:
    shown = format_agreement(agreement(_tiny(), "amra_posterior_cm3", "posterior_cm3"))
    first = shown.iloc[0]
    assert (first["Group"], first["n"], first["Mean difference"]) == ("All", 4, "2.0")
    assert first["95 % limits of agreement"] == "-2.8 to 6.8" and first["SD of differences"] == "2.4"
    assert shown.iloc[1]["Mean difference"] == "0.5"  # men: differences 2 and -1
    assert shown.iloc[1]["95 % limits of agreement"] != "–"


# ------------------------------------------------------------------------ the page (AppTest, no store)


def _page_app(with_amra: bool) -> None:
    import runpy

    import dashboard.ui
    from tests.cohort_data import synthetic_cohort
    from tests.dashboard.test_figures_agreement import amra_cohort

    def fake_cohort_page(title: str) -> "pd.DataFrame":  # noqa: UP037 (the AppTest script has no __future__ import)
        import streamlit as st

        st.title(title)
        return amra_cohort(700) if with_amra else synthetic_cohort(700, 5, analysis=True)

    # AppTest runs the script in this process: put the real loader back for the page tests after this one.
    real = dashboard.ui.cohort_page
    dashboard.ui.cohort_page = fake_cohort_page
    try:
        runpy.run_path("pages/concordance.py", run_name="__main__")
    finally:
        dashboard.ui.cohort_page = real


def test_concordance_page_shows_amra_with_bland_altman() -> None:
    at = AppTest.from_function(_page_app, args=(True,), default_timeout=60).run()
    assert not at.exception, at.exception
    assert not at.error
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2 + 3 + 3  # DEXA pairs, then each AMRA pair's scatter and Bland-Altman plot
    bland_altman_charts = [c for c in charts if c["layout"]["title"]["text"].startswith("Bland–Altman")]
    assert len(bland_altman_charts) == 3
    df = amra_cohort(700)
    complete = df.dropna(subset=["amra_thigh_muscle_cm3"])
    res = bland_altman(complete.amra_thigh_muscle_cm3, complete.tmv_cm3)
    corner = bland_altman_charts[0]["layout"]["annotations"][0]["text"]
    assert f"Mean difference {res.mean_difference:,.1f} cm³" in corner and corner.endswith(f"n = {res.n:,}")
    names = [[t.get("name") for t in c["data"]] for c in charts]
    assert sum("Least-squares line" in n for n in names) == 3  # AMRA pairs only; DEXA keeps Figure 3's view
    assert all("Mean difference" in n for n in names[3::2])


def test_concordance_page_without_amra_says_so() -> None:
    at = AppTest.from_function(_page_app, args=(False,), default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 2
    assert any("No AMRA values in this cohort" in i.value for i in at.info)
