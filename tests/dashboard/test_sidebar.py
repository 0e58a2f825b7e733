import numpy as np
import pandas as pd
import pytest

from dashboard.sidebar import BMI_STEP, filter_keys, filter_options
from store.filters import CohortFilter


def test_filter_options_round_bounds_outward_and_list_choices():
    df = pd.DataFrame({
        "age": [50.4, 61.0, 79.6, np.nan],
        "bmi": [18.26, 24.0, 41.3, 30.0],
        "centre": ["Reading", "Cheadle", "Reading", None],
        "source": ["simulated", "simulated", "ukb", "ukb"],
    })
    opts = filter_options(df)
    assert opts.age_bounds == (50.0, 80.0)
    assert opts.bmi_bounds == (18.0, 41.5) and BMI_STEP == 0.5
    assert opts.centres == ("Cheadle", "Reading") and opts.sources == ("simulated", "ukb")


def test_filter_options_of_a_single_value_still_give_a_range():
    opts = filter_options(pd.DataFrame({"age": [60.0], "bmi": [25.0], "centre": ["x"], "source": ["ukb"]}))
    assert opts.age_bounds == (60.0, 61.0) and opts.bmi_bounds == (25.0, 25.5)


def test_filter_options_name_missing_columns():
    with pytest.raises(ValueError, match=r"lack column\(s\) \['bmi', 'source'\]"):
        filter_options(pd.DataFrame({"age": [1.0], "centre": ["x"]}))


def test_filter_keys_are_exactly_what_a_full_filter_writes_and_round_trip():
    full = CohortFilter(sex=(0,), age=(60.0, 70.0), bmi=(20.0, 30.5), centre=("Reading",), source=("ukb",),
                        exclude_qc=True, metric_source="musclemap")
    params = full.to_query_params()
    assert set(params) == filter_keys() == {"sex", "age", "bmi", "centre", "source", "qc", "metrics"}
    assert CohortFilter.from_query_params(params) == full
