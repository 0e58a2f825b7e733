"""URL and text-box input is shown as literal text, bounded, and never raises."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from store.filters import MAX_PARAM_CHARS, CohortFilter
from store.vocabulary import parse_eid

PAGE_TIMEOUT_S = 120
LINK = "[Session expired – sign in](https://evil.example/login)"
BEACON = "![x](http://host/beacon.png)"


def _page(name: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=PAGE_TIMEOUT_S)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _shown(at: AppTest) -> list[str]:
    return [m.value for m in (*at.warning, *at.error, *at.info)]


@pytest.mark.parametrize("evil", [LINK, BEACON])
def test_a_markdown_filter_value_is_echoed_as_escaped_text(msmv_home, evil):
    at = _page("cohort", age=evil)
    assert not at.exception
    [warning] = [w for w in at.warning if "could not be read" in w.value]
    # every bracket and parenthesis of the input is backslash-escaped, so no link or image renders
    assert "](" not in warning.value.replace("\\]\\(", "")
    assert "\\[" in warning.value and "\\(" in warning.value


@pytest.mark.parametrize("eid", ["²", "1" * 5000, LINK, "-5", "0"])
def test_odd_participant_ids_get_a_message_not_an_exception(msmv_home, eid):
    at = _page("subject", eid=eid)
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e for e in at.error if "participant ID is a whole number" in e.value]
    assert len(error.value) < 300  # a 5,000-digit value is not echoed whole
    assert "](" not in error.value


def test_parse_eid_takes_ascii_digits_only():
    assert parse_eid(" 1000123 ") == 1000123
    for bad in ("²", "١٢٣", "12a", "", "0", "+5", "1" * 13):
        assert parse_eid(bad) is None, bad


def test_a_comma_inside_a_source_label_round_trips_through_the_url():
    flt = CohortFilter(source=("ukb,2024", "100%,x", "plain"))
    params = flt.to_query_params()
    assert params["source"].count(",") == 2  # two separators between three values
    assert CohortFilter.from_query_params(params) == flt
    assert CohortFilter.from_query_params({"source": "a,b"}).source == ("a", "b")


def test_an_oversized_url_value_is_refused_at_once_without_echoing_it():
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"query parameter centre is 100,000 characters long") as err:
        CohortFilter.from_query_params({"centre": "x," * 50_000})
    assert time.perf_counter() - started < 1.0
    assert len(str(err.value)) < 200
    assert len("y" * MAX_PARAM_CHARS) == MAX_PARAM_CHARS  # a value at the limit is still read:
    assert CohortFilter.from_query_params({"source": "y" * MAX_PARAM_CHARS}).source == ("y" * MAX_PARAM_CHARS,)
