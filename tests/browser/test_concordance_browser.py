"""The Concordance page in a real headless Chromium: its title, all its charts and no error box (the check
test_pages_browser.py makes for the other pages, made here so the 2000-participant page is drawn once), and the
AMRA section's scatter with its line and Bland-Altman plots."""

import pytest

from dashboard.registry import PAGES
from tests.browser.test_pages_browser import ERROR_SELECTOR, MIN_CHARTS, TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AMRA_PAIRS = 3  # TMV, anterior and posterior compartments, each against AMRA
TITLE = next(p.title for p in PAGES if p.url_path == "concordance")


def test_concordance_page_draws_bland_altman_plots(dashboard_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1600, "height": 4000})
    page.goto(f"{dashboard_url}/concordance")
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot .gtitle')]"
        f".filter(t => t.textContent.startsWith('Bland–Altman')).length >= {AMRA_PAIRS}", timeout=TIMEOUT_MS)
    page.wait_for_function(f"[...document.querySelectorAll('h1')].some(h => h.innerText.trim() === {TITLE!r})",
                           timeout=TIMEOUT_MS)
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {MIN_CHARTS['concordance']}",
                           timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    assert page.locator(ERROR_SELECTOR).count() == 0, page.locator(ERROR_SELECTOR).first.inner_text()
    titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
    bland_altman = [t for t in titles if t.startswith("Bland–Altman")]
    assert len(bland_altman) == AMRA_PAIRS and all("(n = " in t for t in bland_altman)
    notes = " ".join(page.locator(".js-plotly-plot .annotation-text").all_text_contents())
    assert notes.count("95 % limits of agreement") == AMRA_PAIRS and notes.count("Mean difference") == AMRA_PAIRS
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert legend.count("Least-squares line") == AMRA_PAIRS and legend.count("Upper limit of agreement") == AMRA_PAIRS
    page.screenshot(path=str(tmp_path / "concordance_amra.png"), full_page=True)
