"""Cohort page time-to-charts in a real browser at the study's scale (37,004 participants).

Builds the simulated demo store with ``msmv demo`` in a temporary MSMV_HOME, starts the dashboard,
and loads the Cohort page in headless Debian chromium (Playwright) several times. Prints JSON lines:

- ``demo_build``: seconds ``msmv demo`` took (context only; benchmarks/demo_build.py owns that figure);
- ``server_compute``: seconds for Table 1, Figure 4 and the below-cut-off chart in Python, and the
  Figure 4 JSON size with precomputed box statistics vs raw values;
- ``box_render``: browser time to draw Figure 4 from precomputed statistics vs from raw values
  (a static page, so only plotly.js work is timed);
- ``time_to_charts``: navigation start until every Cohort chart is drawn: the first load (cold
  caches), the median of further fresh sessions (warm caches), and a load with a new URL filter;
  ``warm_title_median_s`` is when the page title appeared (Streamlit's own frontend boot), and the
  machine's load average is recorded because browser timings scale with free CPU.

Usage: ``.venv/bin/python benchmarks/cohort_page.py [--n 37004] [--loads 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plotly.io as pio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.figures.cohort import BoxPlotOptions, below_cutoff_chart, figure4  # noqa: E402
from dashboard.server import DashboardServer  # noqa: E402
from engine.cohort.tables import below_cutoff_trend, table1  # noqa: E402
from store.metrics import LOW_ALMI_KG_M2  # noqa: E402
from store.reader import Reader  # noqa: E402

STUDY_N = 37_004
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
COHORT_CHARTS = 4
CHARTS_DRAWN_JS = (  # every chart has its SVG and Figure 4's boxes are drawn
    f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {COHORT_CHARTS} && "
    "document.querySelectorAll('.js-plotly-plot .boxlayer path').length > 0"
)
TIMEOUT_MS = 300_000


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def build_store(root: Path, n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine.cli", "--home", str(root), "demo", "--n", str(n), "--phantoms", "0"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _median_time(fn, repeats: int = 3) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls after one warm-up call (plotly builds its validators once)."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def server_compute(root: Path) -> dict[str, object]:
    def load():
        with Reader(root) as r:
            return r.participants()

    t_load, df = _median_time(load)
    t_table1, _ = _median_time(lambda: table1(df))
    t_fig4, pre = _median_time(lambda: figure4(df, almi_cutoffs=LOW_ALMI_KG_M2))
    t_fig4_raw, raw = _median_time(
        lambda: figure4(df, almi_cutoffs=LOW_ALMI_KG_M2, options=BoxPlotOptions(precompute=False)))
    t_below, _ = _median_time(lambda: below_cutoff_chart(below_cutoff_trend(df)))
    t_json, _ = _median_time(lambda: [f.to_json() for f in pre])
    t_json_raw, _ = _median_time(lambda: [f.to_json() for f in raw])
    return dict(n=len(df), load_s=round(t_load, 3), table1_s=round(t_table1, 3), figure4_s=round(t_fig4, 3),
                figure4_raw_s=round(t_fig4_raw, 3), below_cutoff_s=round(t_below, 3),
                figure4_to_json_s=round(t_json, 3), figure4_raw_to_json_s=round(t_json_raw, 3),
                figure4_json_kb=round(sum(len(f.to_json()) for f in pre) / 1024, 1),
                figure4_raw_json_kb=round(sum(len(f.to_json()) for f in raw) / 1024, 1),
                _figures=(pre, raw))


def _static_page(figs: list, path: Path) -> Path:
    body = "".join(pio.to_html(f, full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    path.write_text(f"<html><body>{body}</body></html>")
    return path


def time_static(browser, path: Path, loads: int) -> float:
    times = []
    for _ in range(loads):
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .boxlayer path').length > 0",
                               timeout=TIMEOUT_MS)
        times.append(page.evaluate("performance.now()") / 1000)
        page.close()
    return statistics.median(times)


def time_to_charts(browser, url: str) -> tuple[float, float]:
    """Seconds from navigation start to the page title (the app has booted) and to all charts drawn."""
    page = browser.new_page(viewport={"width": 1600, "height": 3400})
    page.goto(url)
    page.wait_for_selector("h1", timeout=TIMEOUT_MS)
    t_title = page.evaluate("performance.now()") / 1000
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=TIMEOUT_MS)
    t_charts = page.evaluate("performance.now()") / 1000
    if page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count():
        raise RuntimeError(f"the Cohort page shows an error at {url}")
    page.close()
    return t_title, t_charts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=STUDY_N)
    ap.add_argument("--loads", type=int, default=5, help="browser loads per measurement (default 5)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="msmv-bench-") as tmp:
        root = Path(tmp) / "home"
        emit(bench="demo_build", n=args.n, seconds=round(build_store(root, args.n), 1))
        comp = server_compute(root)
        pre, raw = comp.pop("_figures")
        emit(bench="server_compute", **comp)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            t_pre = time_static(browser, _static_page(pre, Path(tmp) / "pre.html"), args.loads)
            t_raw = time_static(browser, _static_page(raw, Path(tmp) / "raw.html"), args.loads)
            emit(bench="box_render", n=args.n, precomputed_s=round(t_pre, 3), raw_values_s=round(t_raw, 3),
                 loads=args.loads)
            with DashboardServer(root) as url:
                cold = time_to_charts(browser, url)
                warm = [time_to_charts(browser, url) for _ in range(args.loads)]
                filtered = time_to_charts(browser, f"{url}/?sex=0&age=60~75")
            browser.close()
        charts = [c for _, c in warm]
        emit(bench="time_to_charts", n=args.n, cold_s=round(cold[1], 2), warm_median_s=round(statistics.median(charts), 2),
             warm_min_s=round(min(charts), 2), warm_max_s=round(max(charts), 2), new_filter_s=round(filtered[1], 2),
             warm_title_median_s=round(statistics.median(t for t, _ in warm), 2), loads=args.loads,
             load_average_1min=round(os.getloadavg()[0], 1), cpus=os.cpu_count())
    return 0


if __name__ == "__main__":
    sys.exit(main())
