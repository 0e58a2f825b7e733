"""Every registered page runs against a small demo store without an exception or an error box."""

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import NAVIGATION, PAGES, ROOT, registered_pages

PAGE_TIMEOUT_S = 120  # a cold page imports plotly/scipy/statsmodels on two shared CPU cores


@pytest.mark.parametrize("page", PAGES, ids=[p.url_path for p in PAGES])
def test_every_registered_page_runs(page, msmv_home):
    at = AppTest.from_file(str(page.path), default_timeout=PAGE_TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_registry_keeps_navigation_order_and_only_existing_files():
    assert PAGES[0].file == "pages/cohort.py"
    order = [p.file for p in NAVIGATION]
    assert [order.index(p.file) for p in PAGES] == sorted(order.index(p.file) for p in PAGES)
    expected = [p.file for p in NAVIGATION if (ROOT / p.file).is_file()]
    assert [p.file for p in registered_pages()] == expected
    ghost = NAVIGATION[0].__class__("pages/no_such_page.py", "Ghost", ":material/help:", "ghost")
    assert registered_pages((*NAVIGATION[:1], ghost)) == NAVIGATION[:1]


def test_app_navigates_to_every_page(msmv_home):
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=PAGE_TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Cohort"  # the default page
    for page in PAGES[1:]:
        at.switch_page(str(page.path)).run()
        assert not at.exception, (page.file, [e.value for e in at.exception])
