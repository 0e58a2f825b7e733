"""Subject page: a participant segmented by a checkpoint says what that checkpoint was validated on (AppTest)."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from dashboard.registry import ROOT
from engine.imaging.volume import Volume, write_nrrd
from engine.segmentation.checkpoint import VALIDATION_KEY
from store.files import sha256_file
from store.home import home as make_home
from store.writer import Writer
from tests.store.conftest import metric_rows

PAGE_TIMEOUT_S = 120


def _page(tmp_path, monkeypatch, meta: dict[str, str]) -> AppTest:
    h = make_home(tmp_path / "msmv")
    phen = tmp_path / "p.csv"
    phen.write_text("eid,31-0.0,21003-2.0\n1001,1,60\n")
    labels = tmp_path / "labels.nrrd"
    data = np.zeros((6, 5, 4), np.uint8)
    data[1:3, 1:3, 1:3] = 27
    write_nrrd(labels, Volume(data, (1.0, 1.0, 1.0), meta=meta))
    with Writer(h) as w:
        w.import_phenotypes(phen)
        w.commit_subject(1001, metric_rows(1001, 10.0), [{"kind": "labels", "path": str(labels),
                                                          "sha256": sha256_file(labels)}],
                         {"kind": "engine", "input_sha256": "a"})
    monkeypatch.setenv("MSMV_HOME", str(h.root))
    at = AppTest.from_file(str(ROOT / "pages/subject.py"), default_timeout=PAGE_TIMEOUT_S)
    at.query_params["eid"] = "1001"
    return at.run()


def test_segmented_subject_shows_the_checkpoints_validation(tmp_path, monkeypatch):
    at = _page(tmp_path, monkeypatch, {VALIDATION_KEY: "Segmentation checkpoint validated on cubes only."})
    assert not at.exception
    assert [i.value for i in at.info if "validated on" in i.value] == [
        "Segmentation checkpoint validated on cubes only. The volumes below come from its label map."]


def test_label_map_without_a_checkpoint_shows_no_note(tmp_path, monkeypatch):
    at = _page(tmp_path, monkeypatch, {})
    assert not at.exception
    assert not [i.value for i in at.info if "validated on" in i.value]
