from pathlib import Path

import pandas as pd
import pytest

from tests.cohort_data import synthetic_cohort
from tests.dashboard.demo_store import build_demo_store


@pytest.fixture
def cohort() -> pd.DataFrame:
    """The shared synthetic wide table (240 participants, seed 3); a fresh copy per test, so edits stay local."""
    return synthetic_cohort()


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published 300-participant simulated store, built once per test session and shared by the
    dashboard's AppTests and the browser tests. Read it only: a test that writes copies it first
    (``shutil.copytree``, as tests/browser/test_subject_browser.py does)."""
    return build_demo_store(tmp_path_factory.mktemp("msmv_home")).root
