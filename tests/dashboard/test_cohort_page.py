"""The Cohort page's content against the demo store, and the sidebar filter's URL round trip."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.figures.cohort import FIGURE4_PANELS
from dashboard.registry import ROOT
from dashboard.ui import SIMULATED_BANNER

COHORT = str(ROOT / "pages" / "cohort.py")
TIMEOUT_S = 120


def _table1_n(at: AppTest) -> tuple[int, int]:
    t1 = at.dataframe[0].value.set_index("variable")
    return int(t1.loc["n", "men"].replace(",", "")), int(t1.loc["n", "women"].replace(",", ""))


def test_cohort_page_shows_table1_figure4_and_banner(msmv_home, demo_participants):
    at = AppTest.from_file(COHORT, default_timeout=TIMEOUT_S).run()
    assert not at.exception and not at.error
    df = demo_participants
    assert _table1_n(at) == ((df.sex == 1).sum(), (df.sex == 0).sum())
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text") for c in at.get("plotly_chart")]
    # Figure 4 a-c, then the below-cut-off bars (the age-trends section may add charts after them)
    assert titles[:4] == [p.title for p in FIGURE4_PANELS] + ["Below the EWGSOP2 ALMI cut-off"]
    assert any(w.value == SIMULATED_BANNER for w in at.warning)
    assert f"{len(df):,} participants" in at.caption[0].value


def test_url_presets_widgets_and_filters_the_data(msmv_home, demo_participants):
    at = AppTest.from_file(COHORT, default_timeout=TIMEOUT_S)
    at.query_params["sex"] = "1"
    at.query_params["age"] = "60~70"
    at.run()
    assert not at.exception
    assert at.sidebar.segmented_control[0].value == ["Men"]
    assert at.sidebar.slider[0].value == (60.0, 70.0)
    df = demo_participants
    men_60_70 = ((df.sex == 1) & df.age.between(60, 70)).sum()
    assert _table1_n(at) == (men_60_70, 0)


def test_changing_a_widget_updates_the_url(msmv_home, demo_participants):
    at = AppTest.from_file(COHORT, default_timeout=TIMEOUT_S).run()
    assert "age" not in at.query_params and "centre" not in at.query_params  # unfiltered: clean URL
    centre = sorted(demo_participants.centre.dropna().unique())[0]
    at.sidebar.multiselect[0].select(centre).run()
    at.sidebar.slider[1].set_value((20.0, 30.0)).run()
    assert at.query_params["centre"] == [centre] or at.query_params["centre"] == centre
    assert at.query_params["bmi"] in ("20~30", ["20~30"])
    df = demo_participants
    chosen = df[(df.centre == centre) & df.bmi.between(20, 30)]
    assert _table1_n(at) == ((chosen.sex == 1).sum(), (chosen.sex == 0).sum())
    at.sidebar.multiselect[0].unselect(centre).run()
    assert "centre" not in at.query_params


def test_without_a_store_the_page_explains_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MSMV_HOME", str(tmp_path))
    at = AppTest.from_file(COHORT, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "No MSMV store yet" in at.error[0].value and "msmv demo" in at.error[0].value
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("bad", ["abc", "70~60"])
def test_unreadable_url_filter_is_ignored_with_a_warning(msmv_home, demo_participants, bad):
    at = AppTest.from_file(COHORT, default_timeout=TIMEOUT_S)
    at.query_params["age"] = bad
    at.run()
    assert not at.exception
    assert any("could not be read" in w.value for w in at.sidebar.warning)
    assert sum(_table1_n(at)) == len(demo_participants)


def test_filter_follows_the_user_across_pages(msmv_home):
    from dashboard.registry import PAGES

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params["sex"] = "0"
    at.query_params["age"] = "60~70"
    at.run()
    for page in [*PAGES[1:], PAGES[0]]:
        at.query_params.clear()  # the browser drops the query string when the page changes
        at.switch_page(str(page.path)).run()
        assert not at.exception, page.file
        if "msmv_filter_age" in [s.key for s in at.sidebar.slider]:  # pages that show the cohort filter
            assert at.slider(key="msmv_filter_age").value == (60.0, 70.0), page.file
            assert at.segmented_control(key="msmv_filter_sex").value == ["Women"], page.file
            assert at.query_params["age"] in ("60~70", ["60~70"]), page.file
    assert at.title[0].value == "Cohort"
