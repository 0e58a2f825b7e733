"""With login configured and nobody signed in, Chromium receives no participant-level value on any page.

The app is served with a dummy ``[auth]`` section in a temporary secrets file (no identity provider
has to answer: nobody signs in). For every registered page the test records what reached the
browser — every websocket frame, the page's text, every plotly trace as drawn — and looks for eids
of the store, counts below the small-count threshold, outlier points and per-person markers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from dashboard.registry import PAGES
from dashboard.server import DashboardServer
from store.export import SMALL_COUNT_THRESHOLD
from store.reader import Reader
from tests.dashboard.leaks import eid_hits, small_count_cells, trace_leaks

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 240_000  # the shared 2-core machine can be heavily loaded
SECRETS = """[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "not-a-secret"
client_id = "dummy"
client_secret = "dummy"
server_metadata_url = "https://idp.invalid/.well-known/openid-configuration"
"""
PROMPT_PAGES = ("cohort", "concordance", "subject", "export")  # a login button where the views would be
# Typed arrays (plotly keeps numbers in them) as plain arrays, so JSON shows every value.
TRACES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => JSON.stringify(gd.data || [],
    (k, v) => ArrayBuffer.isView(v) ? Array.from(v) : v))"""


@pytest.fixture(scope="module")
def anonymous_site(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    """The session's demo store (only read here) served with a login configured and nobody signed in."""
    secrets = tmp_path_factory.mktemp("access_secrets") / "secrets.toml"
    secrets.write_text(SECRETS)
    with Reader(demo_home) as r:
        eids = [int(e) for e in r.participants(columns=["eid"])["eid"]]
    with DashboardServer(demo_home, secrets_file=secrets) as url:
        yield url, eids


def _frames_tables(frames: list[bytes]) -> list[pa.Table]:
    """The dataframes among the websocket messages, decoded from their Arrow bytes."""
    tables = []
    for raw in frames:
        try:
            msg = ForwardMsg.FromString(raw)
        except Exception:  # noqa: BLE001 (not every frame is a ForwardMsg we can read; skip it)
            continue
        if msg.WhichOneof("type") != "delta" or msg.delta.WhichOneof("type") != "new_element":
            continue
        element = msg.delta.new_element
        if element.WhichOneof("type") != "dataframe":
            continue
        df = element.dataframe
        for blob in (df.arrow_data.data, df.lazy_data.initial_chunk.data):
            if blob:
                tables.append(pa.ipc.open_stream(blob).read_all())
    return tables


def _visit(browser, url: str, title: str, *, prompt: bool) -> tuple[list[bytes], str, list[list[dict]], object]:
    page = browser.new_page(viewport={"width": 1600, "height": 3000})
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framereceived",
                                          lambda payload: frames.append(payload if isinstance(payload, bytes)
                                                                        else payload.encode())))
    page.goto(url)
    page.wait_for_function(
        f"[...document.querySelectorAll('h1')].some(h => h.innerText.trim() === {title!r})", timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    if prompt:  # drawn late on a long page (after its charts)
        page.get_by_role("button", name="Log in").first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(1500)  # charts draw after the script finishes
    text = page.evaluate("() => document.body.innerText")
    traces = [json.loads(t) for t in page.evaluate(TRACES_JS)]
    return frames, text, traces, page


@pytest.mark.parametrize("spec", PAGES, ids=[p.url_path for p in PAGES])
def test_no_participant_level_value_reaches_an_anonymous_browser(spec, anonymous_site, browser) -> None:
    url, eids = anonymous_site
    query = f"?eid={eids[0]}" if spec.url_path == "subject" else ""
    prompt = spec.url_path in PROMPT_PAGES
    frames, text, traces, page = _visit(browser, f"{url}/{spec.url_path}{query}", spec.title, prompt=prompt)
    try:
        assert frames, "no websocket frame recorded: the check would see nothing"
        assert eid_hits(b"".join(frames), eids) == set()
        assert eid_hits(text.encode(), eids) == set()
        for i, chart in enumerate(traces):
            assert trace_leaks(chart, SMALL_COUNT_THRESHOLD) == [], (spec.url_path, i)
        for table in _frames_tables(frames):
            assert "eid" not in table.column_names
            if "n" in table.column_names:
                assert small_count_cells(table.column("n").to_pylist(), SMALL_COUNT_THRESHOLD) == []
        if prompt:
            assert page.get_by_role("button", name="Log in").count() >= 1
            assert "Sign in to" in text
        if spec.url_path == "export":  # the aggregate table did reach the browser and was checked
            assert any("n" in t.column_names for t in _frames_tables(frames))
            assert "Suppress counts below" not in text
        if spec.url_path == "subject":
            assert page.get_by_role("button", name="Download one-page report (PDF)").count() == 0
    finally:
        page.close()


def test_the_checks_see_an_eid_when_one_is_sent(tmp_path: Path) -> None:
    """The same checks on a frame that does hold an eid (as text and as Arrow int64) find it."""
    import pandas as pd

    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(pd.DataFrame({"eid": [4123456], "n": [2]}))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    msg = ForwardMsg()
    msg.delta.new_element.dataframe.arrow_data.data = sink.getvalue().to_pybytes()
    raw = msg.SerializeToString()
    assert eid_hits(raw, [4123456]) == {4123456}
    decoded = _frames_tables([raw])
    assert decoded[0].column_names[:2] == ["eid", "n"]
    assert small_count_cells(decoded[0].column("n").to_pylist(), SMALL_COUNT_THRESHOLD) == [2]
    assert trace_leaks([{"type": "box", "y": [1, 2, 3], "boxpoints": "outliers"}], 5)
    assert trace_leaks([{"type": "scattergl", "x": [1], "y": [2]}], 5)
