import numpy as np
import pytest

from dashboard.figures.box_stats import box_stats


def test_quartiles_match_numpy_and_whiskers_match_brute_force():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(10.0, 2.0, 501), [30.0, -15.0, np.nan]])
    s = box_stats(x)
    finite = x[np.isfinite(x)]
    q1, med, q3 = np.percentile(finite, [25, 50, 75])
    assert (s.n, s.q1, s.median, s.q3) == (finite.size, q1, med, q3)
    iqr = q3 - q1
    inside = [v for v in finite if q1 - 1.5 * iqr <= v <= q3 + 1.5 * iqr]
    assert s.lower_whisker == min(inside) and s.upper_whisker == max(inside)
    expected_out = sorted(v for v in finite if v < min(inside) or v > max(inside))
    assert s.outliers.tolist() == expected_out
    assert 30.0 in expected_out and -15.0 in expected_out


def test_small_closed_form():
    # 1..9 plus 100: q1 = 3.25, median 5.5, q3 = 7.75 (linear); fence 7.75 + 6.75 = 14.5 -> 100 is an outlier
    s = box_stats([*range(1, 10), 100])
    assert (s.q1, s.median, s.q3) == (3.25, 5.5, 7.75)
    assert (s.lower_whisker, s.upper_whisker) == (1.0, 9.0)
    assert s.outliers.tolist() == [100.0]


def test_rejects_empty_and_negative_whisker():
    with pytest.raises(ValueError, match="at least one finite value"):
        box_stats([np.nan])
    with pytest.raises(ValueError, match="whisker_iqr must be >= 0, got -1"):
        box_stats([1.0], whisker_iqr=-1)
