"""ICC(2,1) against Shrout & Fleiss's worked example and a closed form; the per-metric agreement table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.cohort.agreement import (
    AGREEMENT_METRICS,
    PAIR_COLUMNS,
    agreement_table,
    icc_2_1,
    mean_squares,
    paired,
)
from engine.errors import StatsError

# Shrout & Fleiss 1979, Table 2: four judges rate six targets.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_shrout_fleiss_worked_example():
    ms = mean_squares(SHROUT_FLEISS)
    # their Table 3: BMS 11.24, JMS 32.49, EMS 1.02
    assert (round(ms.rows, 2), round(ms.columns, 2), round(ms.error, 2)) == (11.24, 32.49, 1.02)
    assert round(icc_2_1(SHROUT_FLEISS), 2) == 0.29  # their ICC(2,1)


def test_two_raters_offset_by_a_constant_closed_form():
    # y = x + c exactly: MSE = 0, MSR = 2 var(x), MSC = n c^2 / 2, so ICC = var(x) / (var(x) + c^2 / 2)
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    c = 1.5
    expected = x.var(ddof=1) / (x.var(ddof=1) + c**2 / 2)
    assert icc_2_1(np.column_stack([x, x + c])) == pytest.approx(expected, rel=1e-12)
    assert icc_2_1(np.column_stack([x, x])) == pytest.approx(1.0)


def test_icc_drops_incomplete_rows_and_refuses_too_few():
    with_gap = [*SHROUT_FLEISS, [np.nan, 1, 2, 3]]
    assert icc_2_1(with_gap) == icc_2_1(SHROUT_FLEISS)
    with pytest.raises(StatsError, match="at least 2 complete targets and 2 raters, got 1 and 2"):
        icc_2_1([[1.0, 2.0], [np.nan, 3.0]])
    with pytest.raises(StatsError, match="do not vary"):
        icc_2_1([[2.0, 2.0], [2.0, 2.0]])


def _source(eids: list[int], scale: float, instance: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"eid": eids, "sex": 1, "age_stratum": "60-69", "imaging_instance": instance,
                          "has_imaging": True})
    for i, metric in enumerate(AGREEMENT_METRICS):
        frame[metric] = (100.0 + 10 * i + rng.normal(0, 5, len(eids))) * scale
    return frame[list(PAIR_COLUMNS)]


def test_the_table_pairs_shared_participants_and_names_what_is_missing():
    a = _source([1, 2, 3, 4, 5, 6], 1.0)
    b = a.copy()
    b[list(AGREEMENT_METRICS)] = a[list(AGREEMENT_METRICS)] + 2.0  # the second source reads 2 higher
    b.loc[b["eid"] == 6, "imaging_instance"] = 3  # another visit: not a pair
    b.loc[:, "vol_sartorius_cm3"] = np.nan  # not measured by the second source
    pairs = paired(a, b)
    assert pairs["eid"].tolist() == [1, 2, 3, 4, 5]
    table = agreement_table(pairs).set_index("metric")
    tmv = table.loc["tmv_cm3"]
    assert tmv["n"] == 5 and tmv["r"] == pytest.approx(1.0)
    assert tmv["mean_difference"] == pytest.approx(2.0) and tmv["lower_limit"] == pytest.approx(2.0)
    x = pairs["tmv_cm3_a"].to_numpy()
    assert tmv["icc"] == pytest.approx(x.var(ddof=1) / (x.var(ddof=1) + 2.0**2 / 2))
    sartorius = table.loc["vol_sartorius_cm3"]
    assert sartorius["n"] == 0 and np.isnan(sartorius["icc"]) and "got 0" in sartorius["error"]
    assert list(table.index) == list(AGREEMENT_METRICS) and len(table) == 29
