"""Figure builders of the Concordance and Associations pages and the age-trend section; page renders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.associations import forest_figure, format_forest, or_text
from dashboard.figures.concordance import ConcordanceOptions, concordance_figure, format_concordance
from dashboard.figures.trends import decline_figure
from engine.cohort.stats import decline_per_decade, pearson
from engine.cohort.tables import age_trends, concordance, forest_table, sex_stratified
from store.metrics import BY_NAME
from tests.cohort_data import OutcomeTruth, synthetic_cohort

# Weak grip and death depend on the P/A tertile; the figures are checked against the tables, not the truth.
STATS_OUTCOMES = {"low_muscle_mass": OutcomeTruth(0.12, 1.0), "weak_grip": OutcomeTruth(0.14, 1.8),
                  "sarcopenia": OutcomeTruth(0.05, 1.0), "died": OutcomeTruth(0.04, 1.5),
                  "falls": OutcomeTruth(0.18, 1.0)}


def stats_cohort(n: int = 1500, seed: int = 11) -> pd.DataFrame:
    """The shared cohort with every column the stats pages use, and one DEXA leg mass missing (row 3)."""
    df = synthetic_cohort(n, seed, analysis=True, outcomes=STATS_OUTCOMES, exposure="pa_ratio")
    df.loc[3, "legs_lean_kg"] = np.nan  # so the concordance n is one short of the cohort: 1,499 of 1,500
    return df


# ------------------------------------------------------------------------ concordance


def test_concordance_figure_points_and_r_annotation() -> None:
    df = stats_cohort()
    fig = concordance_figure(df, "tmv_legs", concordance(df, "legs_lean_kg", "tmv_cm3"))
    assert [type(t) for t in fig.data] == [go.Scattergl, go.Scattergl]
    men = df[(df.sex == 1) & df.legs_lean_kg.notna()]
    assert fig.data[0].name == "Men"
    np.testing.assert_array_equal(fig.data[0].x, men.legs_lean_kg.to_numpy())
    np.testing.assert_array_equal(fig.data[0].y, men.tmv_cm3.to_numpy())
    assert len(fig.data[0].x) + len(fig.data[1].x) == len(df) - 1
    complete = df.dropna(subset=["legs_lean_kg"])
    expected = pearson(complete.legs_lean_kg, complete.tmv_cm3)
    meta = {row["group"]: row for row in fig.layout.meta["pearson"]}
    assert meta["All"]["r"] == pytest.approx(expected.r, rel=1e-12)
    assert meta["All"]["ci_low"] == pytest.approx(expected.ci_low, rel=1e-12)
    assert meta["All"]["n"] == expected.n == len(df) - 1
    women = complete[complete.sex == 0]
    assert meta["Women"]["r"] == pytest.approx(pearson(women.legs_lean_kg, women.tmv_cm3).r, rel=1e-12)
    text = fig.layout.annotations[0].text
    assert f"All: r = {expected.r:.3f} (95 % CI {expected.ci_low:.3f}–{expected.ci_high:.3f}), n = 1,499" in text
    assert text.count("r = ") == 3


def test_concordance_figure_density_and_errors() -> None:
    df = stats_cohort(400)
    stats = concordance(df, "almi", "tvi")
    fig = concordance_figure(df, "tvi_almi", stats, ConcordanceOptions(kind="density", density_bins=20))
    # binned on the server: a 20 x 20 grid of counts, every participant in one bin, no point shipped
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    z = np.asarray(fig.data[0].z, dtype=float)
    expected, _, _ = np.histogram2d(df["almi"], df["tvi"], bins=20)
    np.testing.assert_array_equal(np.nan_to_num(z), expected.T)
    assert np.nansum(z) == 400 and len(fig.data[0].x) == 20
    # the axes show the store's titles of the pair's columns (DEXA ALMI on x, MRI TVI on y)
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("ALMI (kg/m²)", "TVI (cm³/cm²)")
    assert fig.layout.xaxis.title.text == BY_NAME["almi"].title and fig.layout.yaxis.title.text == BY_NAME["tvi"].title
    pooled = concordance_figure(df, "tvi_almi", stats, ConcordanceOptions(by_sex=False))
    assert len(pooled.data) == 1 and len(pooled.data[0].x) == 400
    table = pd.DataFrame({"group": ["All", "Men"], "n": [400, 3], "r": [0.91234, np.nan], "ci_low": [0.9, np.nan],
                          "ci_high": [0.92, np.nan], "p_value": [1e-300, np.nan], "error": ["", "too few"]})
    shown = format_concordance(table)
    assert list(shown["r"]) == ["0.912", "–"] and list(shown["p"]) == ["< 0.001", "–"]
    assert shown.loc[0, "95 % CI"] == "0.900–0.920" and shown.loc[1, "Note"] == "too few"
    with pytest.raises(ValueError, match="unknown concordance pair 'x'"):
        concordance_figure(df, "x", stats)
    with pytest.raises(ValueError, match="kind must be one of"):
        concordance_figure(df, "tvi_almi", stats, ConcordanceOptions(kind="hexbin"))
    with pytest.raises(ValueError, match=r"lacks columns \['ci_low', 'ci_high'\]"):
        concordance_figure(df, "tvi_almi", stats.drop(columns=["ci_low", "ci_high"]))


def test_concordance_figure_writes_the_table_it_is_given() -> None:
    df = stats_cohort(200)
    table = pd.DataFrame({"group": ["All", "Men", "Women"], "n": [200, 101, 99], "r": [0.5, 0.25, np.nan],
                          "ci_low": [0.4, 0.1, np.nan], "ci_high": [0.6, 0.375, np.nan],
                          "p_value": [1e-5, 0.01, np.nan], "error": ["", "", "fewer than 3 pairs"]})
    fig = concordance_figure(df, "tmv_legs", table)  # not recomputed from df: these r are made up
    assert fig.layout.annotations[0].text == ("All: r = 0.500 (95 % CI 0.400–0.600), n = 200<br>"
                                              "Men: r = 0.250 (95 % CI 0.100–0.375), n = 101<br>"
                                              "Women: r not available (fewer than 3 pairs)")
    assert [row["r"] for row in fig.layout.meta["pearson"]][:2] == [0.5, 0.25]


# ------------------------------------------------------------------------ forest plots


def test_forest_figure_plots_the_table() -> None:
    df = stats_cohort()
    table = forest_table(df, "pa_ratio", ci="wald")
    fig = forest_figure(table)
    assert len(fig.data) == 1
    trace = fig.data[0]
    np.testing.assert_allclose(trace.x, table.odds_ratio)
    np.testing.assert_allclose(trace.error_x.array, table.ci_high - table.odds_ratio)
    np.testing.assert_allclose(trace.error_x.arrayminus, table.odds_ratio - table.ci_low)
    assert list(trace.y) == [4, 3, 2, 1, 0]  # first outcome on top
    assert list(fig.layout.yaxis.ticktext) == list(table.outcome_label)
    assert fig.layout.xaxis.type == "log"
    texts = [a.text for a in fig.layout.annotations if a.name == "or_text"]
    row = table.iloc[1]
    assert texts[1] == (f"{row.odds_ratio:.2f} ({row.ci_low:.2f}–{row.ci_high:.2f}) · "
                        f"{int(row.events_high):,}/{int(row.events_low):,}")
    assert any(s.type == "line" and s.x0 == 1.0 for s in fig.layout.shapes)


def test_forest_figure_by_sex_and_unestimable_rows() -> None:
    df = stats_cohort()
    table = sex_stratified(df, "pa_ratio", outcomes=["weak_grip", "died"], ci="wald")
    fig = forest_figure(table)
    assert [t.name for t in fig.data] == ["Men", "Women"]
    men = table[table.sex == 1]
    np.testing.assert_allclose(fig.data[0].x, men.odds_ratio)
    assert list(fig.data[0].y) == pytest.approx([1.18, 0.18])
    assert list(fig.data[1].y) == pytest.approx([0.82, -0.18])
    bad = table.copy()
    bad.loc[0, ["odds_ratio", "ci_low", "ci_high"]] = np.nan
    fig_bad = forest_figure(bad)
    assert len(fig_bad.data[0].x) == 1
    assert or_text(bad.iloc[0]).startswith("not estimable · ")
    shown = format_forest(bad)
    assert list(shown.columns[:3]) == ["Outcome", "Sex", "OR (95 % CI)"]
    assert shown.loc[0, "OR (95 % CI)"] == "–"
    assert shown.loc[1, "Adjusted for"] == "Age, BMI, Activity group"  # sex is the stratum
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['odds_ratio'"):
        forest_figure(table.drop(columns=["odds_ratio"]))


def test_format_forest_p_values() -> None:
    table = pd.DataFrame({"outcome_label": ["A", "B"], "odds_ratio": [1.6, 1.02], "ci_low": [1.45, 0.93],
                          "ci_high": [1.77, 1.11], "p_value": [1e-6, 0.6812], "n": [100, 90],
                          "events_high": [1083, 1096], "events_low": [698, 1076]})
    shown = format_forest(table)
    assert list(shown["OR (95 % CI)"]) == ["1.60 (1.45–1.77)", "1.02 (0.93–1.11)"]
    assert list(shown["p"]) == ["< 0.001", "0.681"]
    assert list(shown["Events high/low"]) == ["1,083/698", "1,096/1,076"]


# ------------------------------------------------------------------------ age trends


def test_decline_figure_points_are_the_estimates() -> None:
    df = stats_cohort()
    trends = age_trends(df)
    fig = decline_figure(trends)
    assert len(fig.data) == 6  # 3 metrics x 2 sexes
    men_almi = df[df.sex == 1]
    expected = decline_per_decade(men_almi.age, men_almi.almi)
    first = fig.data[0]
    assert first.x == ("Men",) and first.y[0] == pytest.approx(expected.estimate, rel=1e-12)
    assert first.error_y.array[0] == pytest.approx(expected.ci_high - expected.estimate, rel=1e-9)
    assert [a.text for a in fig.layout.annotations][:3] == ["ALMI (kg/m²)", "TMV (cm³)", "TVI (cm³/cm²)"]
    assert [a.text for a in fig.layout.annotations][:3] == [BY_NAME[c].title for c in ("almi", "tmv_cm3", "tvi")]


# ------------------------------------------------------------------------ pages (AppTest, no store)


def _page_app(page: str) -> None:
    import runpy

    import dashboard.ui
    from tests.dashboard.test_figures_stats import stats_cohort

    def fake_cohort_page(title: str) -> "pd.DataFrame":  # noqa: UP037 (the AppTest script has no __future__ import)
        import streamlit as st

        st.title(title)
        return stats_cohort(900)

    # AppTest runs the script in this process: put the real loader back, or every later page test
    # (the Cohort page's included) would render this fake cohort instead of its store.
    real = dashboard.ui.cohort_page
    dashboard.ui.cohort_page = fake_cohort_page
    try:
        runpy.run_path(page, run_name="__main__")
    finally:
        dashboard.ui.cohort_page = real


@pytest.mark.parametrize("page", ["pages/concordance.py", "pages/associations.py"])
def test_pages_render_with_a_cohort(page: str) -> None:
    at = AppTest.from_function(_page_app, args=(page,), default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 2
    assert not at.error


def test_concordance_page_figure_and_table_show_one_r() -> None:
    at = AppTest.from_function(_page_app, args=("pages/concordance.py",), default_timeout=60).run()
    assert not at.exception, at.exception
    df = stats_cohort(900)
    for chart, shown, (x, y) in zip(at.get("plotly_chart"), at.dataframe,
                                    [("legs_lean_kg", "tmv_cm3"), ("almi", "tvi")], strict=True):
        complete = df.dropna(subset=[x, y])
        r = pearson(complete[x], complete[y]).r
        assert shown.value["r"].iloc[0] == f"{r:.3f}"
        assert f"All: r = {r:.3f}" in chart.proto.spec


def test_associations_page_recomputes_on_a_new_choice() -> None:
    at = AppTest.from_function(_page_app, args=("pages/associations.py",), default_timeout=60).run()
    first = at.dataframe[0].value
    at.radio(key="assoc_ci").set_value("wald").run()
    second = at.dataframe[0].value
    assert first["OR (95 % CI)"].tolist() != second["OR (95 % CI)"].tolist()  # profile vs Wald bounds differ
    at.selectbox(key="assoc_metric").set_value("share:gracilis").run()
    assert not at.exception
    assert "Gracilis" in at.get("plotly_chart")[0].proto.spec
