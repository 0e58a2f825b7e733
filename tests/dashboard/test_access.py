"""The one access policy: participant-level views need a signed-in user once login is configured."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import Access
from dashboard.registry import ROOT

PAGE_TIMEOUT_S = 120
DUMMY_AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x", "client_id": "c",
              "client_secret": "s", "server_metadata_url": "https://idp.example/.well-known/openid"}


@pytest.mark.parametrize(("auth", "signed_in", "allowed"),
                         [(False, False, True), (False, True, True), (True, False, False), (True, True, True)])
def test_participant_level_needs_sign_in_only_when_login_is_configured(auth: bool, signed_in: bool,
                                                                       allowed: bool) -> None:
    assert Access(auth_configured=auth, signed_in=signed_in).participant_level is allowed


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
