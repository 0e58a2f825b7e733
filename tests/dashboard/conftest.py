from pathlib import Path

import pandas as pd
import pytest

from store.reader import Reader

# demo_home (the session's published 300-participant store) comes from tests/conftest.py


@pytest.fixture(scope="session")
def demo_participants(demo_home: Path) -> pd.DataFrame:
    with Reader(demo_home) as r:
        return r.participants()


@pytest.fixture
def msmv_home(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the dashboard (run in-process by AppTest) at the demo store."""
    monkeypatch.setenv("MSMV_HOME", str(demo_home))
    return demo_home
