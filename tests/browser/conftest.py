from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.server import DashboardServer
from tests.dashboard.demo_store import build_demo_store

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium, installed by `make test` (scripts/ensure_chromium.sh)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
DEMO_N = 2000


@pytest.fixture(scope="session")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = build_demo_store(tmp_path_factory.mktemp("browser_home"), n=DEMO_N, seed=5)
    with DashboardServer(home.root) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
