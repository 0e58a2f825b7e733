"""Subject page: mesh size per subject and the browser's time to the 3-D view.

Builds a small demo store in a temporary MSMV_HOME, gives one demo participant a processed phantom
at UK Biobank's in-plane spacing (labels, Dixon images and meshes made by the engine's own code,
committed through the store's writer), serves the dashboard and opens the Subject page in headless
Chromium. Prints JSON lines:

- ``subject_mesh``: seconds to build the meshes, faces, vertices, surfaces, ``meshes.npz`` bytes;
- ``subject_page``: seconds from navigation to (a) the page title (Streamlit's own start-up),
  (b) the Mesh3d traces being in the page's plotly figure and (c) its WebGL canvas being drawn, for a
  cold load (a fresh server) and warm reloads; with the machine's load average.

Usage: ``python benchmarks/subject_page.py [--warm N] [--screenshot PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers live in tests/, beside this folder

from dashboard.server import DashboardServer  # noqa: E402
from engine.imaging.mesh import load_meshes  # noqa: E402
from store.home import home  # noqa: E402
from store.reader import Reader  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.browser.test_subject_browser import HAS_MESH3D_JS, add_processed_phantom  # noqa: E402
from tests.dashboard.demo_store import build_demo_store  # noqa: E402

UKB_SPACING = (2.232, 2.232, 3.0)  # mm: the Dixon in-plane spacing; 3 mm slices (docs/architecture.md)
DEMO_N = 2000
TIMEOUT_MS = 180_000
CANVAS_DRAWN_JS = "() => document.querySelectorAll('.js-plotly-plot .gl-container canvas').length > 0"


def _page_times(browser, url: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name="Subject").first.wait_for(timeout=TIMEOUT_MS)
    t_title = time.perf_counter() - t0
    page.wait_for_function(HAS_MESH3D_JS, timeout=TIMEOUT_MS)
    t_trace = time.perf_counter() - t0
    page.wait_for_function(CANVAS_DRAWN_JS, timeout=TIMEOUT_MS)
    t_canvas = time.perf_counter() - t0
    page.close()
    return {"to_title_s": round(t_title, 2), "to_mesh3d_s": round(t_trace, 2), "to_canvas_s": round(t_canvas, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm", type=int, default=3, help="warm reloads after the cold one")
    ap.add_argument("--screenshot", type=Path, help="save a screenshot of the page here")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="msmv-subject-bench-"))
    try:
        h = build_demo_store(tmp / "home", n=DEMO_N, seed=3)
        with Reader(h) as r:
            eid = int(r.participants(columns=["eid", "sex"]).query("sex == 1").eid.iloc[0])
        t0 = time.perf_counter()
        paths = add_processed_phantom(h, eid, seed=1, spacing=UKB_SPACING)
        prep_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scene = load_meshes(paths["meshes"])
        load_s = time.perf_counter() - t0
        print(json.dumps({
            "benchmark": "subject_mesh", "spacing_mm": UKB_SPACING, "surfaces": len(scene), "faces": scene.n_faces,
            "vertices": scene.n_vertices, "npz_bytes": paths["meshes"].stat().st_size,
            "phantom_measure_mesh_s": round(prep_s, 2), "load_s": round(load_s, 3),
            "machine": platform.machine(),
        }), flush=True)
        with DashboardServer(home(h.root).root) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            target = f"{url}/subject?eid={eid}"
            cold = _page_times(browser, target)
            warm = [_page_times(browser, target) for _ in range(args.warm)]
            if args.screenshot:
                page = browser.new_page(viewport={"width": 1600, "height": 2600})
                page.goto(target)
                page.wait_for_function(CANVAS_DRAWN_JS, timeout=TIMEOUT_MS)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(args.screenshot), full_page=True)
            browser.close()
        print(json.dumps({"benchmark": "subject_page", "demo_n": DEMO_N, "load_avg_1m": round(os.getloadavg()[0], 1),
                          "cpus": os.cpu_count(), "cold": cold, "warm": warm,
                          "warm_median_to_canvas_s": sorted(w["to_canvas_s"] for w in warm)[len(warm) // 2]
                          if warm else None}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
