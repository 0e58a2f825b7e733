"""The one access policy: participant-level views need a signed-in user once login is configured."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import Access, allow_list, is_loopback, on_allow_list, small_cells_dropped
from dashboard.registry import ROOT

PAGE_TIMEOUT_S = 120
DUMMY_AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x", "client_id": "c",
              "client_secret": "s", "server_metadata_url": "https://idp.example/.well-known/openid"}


@pytest.mark.parametrize(("auth", "signed_in", "allowed"),
                         [(False, False, True), (False, True, True), (True, False, False), (True, True, True)])
def test_participant_level_needs_sign_in_only_when_login_is_configured(auth: bool, signed_in: bool,
                                                                       allowed: bool) -> None:
    assert Access(auth_configured=auth, signed_in=signed_in).participant_level is allowed


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), (None, False), ("192.168.1.5", False), ("msmv.lab", False)])
def test_only_loopback_addresses_count_as_local(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_remote_without_login_needs_the_explicit_setting() -> None:
    remote = Access(auth_configured=False, signed_in=False, address="0.0.0.0")
    assert not remote.participant_level and remote.min_group_size == 5 and not remote.can_sign_in
    assert "MSMV_ALLOW_UNAUTHENTICATED_REMOTE=true" in remote.reason()
    assert Access(auth_configured=False, signed_in=False, address=None).reason().startswith(
        "This dashboard is served on every network interface")
    assert Access(auth_configured=False, signed_in=False, address="0.0.0.0", remote_allowed=True).participant_level
    # with login configured the login decides, wherever the dashboard is bound
    assert Access(auth_configured=True, signed_in=True, address="0.0.0.0").participant_level
    assert not Access(auth_configured=True, signed_in=False, address="127.0.0.1", remote_allowed=True).participant_level


def test_allow_list_matches_whole_addresses_or_whole_domains() -> None:
    entries = allow_list(" Uni.Example, @lab.example  boss@other.example,,")
    assert entries == ("uni.example", "lab.example", "boss@other.example")
    assert on_allow_list("Ana@UNI.example", entries) and on_allow_list("x@lab.example", entries)
    assert on_allow_list("boss@other.example", entries)
    assert not on_allow_list("eve@other.example", entries)
    assert not on_allow_list("eve@evil-uni.example", entries) and not on_allow_list("eve@sub.uni.example", entries)
    assert not on_allow_list(None, entries) and not on_allow_list("no-at-sign", entries)
    assert on_allow_list(None, ()) and on_allow_list("anyone@any.example", allow_list(""))
    off = Access(auth_configured=True, signed_in=True, allowed_user=False)
    assert not off.participant_level and "allow-list (`MSMV_ALLOWED_USERS`)" in off.reason()


def test_small_cells_are_left_out_whole_so_no_grouping_shows_fewer() -> None:
    df = pd.DataFrame({"sex": [1] * 6 + [1] * 3 + [0] * 5 + [None] * 2,
                       "age_stratum": ["50-59"] * 6 + ["80+"] * 3 + ["50-59"] * 5 + ["60-69"] * 2,
                       "eid": range(16)})
    kept = small_cells_dropped(df, 5)
    assert kept["eid"].tolist() == [*range(6), *range(9, 14)]
    assert kept.groupby("sex").size().min() >= 5 and kept.groupby("age_stratum").size().min() >= 5
    assert small_cells_dropped(df, 1) is df
    with pytest.raises(ValueError, match=r"needs the columns \['sex', 'age_stratum'\]"):
        small_cells_dropped(df[["sex", "eid"]], 5)


def _run(page: str, *, auth: bool, params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=PAGE_TIMEOUT_S)
    if auth:
        at.secrets["auth"] = DUMMY_AUTH
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


def test_subject_page_asks_an_anonymous_visitor_to_sign_in(msmv_home, demo_participants) -> None:
    eid = str(int(demo_participants["eid"].iloc[0]))
    at = _run("subject.py", auth=True, params={"eid": eid})
    assert not at.exception and not at.error
    assert at.info[0].value == "Sign in to see a participant's record and report."
    assert [b.label for b in at.button] == ["Log in"]
    assert len(at.dataframe) == 0 and len(at.text_input) == 0 and len(at.metric) == 0


def test_subject_page_shows_the_record_without_login_configured(msmv_home, demo_participants) -> None:
    eid = str(int(demo_participants["eid"].iloc[0]))
    at = _run("subject.py", auth=False, params={"eid": eid})
    assert not at.exception and not at.error
    assert at.text_input(key="subject_eid").value == eid
    assert [b.label for b in at.button] == []


def test_jobs_page_offers_upload_only_to_a_signed_in_user(msmv_home) -> None:
    anonymous = _run("jobs.py", auth=True)
    assert not anonymous.exception and not anonymous.error
    assert anonymous.info[0].value == "Sign in to upload packages."
    assert [b.label for b in anonymous.button] == ["Log in"]
    assert len(anonymous.get("file_uploader")) == 0
    local = _run("jobs.py", auth=False)
    assert not local.exception
    assert len(local.get("file_uploader")) == 1 and [b.label for b in local.button] == []
