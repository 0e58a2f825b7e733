import pandas as pd
import pytest

from tests.cohort_data import synthetic_cohort


@pytest.fixture
def cohort() -> pd.DataFrame:
    """The shared synthetic wide table (240 participants, seed 3); a fresh copy per test, so edits stay local."""
    return synthetic_cohort()
