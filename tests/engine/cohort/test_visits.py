"""Change per structure between two imaging visits, per year when both dates are known."""

from __future__ import annotations

import math

import pandas as pd

from engine.cohort.visits import INTERVAL_UNKNOWN, visit_change
from store.structures import STRUCTURES


def _metrics(volumes: dict[int, float]) -> pd.DataFrame:
    rows = [{"instance": inst, "label": s.label, "side": side, "volume_cm3": vol / 2}
            for inst, vol in volumes.items() for s in STRUCTURES for side in ("left", "right")]
    return pd.DataFrame(rows)


def test_change_per_year_from_the_visit_dates():
    dates = pd.DataFrame({"instance": [2, 3], "visit_date": pd.to_datetime(["2015-01-01", "2017-01-01"])})
    change = visit_change(_metrics({2: 100.0, 3: 95.0}), dates)
    assert (change.first, change.last) == (2, 3)
    assert math.isclose(change.years, 731 / 365.25)  # 2016 is a leap year
    row = change.table.iloc[0]
    assert row["name"] == STRUCTURES[0].name and row["first_cm3"] == 100.0 and row["last_cm3"] == 95.0
    assert row["change_cm3"] == -5.0 and math.isclose(row["change_pct"], -5.0)
    assert math.isclose(row["change_per_year_cm3"], -5.0 / (731 / 365.25))
    assert len(change.table) == len(STRUCTURES)
    assert change.interval_text() == "2.0 years (2015-01-01 to 2017-01-01)"


def test_interval_unknown_without_both_dates():
    dates = pd.DataFrame({"instance": [2], "visit_date": pd.to_datetime(["2015-01-01"])})
    change = visit_change(_metrics({2: 100.0, 3: 110.0}), dates)
    assert change.years is None and change.interval_text() == INTERVAL_UNKNOWN
    assert change.table["change_cm3"].tolist() == [10.0] * len(STRUCTURES)
    assert change.table["change_per_year_cm3"].isna().all()


def test_one_visit_or_a_missing_side_gives_no_change_for_it():
    assert visit_change(_metrics({2: 100.0}), pd.DataFrame(columns=["instance", "visit_date"])) is None
    m = _metrics({2: 100.0, 3: 90.0})
    m = m[~((m["instance"] == 3) & (m["label"] == 1) & (m["side"] == "left"))]
    change = visit_change(m, pd.DataFrame(columns=["instance", "visit_date"]))
    assert 1 not in change.table["label"].tolist() and len(change.table) == len(STRUCTURES) - 1
