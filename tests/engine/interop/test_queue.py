"""Label imports through the single writer: queued to a running engine, committed once, never half-committed."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.interop import bundle
from engine.interop.importer import import_labels
from engine.interop.mapping import default_mapping
from engine.service.coordinator import Engine
from engine.service.jobs import jobs_table
from store.files import sha256_file
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.engine.interop.conftest import SHAPE, VOXEL_MM3, femora, write_nifti

FAKE = "tests.engine.service.fake_pipeline:process"  # no package is processed here: no model needed
CM3 = VOXEL_MM3 / 1000.0
EID = 1234567


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home").ensure()


def _musclemap(tmp_path: Path, piriformis: bool = False) -> Path:
    """Femora (16 voxels a side) and a sartorius labelled left on both sides of the midline (5 voxels)."""
    data = np.zeros(SHAPE, np.int16)
    femora(data, 6171, 6172)
    data[2:4, 3, 0] = 7141
    data[6:9, 4, 1] = 7141
    if piriformis:  # a label only MuscleMap 1.2 has: the file proves the newer label set
        data[4, 4, 2] = 6181
    path = tmp_path / f"{EID}_musclemap{'_v12' if piriformis else ''}.nii.gz"
    return write_nifti(path, data)


def _volumes(home: Home, source: str = "musclemap") -> dict[tuple[int, str], float]:
    with Reader(home) as r:
        m = r.structure_metrics([EID], source=source)
    return {(int(lab), side): float(v) for lab, side, v in zip(m["label"], m["side"], m["volume_cm3"], strict=True)}


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - no snapshot yet, or one being replaced
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_an_import_while_the_engine_runs_is_queued_and_the_engine_commits_it(tmp_path: Path, home: Home) -> None:
    engine = Engine(home, workers=1, pipeline=FAKE)
    thread = threading.Thread(target=engine.run, kwargs={"idle_sleep_s": 0.2}, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: home.lock.read_text().strip() == str(os.getpid()))  # the engine holds the writer
        (sub,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)
        assert sub.error is None and sub.queued and sub.job_id is not None
        _wait_for(lambda: jobs_table(home).set_index("job_id").loc[sub.job_id, "status"] == "done")
    finally:
        engine.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    jobs = jobs_table(home).set_index("job_id")
    assert jobs.loc[sub.job_id, "eid"] == EID and jobs.loc[sub.job_id, "stage"] == bundle.JOB_STAGE
    assert set(json.loads(jobs.loc[sub.job_id, "timings"])) == {"convert", "measure", "mesh"}
    vols = _volumes(home)
    assert vols[(1, "left")] == pytest.approx(5 * CM3) and vols[(1, "right")] == 0.0  # sartorius: sides as labelled
    assert vols[(27, "left")] == pytest.approx(16 * CM3) and vols[(27, "right")] == pytest.approx(16 * CM3)
    with Reader(home) as r:
        arts = r.artifacts(EID)
    for path, sha in zip(arts["path"], arts["sha256"], strict=True):
        assert Path(path).parent == bundle.import_dir(home, EID, 2, "musclemap") and sha256_file(Path(path)) == sha
    assert not list(home.inbox.iterdir()) and not list((home.root / bundle.PACKAGES_DIR).iterdir())


def test_a_crash_between_installing_and_committing_is_committed_on_restart(tmp_path: Path, home: Home) -> None:
    import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)  # one-shot
    assert len(_volumes(home)) == 2 * 20  # read as an older model: the five v1.2 structures not measured
    with Writer(home) as w:  # stands in for a running engine: the second import is queued
        (sub,) = import_labels([_musclemap(tmp_path, piriformis=True)], "musclemap", default_mapping("musclemap"),
                               home=home)
        assert sub.queued
        sealed = home.inbox / f"{sub.job_id}{bundle.BUNDLE_SUFFIX}"
        assert bundle.claim_bundle(w, home, sealed) == sub.job_id
        # what commit_job does before its transaction, then the process dies
        final = bundle.import_dir(home, EID, 2, "musclemap")
        os.replace(final, final.with_name(f".{final.name}.old-{sub.job_id}"))
        os.replace(bundle.claimed_path(home, sealed), final)
    stats = Engine(home, workers=1, pipeline=FAKE).run(once=True)
    assert (stats.done, stats.failed) == (1, 0)
    vols = _volumes(home)
    assert len(vols) == 2 * 25 and vols[(9, "left")] == pytest.approx(CM3)  # piriformis: the new import's rows
    assert sorted(p.name for p in final.parent.iterdir()) == ["musclemap"]  # the earlier folder tidied away
    assert json.loads((final / bundle.REQUEST_FILE).read_text())["bundle_id"] == sub.job_id


def test_failures_keep_the_earlier_import_and_say_why(tmp_path: Path, home: Home) -> None:
    import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)
    before = _volumes(home)
    final = bundle.import_dir(home, EID, 2, "musclemap")
    labels_sha = sha256_file(final / "labels.nrrd")
    with Writer(home):
        (sub,) = import_labels([_musclemap(tmp_path, piriformis=True)], "musclemap", default_mapping("musclemap"),
                               home=home)
    sealed = home.inbox / f"{sub.job_id}{bundle.BUNDLE_SUFFIX}"
    (sealed / "labels.nrrd").write_bytes(b"changed")
    broken = home.inbox / f"{'b' * 24}{bundle.BUNDLE_SUFFIX}"
    broken.mkdir()
    (broken / bundle.REQUEST_FILE).write_text("{not json")
    stats = Engine(home, workers=1, pipeline=FAKE).run(once=True)
    assert stats.failed == 1  # the tampered one; the unreadable one failed as it was claimed
    jobs = jobs_table(home).set_index("job_id")
    assert jobs.loc[sub.job_id, "status"] == "failed"
    assert "labels.nrrd changed after the import measured it" in jobs.loc[sub.job_id, "error"]
    assert jobs.loc["b" * 24, "status"] == "failed" and "request.json is not JSON" in jobs.loc["b" * 24, "error"]
    assert _volumes(home) == before and sha256_file(final / "labels.nrrd") == labels_sha
    assert sorted(p.name for p in final.parent.iterdir()) == ["musclemap"]
    assert not list(home.inbox.iterdir()) and not list((home.root / bundle.PACKAGES_DIR).iterdir())


def test_a_withdrawn_participants_queued_import_is_deleted_unclaimed(tmp_path: Path, home: Home) -> None:
    with Writer(home) as w:
        (sub,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)
        w.withdraw([EID])
        assert bundle.claim(w, home) == 0
        assert sub.job_id not in set(w.jobs()["job_id"])
    assert not list(home.inbox.iterdir()) and not list((home.root / bundle.PACKAGES_DIR).iterdir())
    (again,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)
    assert again.error == f"participant {EID} withdrew from UK Biobank; not imported"


@pytest.mark.parametrize(("source", "folder"), [("musclemap", "musclemap"), ("../x", "x-"), ("a b/c", "a_b_c-")])
def test_a_source_name_never_reaches_a_path_as_given(home: Home, source: str, folder: str) -> None:
    where = bundle.import_dir(home, EID, 2, source)
    assert where.parent == home.artifact_dir(EID) / "imports" / "2" and where.name.startswith(folder)


def test_claiming_removes_only_bundles_whose_building_process_died(home: Home) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (home.inbox / f".labels-building-{dead}-x").mkdir()
    ours = bundle.staging(home)  # this process is alive: an import still building its bundle
    with Writer(home) as w:
        assert bundle.claim(w, home) == 0
    assert [p.name for p in home.inbox.iterdir()] == [ours.name]


def test_a_one_shot_import_also_commits_what_waited_for_the_writer(tmp_path: Path, home: Home) -> None:
    with Writer(home):  # another command holds the store: the import waits in the inbox
        (waiting,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home,
                                   source="earlier")
    assert waiting.queued
    (now,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)
    assert now.error is None and not now.queued
    jobs = jobs_table(home).set_index("job_id")
    assert jobs.loc[waiting.job_id, "status"] == jobs.loc[now.job_id, "status"] == "done"
    assert _volumes(home, "earlier") == _volumes(home, "musclemap") != {}
    assert not list(home.inbox.iterdir())


def test_a_failure_after_the_transaction_keeps_what_was_committed(tmp_path: Path, home: Home, monkeypatch) -> None:
    from store.errors import DiskFullError

    with Writer(home):
        (sub,) = import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home)

    def full(self, force: bool = False) -> int:
        raise DiskFullError("no space left for the snapshot")

    with Writer(home) as w:
        assert bundle.claim(w, home) == 1
        monkeypatch.setattr(Writer, "publish", full)
        with pytest.raises(DiskFullError, match="no space left"):
            bundle.commit_job(w, home, sub.job_id, str(home.root / bundle.PACKAGES_DIR / f"{sub.job_id}.labels"))
        monkeypatch.undo()
        assert w.jobs().set_index("job_id").loc[sub.job_id, "status"] == "done"
    final = bundle.import_dir(home, EID, 2, "musclemap")
    with Reader(home) as r:
        arts = r.artifacts(EID)
    assert sorted(Path(p).name for p in arts["path"]) == ["labels.nrrd", "meshes.npz"]
    assert all(Path(p).is_file() and Path(p).parent == final for p in arts["path"])
