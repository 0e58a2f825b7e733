"""The Cohort page in a real headless Chromium: charts drawn, no error, simulated-data banner shown."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS_TIMEOUT_MS = 240_000  # generous: the shared 2-core machine can be heavily loaded
COHORT_CHARTS = 4  # Figure 4 a-c and the below-cut-off bars; the age-trends section adds its own
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def test_cohort_page_draws_its_charts(dashboard_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1600, "height": 3400})
    page.goto(dashboard_url)  # the Cohort page is the default page (served at /)
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {COHORT_CHARTS}",
                           timeout=CHARTS_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
    assert titles[:4] == ["a · ALMI (DEXA) by age and sex", "b · Thigh muscle volume (MRI) by age and sex",
                          "c · Thigh volume index by age and sex", "Below the EWGSOP2 ALMI cut-off"]
    assert page.locator(ERROR_SELECTOR).count() == 0
    assert "Simulated data" in page.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
    assert page.get_by_text("Table 1 · characteristics by sex").is_visible()
    page.screenshot(path=str(tmp_path / "cohort.png"), full_page=True)


def test_filter_in_the_url_is_applied_in_the_browser(dashboard_url, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 3400})
    page.goto(f"{dashboard_url}/?sex=0&age=60~70")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4",
                           timeout=CHARTS_TIMEOUT_MS)
    # Only women are shown: no box in the men's colour, and the URL keeps the filter
    legend = page.locator(".js-plotly-plot").first.locator(".legendtext").all_text_contents()
    assert legend == ["Women"]
    search = page.evaluate("location.search")
    assert "sex=0" in search and "age=60~70" in search
    # and a widget change goes back into the address bar: selecting men too removes the sex restriction
    page.get_by_role("button", name="Men").first.click()
    page.wait_for_function("!location.search.includes('sex=') && location.search.includes('age=60~70')",
                           timeout=CHARTS_TIMEOUT_MS)
    page.wait_for_function("document.querySelector('.js-plotly-plot .legendtext') && "
                           "document.querySelectorAll('.js-plotly-plot')[0].querySelectorAll('.legendtext').length == 2",
                           timeout=CHARTS_TIMEOUT_MS)
