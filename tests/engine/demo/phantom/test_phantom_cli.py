"""``msmv phantom`` sized from a participant in a real (small, simulated) store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.demo.phantom.subject import volumes_from_metrics
from store.home import home
from store.reader import Reader

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    cmd = [sys.executable, "-m", "engine.cli", "--home", str(root), "demo", "--n", "40", "--seed", "3", "--phantoms", "0"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def participant(store_root):
    with Reader(home(store_root)) as r:
        people = r.participants(columns=["eid", "sex"])
        eid = int(people["eid"].iloc[0])
        metrics = r.structure_metrics(eids=[eid])
    return eid, int(people["sex"].iloc[0]), volumes_from_metrics(metrics, eid)


def test_unknown_participant_is_a_clear_error(store_root, tmp_path, capsys):
    out = tmp_path / "x.zip"
    assert main(["--home", str(store_root), "phantom", "--eid", "123", "--out", str(out)]) == 2
    assert "participant 123 has no structure volumes in the store" in capsys.readouterr().err
    assert not out.exists()


def test_volumes_from_metrics_reads_the_long_table(participant):
    _eid, _sex, volumes = participant
    assert len(volumes) == 54 and all(v > 0 for v in volumes.values())
    assert volumes[("gluteus_maximus", "left")] > volumes[("piriformis", "left")]


def test_metrics_table_errors(participant):
    import pandas as pd

    with pytest.raises(ValueError, match="metrics need columns"):
        volumes_from_metrics(pd.DataFrame({"eid": [1]}), 1)
    bad = pd.DataFrame({"eid": [1], "key": ["quads"], "side": ["left"], "volume_cm3": [3.0]})
    with pytest.raises(ValueError, match="unknown structure/side 'quads'"):
        volumes_from_metrics(bad, 1)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        volumes_from_metrics([1, 2], 1)


@pytest.mark.slow
def test_phantom_is_sized_from_the_participant(store_root, participant, tmp_path):
    eid, sex, volumes = participant
    out, truth_dir = tmp_path / f"{eid}_20201_2_0.zip", tmp_path / "truth"
    assert main(["--home", str(store_root), "phantom", "--eid", str(eid), "--out", str(out),
                 "--truth", str(truth_dir)]) == 0
    assert out.is_file()
    truth = json.loads((truth_dir / "truth.json").read_text())
    assert truth["eid"] == eid and truth["sex"] == sex
    for (key, side), cm3 in volumes.items():
        assert truth["requested_cm3"][key][side] == pytest.approx(cm3, abs=1e-3)
        assert truth["volumes_cm3"][key][side] == pytest.approx(cm3, rel=0.10), (key, side)
