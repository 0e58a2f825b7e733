from pathlib import Path

import pandas as pd
import pytest

from store.reader import Reader
from tests.dashboard.demo_store import build_demo_store


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published 300-participant simulated store (built once per test session)."""
    return build_demo_store(tmp_path_factory.mktemp("msmv_home")).root


@pytest.fixture(scope="session")
def demo_participants(demo_home: Path) -> pd.DataFrame:
    with Reader(demo_home) as r:
        return r.participants()


@pytest.fixture
def msmv_home(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the dashboard (run in-process by AppTest) at the demo store."""
    monkeypatch.setenv("MSMV_HOME", str(demo_home))
    return demo_home
