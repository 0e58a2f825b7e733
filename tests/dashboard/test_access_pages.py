"""Every page under the access policy: what an anonymous visitor, a signed-in user, an account off the
allow-list and a visitor of a remote dashboard without login are shown (AppTest, in-process)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from dashboard.registry import PAGES, ROOT
from store.export import SMALL_COUNT_THRESHOLD
from store.home import home as make_home
from store.writer import Writer
from tests.dashboard.leaks import eid_hits, figure_specs, rendered_bytes, small_count_cells, trace_leaks
from tests.dashboard.test_access import DUMMY_AUTH

PAGE_TIMEOUT_S = 120
STUDY_PAIRS = 2  # the Concordance page's first charts: the study's Figure 3 (TMV vs legs lean, TVI vs ALMI)
# Where a participant-level view would be, each page offers the login button with this text.
PROMPTS = {"cohort": "Sign in to see outlier points and groups of fewer than 5 participants.",
           "concordance": "Sign in to see each participant as a point.",
           "subject": "Sign in to see a participant's record and report.",
           "export": "Sign in to export participant-level rows; aggregate tables below stay available.",
           "jobs": "Sign in to upload packages."}
_COUNT = re.compile(r"^(\d[\d,]*) \(")  # Table 1's "12 (4.0 %)"


def _run(page: str, *, auth: bool, params: dict[str, str] | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=PAGE_TIMEOUT_S)
    if auth:
        at.secrets["auth"] = DUMMY_AUTH
    if user is not None:
        at.user = user
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


@pytest.fixture
def served_on_all_interfaces() -> Iterator[None]:
    """server.address as ``streamlit run --server.address 0.0.0.0`` sets it, restored afterwards."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        yield
    finally:
        config.set_option("server.address", before)


def _point_traces(at: AppTest) -> list[dict]:
    """The traces that draw participants: all but lines (regression, mean difference, limits)."""
    return [t for spec in figure_specs(at) for t in spec["data"]
            if not (t.get("type", "scatter") == "scatter" and t.get("mode") == "lines")]


def _assert_aggregate_only(at: AppTest, eids: pd.Series) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert eid_hits(rendered_bytes(at), eids) == set()
    for spec in figure_specs(at):
        assert trace_leaks(spec["data"], SMALL_COUNT_THRESHOLD) == []
    for frame in (d.value for d in at.dataframe):
        assert "eid" not in frame.columns
        for col in ("n", "n ref", "Participants"):
            if col in frame.columns:
                assert small_count_cells(frame[col], SMALL_COUNT_THRESHOLD) == [], col
        for col in ("men", "women"):  # Table 1
            if col in frame.columns:
                counts = [int(m[1].replace(",", "")) for v in frame[col] if (m := _COUNT.match(str(v)))]
                assert all(k >= SMALL_COUNT_THRESHOLD for k in counts), (col, counts)
        if "Events high/low" in frame.columns:
            for cell in frame["Events high/low"]:
                assert small_count_cells(str(cell).split("/"), SMALL_COUNT_THRESHOLD) == [], cell


@pytest.mark.parametrize("page", PAGES, ids=[p.url_path for p in PAGES])
def test_an_anonymous_visitor_sees_no_participant_level_value(page, msmv_home, demo_participants) -> None:
    eid = str(int(demo_participants["eid"].iloc[0]))
    at = _run(page.file, auth=True, params={"eid": eid} if page.url_path == "subject" else None)
    _assert_aggregate_only(at, demo_participants["eid"])
    prompt = PROMPTS.get(page.url_path)
    if prompt:
        assert prompt in [i.value for i in at.info]
        assert "Log in" in [b.label for b in at.button]


def test_concordance_draws_a_density_with_small_bins_blank_for_anonymous(msmv_home, demo_participants) -> None:
    at = _run("pages/concordance.py", auth=True)
    assert len(at.radio) == 0 and "concordance_by_sex" not in [t.key for t in at.toggle]  # no way back to points
    traces = _point_traces(at)
    assert traces and {t["type"] for t in traces} == {"heatmap"}
    assert len(traces) >= STUDY_PAIRS  # one density per chart
    drawn = []
    for t in traces[:STUDY_PAIRS]:
        cells = [v for row in t["z"] for v in row if v is not None]
        assert cells and min(cells) >= SMALL_COUNT_THRESHOLD
        drawn.append(sum(cells))
    assert max(drawn) <= len(demo_participants) and min(drawn) < len(demo_participants)  # blank bins hide a few
    assert any("Density bins of fewer than 5 are blank" in c.value for c in at.caption)


def test_concordance_offers_points_to_a_signed_in_user(msmv_home) -> None:
    at = _run("pages/concordance.py", auth=True, user={"is_logged_in": True, "email": "ana@uni.example"})
    assert not at.exception
    assert at.radio(key="concordance_kind").value == "scatter"
    assert {t["type"] for t in _point_traces(at)} == {"scattergl"}
    assert [b.label for b in at.button] == []


