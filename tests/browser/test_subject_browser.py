"""The Subject page in a real headless Chromium: a processed phantom's page draws its 3-D view.

The processed subject is made here without the (slow) segmentation: a small phantom's truth labels,
water/fat images and meshes are written into MSMV_HOME/artifacts/<eid>/ and committed through
``Writer.commit_subject``, exactly what the engine's coordinator does after a worker finishes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dashboard.server import DashboardServer
from engine.demo.phantom.subject import make_phantom
from engine.imaging.measure import measure
from engine.imaging.mesh import build_meshes, save_meshes
from engine.imaging.volume import write_nrrd
from store.files import sha256_file
from store.home import Home, home
from store.reader import Reader
from store.writer import Writer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHANTOM_SPACING = (4.0, 4.0, 5.0)  # mm: coarse, so the phantom renders in seconds
VIEW_TIMEOUT_MS = 120_000
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
HAS_MESH3D_JS = ("() => [...document.querySelectorAll('.js-plotly-plot')]"
                 ".some(p => (p._fullData || []).some(t => t.type === 'mesh3d'))")


def add_processed_phantom(home: Home, eid: int, *, seed: int = 0, sex: int = 1,
                          spacing: tuple[float, float, float] = PHANTOM_SPACING) -> dict[str, Path]:
    """Write a phantom's artifacts (labels, water, fat, fat fraction, meshes) for ``eid`` and commit them."""
    p = make_phantom(seed, sex=sex, spacing=spacing, noise=False)
    out = home.artifact_dir(eid)
    out.mkdir(parents=True, exist_ok=True)
    water = np.asarray(p.water.data, dtype=np.float32)
    fat = np.asarray(p.fat.data, dtype=np.float32)
    total = water + fat
    ff = np.divide(fat, total, out=np.zeros_like(total), where=total > 0)
    paths = {"labels": write_nrrd(out / "labels.nrrd", p.labels), "water": write_nrrd(out / "water.nrrd", p.water),
             "fat": write_nrrd(out / "fat.nrrd", p.fat),
             "fat_fraction": write_nrrd(out / "fat_fraction.nrrd", p.water.with_data(ff))}
    result = measure(p.labels, water=p.water, fat=p.fat)
    paths["meshes"] = save_meshes(build_meshes(p.labels, midline=result["midline_x_mm"]), out / "meshes.npz")
    metrics = [{"structure": int(label), "side": side, "volume_cm3": row[f"{side}_cm3"],
                "fat_fraction": None if np.isnan(row["fat_fraction"]) else row["fat_fraction"]}
               for label, row in result["structures"].items() for side in ("left", "right")]
    artifacts = [{"kind": k, "path": str(v), "sha256": sha256_file(v)} for k, v in paths.items()]
    provenance = {"kind": "phantom", "input_sha256": None, "model_sha256": None, "code_version": "test",
                  "details": {"seed": seed, "spacing": list(spacing)}}
    with Writer(home) as w:
        w.commit_subject(eid, metrics, artifacts, provenance)
    return paths


@pytest.fixture(scope="module")
def processed(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Home]]:
    # a copy of the session's demo store: these tests commit results into it
    store = home(shutil.copytree(demo_home, tmp_path_factory.mktemp("subject") / "msmv_home"))
    with Reader(store) as r:
        men = r.participants(columns=["eid", "sex"]).query("sex == 1")
    eid = int(men.eid.iloc[0])  # a demo participant (phenotypes, reference group) who now gets imaging
    add_processed_phantom(store, eid)
    with DashboardServer(store.root) as url:
        yield url, eid, store


def test_processed_phantom_page_shows_the_3d_view(processed, browser, tmp_path):
    url, eid, home = processed
    with Reader(home) as r:
        kinds = set(r.artifacts(eid)["kind"])
    assert {"meshes", "labels", "water", "fat", "fat_fraction"} <= kinds
    page = browser.new_page(viewport={"width": 1600, "height": 2400})
    page.goto(f"{url}/subject?eid={eid}")
    page.wait_for_function(HAS_MESH3D_JS, timeout=VIEW_TIMEOUT_MS)
    n_mesh = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".flatMap(p => (p._fullData || []).filter(t => t.type === 'mesh3d')).length")
    assert n_mesh >= 40  # 25 muscles + 2 bones, most of them on both sides
    # the slices and the report come after the 3-D view in the same script run: wait for them, then check
    page.get_by_text("Orthogonal slices").wait_for(state="visible", timeout=VIEW_TIMEOUT_MS)
    page.get_by_text("Download one-page report (PDF)").wait_for(state="visible", timeout=VIEW_TIMEOUT_MS)
    assert page.locator(ERROR_SELECTOR).count() == 0
    page.screenshot(path=str(tmp_path / "subject.png"), full_page=True)


def test_subject_without_imaging_gets_the_schematic(processed, browser):
    url, eid, home = processed
    with Reader(home) as r:
        other = int(r.participants(columns=["eid"]).eid.iloc[-1])
    assert other != eid
    page = browser.new_page(viewport={"width": 1600, "height": 2400})
    page.goto(f"{url}/subject?eid={other}")
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                           ".some(t => t.textContent.startsWith('Muscle map'))", timeout=VIEW_TIMEOUT_MS)
    page.get_by_text("No 3-D surfaces for this participant").wait_for(state="visible", timeout=VIEW_TIMEOUT_MS)
    assert page.evaluate(HAS_MESH3D_JS) is False


def test_agreement_page_compares_the_engine_with_simulated_values(processed, browser, tmp_path):
    url, eid, home = processed
    with Reader(home) as r:  # a few more demo participants get engine results beside their simulated ones
        men = r.participants(columns=["eid", "sex"]).query("sex == 1")["eid"].astype(int).tolist()[1:5]
        simulated = r.structure_metrics(men, source="simulated")
    with Writer(home) as w:
        for i, (other, rows) in enumerate(simulated.groupby("eid")):
            metrics = [{"structure": int(m.label), "side": m.side, "volume_cm3": m.volume_cm3 * (1.02 + 0.01 * i)}
                       for m in rows.itertuples()]
            w.commit_subject(int(other), metrics, [], {"kind": "engine", "input_sha256": f"agreement-{other}"})
    page = browser.new_page(viewport={"width": 1600, "height": 3000})
    page.goto(f"{url}/agreement")
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                           ".some(t => t.textContent.startsWith('Bland–Altman: TMV'))", timeout=VIEW_TIMEOUT_MS)
    title = page.locator(".js-plotly-plot .gtitle").first.text_content()
    # the four above, and the phantom where its labels hold every muscle (else its TMV is unknown)
    assert title in {f"Bland–Altman: TMV (cm³), simulated vs msmv (n = {n})" for n in (4, 5)}, title
    page.get_by_text("All structures, TMV and P/A ratio").wait_for(state="visible", timeout=VIEW_TIMEOUT_MS)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=VIEW_TIMEOUT_MS)
    assert page.locator(ERROR_SELECTOR).count() == 0
    page.screenshot(path=str(tmp_path / "agreement.png"), full_page=True)
