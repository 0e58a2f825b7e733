import numpy as np
import pandas as pd
import pytest

from dashboard.figures.cohort import (
    BOX_HALF_OFFSET,
    FIGURE4_PANELS,
    BoxPlotOptions,
    age_sex_boxplot,
    below_cutoff_chart,
    box_centre,
    distinct_on_screen,
    figure4,
)
from store.metrics import BY_NAME
from store.vocabulary import FEMALE, MALE
from tests.cohort_data import synthetic_cohort

CUTOFFS = {MALE: 7.0, FEMALE: 5.5}


def _boxes(fig):
    return {t.name: t for t in fig.data if t.type == "box"}


def test_precomputed_boxes_equal_numpy_quartiles_per_stratum_and_sex(cohort):
    df = cohort
    fig = age_sex_boxplot(df, "almi", title="t", y_title="y")
    strata = sorted(df["age_stratum"].unique())
    for sex, name in ((MALE, "Men"), (FEMALE, "Women")):
        box = _boxes(fig)[name]
        assert list(box.x) == [i + (-BOX_HALF_OFFSET if sex == MALE else BOX_HALF_OFFSET) for i in range(4)]
        for i, stratum in enumerate(strata):
            v = df.loc[(df.sex == sex) & (df.age_stratum == stratum), "almi"].to_numpy()
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            assert box.q1[i] == pytest.approx(q1) and box.median[i] == pytest.approx(med)
            assert box.q3[i] == pytest.approx(q3)
            assert v.min() <= box.lowerfence[i] <= q1 and q3 <= box.upperfence[i] <= v.max()


def test_n_labels_sit_under_each_box_and_count_non_missing_rows(cohort):
    df = cohort
    df.loc[df.index[:5], "tmv_cm3"] = np.nan  # missing values are not counted
    fig = age_sex_boxplot(df, "tmv_cm3", title="t", y_title="y")
    labels = {(round(a.x, 6)): a for a in fig.layout.annotations if a.text.startswith("n=")}
    strata = sorted(df["age_stratum"].unique())
    assert len(labels) == 8
    for i, stratum in enumerate(strata):
        for sex in (MALE, FEMALE):
            rows = df[(df.sex == sex) & (df.age_stratum == stratum)]["tmv_cm3"].dropna()
            a = labels[round(box_centre(i, sex), 6)]
            assert a.text == f"n={rows.size:,}"
            assert a.y <= rows.min() + 1e-9 and a.yanchor == "top"  # below the lowest drawn point


def test_cutoff_lines_at_given_values_in_sex_colours(cohort):
    fig = age_sex_boxplot(cohort, "almi", title="t", y_title="y", cutoffs=CUTOFFS)
    lines = [(s.y0, s.y1, s.line.dash, s.line.color) for s in fig.layout.shapes]
    assert sorted(lines) == sorted([(5.5, 5.5, "dash", "#c0392b"), (7.0, 7.0, "dash", "#1f5fa8")])
    labels = {(a.y, a.text, a.font.color) for a in fig.layout.annotations if a.xref == "paper"}
    assert labels == {(7.0, "7", "#1f5fa8"), (5.5, "5.5", "#c0392b")}


def test_raw_mode_ships_every_value_and_precomputed_ships_only_outliers():
    df = synthetic_cohort(n=400)
    raw = age_sex_boxplot(df, "tvi", title="t", y_title="y", options=BoxPlotOptions(precompute=False))
    assert sum(len(t.y) for t in raw.data) == 400
    pre = age_sex_boxplot(df, "tvi", title="t", y_title="y")
    assert all(t.y is None for t in pre.data if t.type == "box")
    assert sum(len(t.y) for t in pre.data if t.type == "scatter") < 40


