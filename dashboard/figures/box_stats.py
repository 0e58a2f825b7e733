"""Tukey box-plot statistics computed on the server, so a chart ships five numbers per box.

At 37,004 participants a plotly box trace fed raw values carries every point to the browser and
lets plotly.js sort them; precomputed statistics keep the figure small (benchmarks/cohort_page.py
measures both). The definitions match plotly's defaults so the picture is the same either way:
quartiles by linear interpolation (``quartilemethod="linear"``, numpy's default percentile) and
whiskers at the most extreme observations within 1.5 x IQR of the box (Tukey).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TUKEY_WHISKER_IQR = 1.5  # Tukey (1977); the study's Figure 4 caption: "whiskers extending to 1.5xIQR"


@dataclass(frozen=True)
class BoxStats:
    """The numbers one box is drawn from."""

    n: int
    q1: float
    median: float
    q3: float
    lower_whisker: float  # smallest observation >= q1 - k*IQR
    upper_whisker: float  # largest observation <= q3 + k*IQR
    outliers: npt.NDArray[np.float64]  # observations beyond the whiskers, sorted


def box_stats(values: npt.ArrayLike, *, whisker_iqr: float = TUKEY_WHISKER_IQR) -> BoxStats:
    """Quartiles, Tukey whiskers and outliers of ``values``; NaNs are dropped.

    Raises
    ------
    ValueError
        When no finite value is left, or ``whisker_iqr`` is negative.
    """
    if whisker_iqr < 0:
        raise ValueError(f"whisker_iqr must be >= 0, got {whisker_iqr}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = np.sort(x[np.isfinite(x)])
    if x.size == 0:
        raise ValueError("box_stats needs at least one finite value, got none")
    q1, median, q3 = np.percentile(x, [25.0, 50.0, 75.0])
    reach = whisker_iqr * (q3 - q1)
    inside = x[(x >= q1 - reach) & (x <= q3 + reach)]
    # The box itself always holds data, so ``inside`` is never empty.
    lower, upper = float(inside[0]), float(inside[-1])
    outliers = x[(x < lower) | (x > upper)]
    return BoxStats(int(x.size), float(q1), float(median), float(q3), lower, upper, outliers)
