"""Every dashboard page against Streamlit's own floor, in a real browser, at 37,004 and 500,000 participants.

For each size the simulated demo store is built once (``engine.demo.build.build_demo``, as ``msmv demo``
does) under ``--cache`` and reused by later runs. The dashboard and a bare Streamlit app that draws
four small plotly charts (the framework's floor: what any Streamlit page with charts costs here) are
served side by side, and headless Debian chromium loads every page alternately with the floor, each
load a fresh session. A load is timed from navigation start until the page has finished: its title is
up, its script run is over (Streamlit's running state), and every plotly chart and table it shows is drawn (the
counts are taken from a settled warm-up load of the same page). Prints JSON lines:

- ``store``: participants, seconds to build the store (0 when reused from the cache);
- ``page``: per page the cold load (first visit, empty caches), the median and range of the warm loads,
  the floor's median over the same rounds and the ratio page/floor, the charts and tables waited for;
  and the same ratio of CPU seconds per load (Chromium's processes plus the Streamlit server's), which a
  busy machine disturbs far less than wall time;
- ``summary``: the ratios of all pages, the machine's load average and CPU count (browser and server
  share the CPUs with whatever else runs, so figures on a busy machine are noisy).

Usage: ``.venv/bin/python -m benchmarks.pages [--n 37004 500000] [--rounds 5] [--cache DIR] [--pages cohort ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.demo_build import SCALE_N  # noqa: E402
from dashboard.registry import PAGES, PageSpec  # noqa: E402
from dashboard.server import DashboardServer  # noqa: E402
from engine.demo.build import build_demo, store_exists  # noqa: E402
from engine.demo.cohort import targets as cal  # noqa: E402
from store.home import Home, home  # noqa: E402
from store.reader import Reader  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "msmv-pages-bench"
TIMEOUT_MS = 600_000  # a cold page at 500,000 participants on a busy 2-core machine
SETTLE_MS = 3000  # a warm-up load counts as settled when its drawn charts and tables stay this long
VIEWPORT = {"width": 1600, "height": 1400}
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'

# The floor: Streamlit's own cost of a page with a title and four small plotly charts.
FLOOR_APP = '''\
import numpy as np
import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="Floor", layout="wide")
st.title("Floor")
x = np.arange(20)
for i, column in enumerate(st.columns(2) + st.columns(2)):
    column.plotly_chart(go.Figure(go.Scatter(x=x, y=np.sin(x / (i + 2)), mode="lines+markers")), width="stretch")
'''
FLOOR_CHARTS = 4

# Done: the title is up, the script run has finished (Streamlit's script state), no element is still a
# loading placeholder (plotly and the data grid load lazily), and at least ``charts`` plotly charts and ``tables``
# data frames are in the page, each chart drawn (plotly's SVG; a data grid draws its canvas only when it
# has rows to show). Returns the time.
DONE_JS = """([title, charts, tables]) => {
  const h1 = [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === title);
  const app = document.querySelector('[data-testid="stApp"]');
  if (!h1 || !app || app.dataset.testScriptState !== 'notRunning') return false;
  if (document.querySelector('[data-testid^="stSkeleton"]')) return false;  // a lazy element still loading
  const plots = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  const grids = document.querySelectorAll('[data-testid="stDataFrame"]');
  if (plots.length < charts || grids.length < tables) return false;
  for (const p of plots) if (!p.querySelector('.main-svg')) return false;
  return performance.now();
}"""
COUNT_JS = """() => [
  [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].filter(p => p.querySelector('.main-svg')).length,
  document.querySelectorAll('[data-testid="stDataFrame"]').length]"""


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def cached_store(cache: Path, n: int) -> tuple[Home, float]:
    """The demo store of ``n`` participants under ``cache`` (built when missing) and seconds spent building."""
    h = home(cache / f"n{n}")
    if store_exists(h):
        try:
            with Reader(h) as reader:
                if len(reader.participants(columns=["eid"])) == n:
                    return h, 0.0
        except Exception as err:  # a half-built store (a killed run): build it again
            print(f"rebuilding the cached store in {h.root}: {err}", file=sys.stderr)
    t0 = time.perf_counter()
    build_demo(h, n, seed=0, force=True,
               on_stage=lambda stage: print(f"n={n}: {stage} at {time.perf_counter() - t0:.0f} s", file=sys.stderr))
    return h, time.perf_counter() - t0


@dataclass(frozen=True)
class Target:
    """One page to time: its URL, the heading it shows and what it draws."""

    name: str
    url: str
    title: str
    server: psutil.Process  # the Streamlit server serving it
    charts: int = 0
    tables: int = 0


@dataclass(frozen=True)
class Load:
    """One load: wall seconds to finished, and CPU seconds spent on it (browser processes + server)."""

    seconds: float
    cpu_s: float


def _cpu_times(server: psutil.Process) -> dict[int, float]:
    """CPU seconds so far of the server and of every Chromium process this benchmark started, by pid."""
    procs = [server, *(p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower())]
    times = {}
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # a closed page's renderer going away
            continue
        times[proc.pid] = t.user + t.system
    return times


def _open(page, target: Target) -> Load:
    """Navigate ``page`` to ``target``: seconds from navigation start until it has finished rendering, and
    the CPU seconds that the browser's processes and the page's server spent meanwhile."""
    before = _cpu_times(target.server)
    page.goto(target.url)
    done = page.wait_for_function(DONE_JS, arg=[target.title, target.charts, target.tables],
                                  polling=50, timeout=TIMEOUT_MS)
    after = _cpu_times(target.server)
    return Load(float(done.json_value()) / 1000, sum(t - before.get(pid, 0.0) for pid, t in after.items()))


def _no_error(page, target: Target) -> None:
    if page.locator(ERROR_SELECTOR).count():
        raise RuntimeError(f"{target.name} shows an error: {page.locator(ERROR_SELECTOR).first.inner_text()}")


def load(browser, target: Target) -> Load:
    """``target`` loaded in a fresh session (a new page)."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        done = _open(page, target)
        _no_error(page, target)
        return done
    finally:
        page.close()


