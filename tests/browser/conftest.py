from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.server import DashboardServer

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium, installed by `make test` (scripts/ensure_chromium.sh)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def dashboard_url(demo_home: Path) -> Iterator[str]:
    """The dashboard served from the session's demo store (tests/conftest.py; only read here)."""
    with DashboardServer(demo_home) as url:
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
