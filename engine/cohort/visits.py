"""Change between a participant's imaging visits (UK Biobank instance 2, and the repeat visit 3).

About 60,000 participants were imaged twice, some years apart. Per structure (left + right), the
change from the first to the last imaged visit, and per year when both visits' dates are on record
(field 53); otherwise the interval is unknown and no yearly rate is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from store.structures import STRUCTURES

DAYS_PER_YEAR = 365.25  # mean Gregorian year, leap years included
INTERVAL_UNKNOWN = "interval unknown"

VISIT_COLUMNS: tuple[str, ...] = ("label", "name", "compartment", "first_cm3", "last_cm3", "change_cm3",
                                  "change_pct", "change_per_year_cm3")  # fmt: skip


@dataclass(frozen=True)
class VisitChange:
    """Per-structure change between two imaging visits of one participant."""

    first: int  # instance of the earlier visit
    last: int  # instance of the later visit
    first_date: date | None
    last_date: date | None
    table: pd.DataFrame  # VISIT_COLUMNS, one row per structure measured at both visits

    @property
    def years(self) -> float | None:
        """Years between the visits, or None when either date is unknown."""
        if self.first_date is None or self.last_date is None:
            return None
        return (self.last_date - self.first_date).days / DAYS_PER_YEAR

    def interval_text(self) -> str:
        """"2.4 years (2015-03-02 to 2017-08-01)" or "interval unknown"."""
        if self.years is None:
            return INTERVAL_UNKNOWN
        return f"{self.years:.1f} years ({self.first_date:%Y-%m-%d} to {self.last_date:%Y-%m-%d})"


def imaged_instances(metrics: pd.DataFrame) -> list[int]:
    """The imaging visits (instances) with structure metrics, earliest first."""
    return sorted({int(i) for i in metrics["instance"]}) if len(metrics) else []


def visit_change(metrics: pd.DataFrame, dates: pd.DataFrame) -> VisitChange | None:
    """Change from the first to the last imaged visit; None with fewer than two visits.

    ``metrics``: long rows of one participant with ``instance``, ``label``, ``side`` and
    ``volume_cm3`` (:meth:`store.reader.Reader.structure_metrics`); ``dates``: ``instance`` and
    ``visit_date`` (:meth:`store.reader.Reader.visit_dates`). A structure missing a side at either
    visit is left out (its total is unknown).
    """
    instances = imaged_instances(metrics)
    if len(instances) < 2:
        return None
    first, last = instances[0], instances[-1]
    sides = metrics.groupby(["instance", "label"])["volume_cm3"].agg(["sum", "count"])
    complete = sides[sides["count"] == 2]["sum"]
    both = pd.DataFrame({"first_cm3": complete.xs(first, level="instance"),
                         "last_cm3": complete.xs(last, level="instance")}).dropna()
    when = {int(r.instance): _as_date(r.visit_date) for r in dates.itertuples()}
    change = VisitChange(first, last, when.get(first), when.get(last), pd.DataFrame())
    names = {s.label: (s.name, s.compartment) for s in STRUCTURES}
    table = both.reset_index().rename(columns={"index": "label"})
    table["name"] = [names[int(lab)][0] for lab in table["label"]]
    table["compartment"] = [names[int(lab)][1] for lab in table["label"]]
    table["change_cm3"] = table["last_cm3"] - table["first_cm3"]
    table["change_pct"] = 100.0 * table["change_cm3"] / table["first_cm3"].where(table["first_cm3"] != 0)
    years = change.years
    table["change_per_year_cm3"] = table["change_cm3"] / years if years else float("nan")
    table = table.sort_values("label").reset_index(drop=True)[list(VISIT_COLUMNS)]
    return VisitChange(first, last, change.first_date, change.last_date, table)


def _as_date(value: object) -> date | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date()