def test_cohort_boxes_lose_outliers_and_small_cells_for_anonymous(msmv_home, demo_participants) -> None:
    narrow = {"bmi": "20~24"}  # a filter that leaves some sex x age-stratum cells with a few people
    signed_in = _run("pages/cohort.py", auth=True, params=narrow,
                     user={"is_logged_in": True, "email": "ana@uni.example"})
    anonymous = _run("pages/cohort.py", auth=True, params=narrow)
    assert any("outlier" in t.get("name", "") for spec in figure_specs(signed_in) for t in spec["data"])
    assert not any("outlier" in t.get("name", "") for spec in figure_specs(anonymous) for t in spec["data"])
    chosen = demo_participants[demo_participants["bmi"].between(20, 24)]
    cells = chosen.groupby(["sex", "age_stratum"]).size()
    assert (cells < SMALL_COUNT_THRESHOLD).any(), f"the filter should leave a small cell: {cells.to_dict()}"
    kept = int(cells[cells >= SMALL_COUNT_THRESHOLD].sum())
    assert anonymous.caption[0].value.startswith(f"{kept:,} participants")
    assert signed_in.caption[0].value.startswith(f"{len(chosen):,} participants")
    # each box's "n=" label: the anonymous boxes are the big cells only
    big = cells[cells >= SMALL_COUNT_THRESHOLD].index
    with_almi = chosen[chosen["almi"].notna()].set_index(["sex", "age_stratum"])
    expected = sorted(int(n) for n in with_almi[with_almi.index.isin(big)].groupby(level=[0, 1]).size())
    labels = sorted(int(a["text"][2:].replace(",", "")) for a in figure_specs(anonymous)[0]["layout"]["annotations"]
                    if str(a.get("text", "")).startswith("n="))
    assert labels == expected  # panel a (ALMI): one box per big cell, n = its participants with ALMI
    assert any(c.value.startswith("Aggregate view: sex × age-stratum groups of fewer than 5") for c in anonymous.caption)


def test_export_threshold_is_fixed_for_anonymous_even_grouped_by_everything(msmv_home, demo_participants) -> None:
    at = _run("pages/export.py", auth=True)
    assert len(at.number_input) == 0 and "export_suppress" not in [t.key for t in at.toggle]
    groups = at.multiselect(key="export_groups")
    at = groups.set_value(list(groups.options)).run()  # many groups: cells of one or two participants
    _assert_aggregate_only(at, demo_participants["eid"])
    counts = at.dataframe[0].value["n"].tolist()
    assert "<5" in counts and all(c == "<5" or int(c) >= SMALL_COUNT_THRESHOLD for c in counts)
    means = at.dataframe[0].value.loc[lambda t: t["n"] == "<5", [c for c in at.dataframe[0].value if c.startswith("mean_")]]
    assert means.isna().all().all()


def test_export_threshold_is_adjustable_for_a_signed_in_user(msmv_home) -> None:
    at = _run("pages/export.py", auth=True, user={"is_logged_in": True, "email": "ana@uni.example"})
    assert not at.exception
    assert at.number_input(key="export_threshold").value == SMALL_COUNT_THRESHOLD
    assert at.toggle(key="export_suppress").value is True
    assert "eid" in at.dataframe[0].value.columns  # the row preview


def test_an_account_off_the_allow_list_is_anonymous(msmv_home, demo_participants, monkeypatch) -> None:
    monkeypatch.setenv("MSMV_ALLOWED_USERS", "uni.example, boss@lab.example")
    eid = str(int(demo_participants["eid"].iloc[0]))
    outsider = _run("pages/subject.py", auth=True, params={"eid": eid},
                    user={"is_logged_in": True, "email": "eve@evil-uni.example"})
    assert not outsider.exception
    assert outsider.info[0].value.startswith("The signed-in account is not on this dashboard's allow-list")
    assert [b.label for b in outsider.button] == ["Log out"] and len(outsider.text_input) == 0
    insider = _run("pages/subject.py", auth=True, params={"eid": eid},
                   user={"is_logged_in": True, "email": "Boss@Lab.Example"})
    assert not insider.exception and insider.text_input(key="subject_eid").value == eid


def test_remote_without_login_is_anonymous_and_says_why(msmv_home, demo_participants, served_on_all_interfaces,
                                                        monkeypatch) -> None:
    eid = str(int(demo_participants["eid"].iloc[0]))
    at = _run("pages/subject.py", auth=False, params={"eid": eid})
    assert not at.exception and len(at.text_input) == 0 and len(at.metric) == 0
    why = at.info[0].value
    assert "served on `0.0.0.0` without login configured" in why and "MSMV_ALLOW_UNAUTHENTICATED_REMOTE=true" in why
    assert [b.label for b in at.button] == []  # no login to offer
    concordance = _run("pages/concordance.py", auth=False)
    assert {t["type"] for t in _point_traces(concordance)} == {"heatmap"}
    monkeypatch.setenv("MSMV_ALLOW_UNAUTHENTICATED_REMOTE", "true")
    allowed = _run("pages/subject.py", auth=False, params={"eid": eid})
    assert not allowed.exception and allowed.text_input(key="subject_eid").value == eid


def test_jobs_queue_names_no_participant_to_anonymous(tmp_path, monkeypatch) -> None:
    h = make_home(tmp_path / "home").ensure()
    with Writer(h) as w:
        job = w.add_job(tmp_path / "4123456_20201_2_0.zip", eid=4123456, input_sha256="f" * 64)
        w.update_job(job, status="failed", stage="fuse", attempts=3, error="FusionError: 4123456 stations disagree")
        w.publish(force=True)
    monkeypatch.setenv("MSMV_HOME", str(h.root))
    anonymous = _run("pages/jobs.py", auth=True)
    assert not anonymous.exception
    assert {m.label: m.value for m in anonymous.metric}["Failed"] == "1"
    assert len(anonymous.dataframe) == 0 and eid_hits(rendered_bytes(anonymous), [4123456]) == set()
    assert "Sign in to see the queue, its participants and failures." in [i.value for i in anonymous.info]
    signed_in = _run("pages/jobs.py", auth=True, user={"is_logged_in": True, "email": "ana@uni.example"})
    assert eid_hits(rendered_bytes(signed_in), [4123456]) == {4123456}  # the check can see an eid