def test_outliers_are_exactly_beyond_whiskers():
    df = synthetic_cohort(n=300)
    men_6069 = df.index[(df.sex == MALE) & (df.age_stratum == "60-69")]
    df.loc[men_6069[0], "almi"] = 20.0  # far above any whisker
    fig = age_sex_boxplot(df, "almi", title="t", y_title="y")
    out = next(t for t in fig.data if t.type == "scatter" and t.name == "Men outliers")
    assert 20.0 in list(out.y)
    assert box_centre(1, MALE) in list(out.x)


def test_figure4_has_three_panels_and_cutoffs_only_on_almi(cohort):
    figs = figure4(cohort, almi_cutoffs=CUTOFFS)
    assert [f.layout.yaxis.title.text for f in figs] == ["ALMI (kg/m²)", "TMV (cm³)", "TVI (cm³/cm²)"]
    # each axis shows the store's title of the metric the panel plots, and the age axis the age column's
    assert [f.layout.yaxis.title.text for f in figs] == [BY_NAME[p.metric].title for p in FIGURE4_PANELS]
    assert {f.layout.xaxis.title.text for f in figs} == {"Age (years)"} == {BY_NAME["age"].title}
    assert [len(f.layout.shapes) for f in figs] == [2, 0, 0]


def test_below_cutoff_bars_are_percentages_in_stratum_order():
    summary = pd.DataFrame({
        "age_stratum": ["60-69", "50-59", "60-69", "50-59"],
        "sex": [MALE, MALE, FEMALE, FEMALE],
        "n": [200, 100, 50, 80],
        "n_below": [30, 5, 10, 8],
    })
    fig = below_cutoff_chart(summary)
    men, women = fig.data
    assert list(men.x) == ["50-59", "60-69"] and list(men.y) == pytest.approx([5.0, 15.0])
    assert list(women.y) == pytest.approx([10.0, 20.0]) and list(women.text) == ["10.0%", "20.0%"]


def test_builders_name_missing_columns_and_bad_sex():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['tvi'\]"):
        age_sex_boxplot(pd.DataFrame({"sex": [1], "age_stratum": ["50-59"]}), "tvi", title="t", y_title="y")
    with pytest.raises(TypeError, match="expected a pandas DataFrame, got list"):
        below_cutoff_chart([1, 2])
    with pytest.raises(ValueError, match="sex must be 1 .male. or 0 .female., got 2"):
        box_centre(0, 2)


def test_below_cutoff_chart_draws_the_analysis_table():
    from engine.cohort.tables import below_cutoff_trend

    df = synthetic_cohort(n=400)
    summary = below_cutoff_trend(df)
    fig = below_cutoff_chart(summary)
    men = next(t for t in fig.data if t.name == "Men")
    for stratum, pct in zip(men.x, men.y, strict=True):
        rows = df[(df.sex == MALE) & (df.age_stratum == stratum)]
        assert pct == pytest.approx(100.0 * (rows.almi < 7.0).mean())
    p_men = summary.loc[summary.sex == MALE, "trend_p"].iloc[0]
    assert f"men z = {summary.loc[summary.sex == MALE, 'trend_z'].iloc[0]:.2f}, p = {p_men:.2g}" in (
        fig.layout.title.subtitle.text)


def test_outliers_on_the_same_pixel_are_sent_once():
    df = synthetic_cohort(n=300)
    men_6069 = df.index[(df.sex == MALE) & (df.age_stratum == "60-69")]
    df.loc[men_6069[:6], "almi"] = [20.0, 20.0, 20.0 + 1e-6, 20.0, 25.0, 25.0]  # two places far above the box
    fig = age_sex_boxplot(df, "almi", title="t", y_title="y")
    out = next(t for t in fig.data if t.type == "scatter" and t.name == "Men outliers")
    high = [y for x, y in zip(out.x, out.y, strict=True) if x == box_centre(1, MALE) and y >= 20]
    assert high == [20.0, 25.0]  # one marker each, the lowest value of its pixel
    span = df["almi"].max() - df["almi"].min()
    assert list(distinct_on_screen(np.array([1.0, 1.0 + span / 4000, 1.0 + span / 1000]), 1.0, span)) == [
        1.0, 1.0 + span / 1000]
