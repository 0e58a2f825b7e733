"""Export and Subject pages in AppTest: the gate on participant rows, suppression, the subject tables."""

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from engine.cohort.reference import structure_table

PAGE_TIMEOUT_S = 120


def _run(page: str, secrets: dict | None = None, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=PAGE_TIMEOUT_S)
    for k, v in (secrets or {}).items():
        at.secrets[k] = v
    for k, v in (params or {}).items():
        at.query_params[k] = v
    return at.run()


def test_export_page_offers_rows_without_login_configured(msmv_home, demo_participants):
    at = _run("export.py")
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["Participant-level export", "Aggregate table"]
    preview, _, aggregate = (d.value for d in at.dataframe)
    assert preview["eid"].tolist() == sorted(demo_participants["eid"])[:20]
    counts = aggregate["n"].tolist()  # strings after suppression; all groups of a 300-person demo are >= 5 or "<5"
    assert sum(int(c) for c in counts if c != "<5") <= len(demo_participants)
    assert all(c == "<5" or int(c) >= 5 for c in counts)


def test_export_page_hides_rows_when_login_is_configured_and_nobody_signed_in(msmv_home):
    at = _run("export.py", secrets={"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                                             "cookie_secret": "x", "client_id": "c", "client_secret": "s",
                                             "server_metadata_url": "https://idp.example/.well-known/openid"}})
    assert not at.exception
    assert "Sign in to export participant-level rows" in at.info[0].value
    assert [b.label for b in at.button] == ["Log in"]
    assert len(at.dataframe) == 1  # only the aggregate table


@pytest.mark.parametrize("pick", [0, 123])
def test_subject_page_table_matches_the_reference_computation(msmv_home, demo_participants, pick):
    eid = int(demo_participants["eid"].iloc[pick])
    at = _run("subject.py", params={"eid": str(eid)})
    assert not at.exception and not at.error
    shown = at.dataframe[0].value
    expected = structure_table(demo_participants, eid)
    assert shown["name"].tolist() == expected["name"].tolist()
    assert shown["percentile"].tolist() == pytest.approx(expected["percentile"].tolist(), nan_ok=True)
    assert "No 3-D surfaces" in at.info[0].value  # a simulated participant: schematic only