def calibrated(browser, target: Target) -> tuple[Target, Load]:
    """``target`` with the charts and tables a settled load shows, and that first (cold) load's seconds.

    Settled: finished, and the drawn charts and tables have not changed for ``SETTLE_MS``.
    """
    page = browser.new_page(viewport=VIEWPORT)
    try:
        cold = _open(page, target)
        counts, since = page.evaluate(COUNT_JS), time.monotonic()
        while (time.monotonic() - since) * 1000 < SETTLE_MS:
            page.wait_for_timeout(100)
            now = page.evaluate(COUNT_JS)
            if now != counts:
                counts, since = now, time.monotonic()
        _no_error(page, target)
    finally:
        page.close()
    charts, tables = counts
    return replace(target, charts=int(charts), tables=int(tables)), cold


def page_targets(url: str, server: psutil.Process, h: Home, names: list[str] | None) -> list[Target]:
    with Reader(h) as reader:
        eid = int(reader.participants(columns=["eid"])["eid"].min())
    specs: list[PageSpec] = [p for p in PAGES if names is None or p.url_path in names]
    return [Target(p.url_path, f"{url}/{p.url_path}" + (f"?eid={eid}" if p.url_path == "subject" else ""), p.title,
                   server) for p in specs]


def run_size(browser, cache: Path, n: int, rounds: int, names: list[str] | None, floor_app: Path) -> dict[str, float]:
    h, build_s = cached_store(cache, n)
    emit(bench="store", n=n, build_s=round(build_s, 1), home=str(h.root))
    ratios: dict[str, float] = {}
    dashboard, floor_server = DashboardServer(h.root), DashboardServer(h.root, app=floor_app)
    with dashboard as url, floor_server as floor_url:
        floor_target = Target("floor", floor_url, "Floor", psutil.Process(floor_server.pid), FLOOR_CHARTS)
        floor, _ = calibrated(browser, floor_target)
        for target in page_targets(url, psutil.Process(dashboard.pid), h, names):
            target, cold = calibrated(browser, target)
            pages, floors = [], []
            for _ in range(rounds):  # alternately, so both see the same moments of a noisy machine
                floors.append(load(browser, floor))
                pages.append(load(browser, target))
            page_s, floor_s = [x.seconds for x in pages], [x.seconds for x in floors]
            ratio = statistics.median(page_s) / statistics.median(floor_s)
            cpu_ratio = statistics.median(x.cpu_s for x in pages) / statistics.median(x.cpu_s for x in floors)
            ratios[target.name] = round(ratio, 2)
            emit(bench="page", n=n, page=target.name, cold_s=round(cold.seconds, 2),
                 median_s=round(statistics.median(page_s), 2), min_s=round(min(page_s), 2),
                 max_s=round(max(page_s), 2), floor_median_s=round(statistics.median(floor_s), 2),
                 ratio=round(ratio, 2), cpu_median_s=round(statistics.median(x.cpu_s for x in pages), 2),
                 floor_cpu_median_s=round(statistics.median(x.cpu_s for x in floors), 2), cpu_ratio=round(cpu_ratio, 2),
                 charts=target.charts, tables=target.tables, rounds=rounds,
                 load_average_1min=round(os.getloadavg()[0], 1))
    return ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[cal.N_PARTICIPANTS, SCALE_N],
                    help=f"cohort sizes (default {cal.N_PARTICIPANTS} {SCALE_N})")
    ap.add_argument("--rounds", type=int, default=5, help="warm loads of each page and of the floor (default 5)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help=f"folder keeping the built stores between runs (default {DEFAULT_CACHE})")
    ap.add_argument("--pages", nargs="+", choices=[p.url_path for p in PAGES], help="only these pages")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    from playwright.sync_api import sync_playwright

    # A killed run still stops the servers it started (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    args.cache.mkdir(parents=True, exist_ok=True)
    floor_app = args.cache / "floor_app.py"
    floor_app.write_text(FLOOR_APP)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for n in args.n:
                ratios = run_size(browser, args.cache, n, args.rounds, args.pages, floor_app)
                emit(bench="summary", n=n, ratios=ratios, load_average_1min=round(os.getloadavg()[0], 1),
                     cpus=os.cpu_count())
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
