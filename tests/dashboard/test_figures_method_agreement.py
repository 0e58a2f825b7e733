"""The Agreement page's Bland-Altman figure and table: lines at the table's numbers, small groups hidden."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.figures.concordance import ConcordanceOptions
from dashboard.figures.method_agreement import bland_altman_figure, format_agreement_table
from engine.cohort.agreement import AGREEMENT_METRICS, agreement_table


def _pairs(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"eid": range(n), "sex": [0, 1] * (n // 2)})
    for metric in AGREEMENT_METRICS:
        a = rng.normal(500, 50, n)
        frame[f"{metric}_a"], frame[f"{metric}_b"] = a, a + rng.normal(10, 4, n)
    return frame


def test_the_plot_draws_each_pair_and_the_tables_limits():
    pairs = _pairs(20)
    row = agreement_table(pairs).iloc[0]  # TMV
    fig = bland_altman_figure(pairs, row, ("msmv", "simulated"))
    points = [t for t in fig.data if t.type == "scattergl"]
    assert sum(len(t.x) for t in points) == 20
    diff = pairs["tmv_cm3_b"] - pairs["tmv_cm3_a"]
    assert sorted(np.concatenate([t.y for t in points])) == sorted(diff)
    lines = {t.name: t.y[0] for t in fig.data if t.mode == "lines"}
    sd = diff.std(ddof=1)
    assert lines["Mean difference"] == diff.mean()
    assert np.isclose(lines["Upper limit of agreement"], diff.mean() + 1.96 * sd)


def test_an_aggregate_view_bins_the_pairs_and_hides_small_groups():
    pairs = _pairs(20)
    table = agreement_table(pairs)
    fig = bland_altman_figure(pairs, table.iloc[0], ("a", "b"), ConcordanceOptions(kind="density", min_count=5))
    assert {t.type for t in fig.data} == {"heatmap", "scatter"}  # the density and the three lines
    assert all(t.mode == "lines" for t in fig.data if t.type == "scatter")
    small = agreement_table(pairs.head(4))
    shown = format_agreement_table(small, min_count=5)
    assert set(shown["n"]) == {"< 5"} and set(shown["r"]) == {"–"} and set(shown["ICC(2,1)"]) == {"–"}
    assert set(shown["Note"]) == {"fewer than 5 shared participants"}
    assert format_agreement_table(table, min_count=5)["n"].iloc[0] == "20"
