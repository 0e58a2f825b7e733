"""The engine keeps each imaging visit apart and refuses withdrawn participants' packages."""

from __future__ import annotations

import numpy as np

from engine.service import inbox
from engine.service.coordinator import Engine
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.engine.service.fake_pipeline import expected_volumes, make_package

FAKE = "tests.engine.service.fake_pipeline:process"


def test_a_repeat_visit_package_no_longer_replaces_the_first_visit(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    src = tmp_path / "in"
    src.mkdir()
    first = make_package(src / "1001_20201_2_0.zip", 1001, seed=0)
    repeat = make_package(src / "1001_20201_3_0.zip", 1001, seed=1)
    inbox.submit(h, [first])
    Engine(h, workers=1, pipeline=FAKE).run(once=True)
    inbox.submit(h, [repeat])
    Engine(h, workers=1, pipeline=FAKE).run(once=True)
    with Reader(h) as r:
        m = r.structure_metrics([1001])
        jobs = r.jobs()
        arts = r.artifacts(1001)
        wide = r.participants(columns=["eid", "imaging_instance"])
    for instance, seed in ((2, 0), (3, 1)):
        rows = m[m["instance"] == instance].pivot(index="label", columns="side", values="volume_cm3")
        np.testing.assert_allclose(rows[["left", "right"]].to_numpy(), expected_volumes(1001, seed))
    assert sorted(jobs["instance"].tolist()) == [2, 3] and set(jobs["status"]) == {"done"}
    assert [(int(i), p.split("/")[-2]) for i, p in zip(arts["instance"], arts["path"], strict=True)] == [
        (2, "2"), (3, "3")]
    assert all((h.artifact_dir(1001, i) / "labels.bin").is_file() for i in (2, 3))
    assert wide.to_dict("records") == [{"eid": 1001, "imaging_instance": 2}]


def test_a_withdrawn_participants_package_is_deleted_unprocessed(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    with Writer(h) as w:
        w.withdraw([2002])
    src = tmp_path / "in"
    src.mkdir()
    inbox.submit(h, [make_package(src / "2002_20201_2_0.zip", 2002), make_package(src / "3003_20201_2_0.zip", 3003)])
    events: list[str] = []
    Engine(h, workers=1, pipeline=FAKE, on_event=lambda kind, info: events.append(kind)).run(once=True)
    with Reader(h) as r:
        assert r.jobs()["eid"].tolist() == [3003]
        assert r.structure_metrics()["eid"].unique().tolist() == [3003]
    assert events.count("withdrawn") == 1
    assert list(h.inbox.iterdir()) == []
    assert len(list((h.root / "packages").iterdir())) == 1
