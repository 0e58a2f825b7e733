"""TotalSegmentator's thigh compartments feed the wide table's compartment volumes and P/A ratio, only for
its own metric set: an engine source of the same or another participant keeps its per-structure values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.interop.importer import import_labels
from engine.interop.mapping import default_mapping
from store.filters import CohortFilter
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.structures import STRUCTURES
from store.writer import Writer
from tests.engine.interop.conftest import SHAPE, VOXEL_MM3, write_nifti
from tests.store.conftest import write_phenotypes

CM3 = VOXEL_MM3 / 1000.0
TS_ONLY, ENGINE_ONLY, BOTH = 2001, 2002, 2003
# TotalSegmentator masks on the 10 x 6 x 4 grid (patient left at low i, right at high i: femora at i 0-1 / 8-9).
MASKS: dict[str, tuple[slice, ...]] = {
    "femur_left": np.s_[0:2, 0:2, :], "femur_right": np.s_[8:10, 0:2, :],
    "sartorius_left": np.s_[2:4, 2, 0], "quadriceps_femoris_left": np.s_[2:4, 3:5, 0],
    "sartorius_right": np.s_[6:8, 2, 0], "quadriceps_femoris_right": np.s_[6:9, 2:4, 0],  # 2 voxels shared
    "thigh_medial_compartment_left": np.s_[2:5, 2:4, 1], "thigh_medial_compartment_right": np.s_[5:8, 2:5, 1],
    "thigh_posterior_compartment_left": np.s_[1:4, 4:6, 2], "thigh_posterior_compartment_right": np.s_[6:9, 4:6, 3],
    "gluteus_maximus_left": np.s_[2:4, 2:4, 3],
}


def _mask(*names: str) -> np.ndarray:
    out = np.zeros(SHAPE, bool)
    for name in names:
        out[MASKS[name]] = True
    return out


def _cm3(*names: str) -> float:
    return float(np.count_nonzero(_mask(*names))) * CM3


# Expected compartment volumes, from the voxel masks (anterior = quadriceps_femoris + sartorius, their union).
ANTERIOR = {s: _cm3(f"quadriceps_femoris_{s}", f"sartorius_{s}") for s in ("left", "right")}
MEDIAL = {s: _cm3(f"thigh_medial_compartment_{s}") for s in ("left", "right")}
POSTERIOR = {s: _cm3(f"thigh_posterior_compartment_{s}") for s in ("left", "right")}


def _engine_rows() -> list[dict[str, object]]:
    """All 27 structures, each with its own volume (label x 1.5 cm³, + 0.25 on the right)."""
    return [{"structure": s.label, "side": side, "volume_cm3": s.label * 1.5 + (0.25 if side == "right" else 0.0),
             "fat_fraction": 0.1} for s in STRUCTURES for side in ("left", "right")]


def _engine_sum(labels: range) -> float:
    return sum(lab * 1.5 * 2 + 0.25 for lab in labels)


def _ts_folder(root: Path, eid: int) -> Path:
    folder = root / f"{eid}_totalseg"
    folder.mkdir()
    for name in MASKS:
        data = np.zeros(SHAPE, np.uint8)
        data[MASKS[name]] = 1
        write_nifti(folder / f"{name}.nii.gz", data)
    return folder


def build_store(root: Path) -> Home:
    """A store with a TotalSegmentator-only participant, an engine-only one and one with both sources."""
    h = make_home(root / "msmv")
    people = [{"eid": e, "sex": 1, "age": 60 + i} for i, e in enumerate((TS_ONLY, ENGINE_ONLY, BOTH))]
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(root / "p.csv", people))
        for eid in (ENGINE_ONLY, BOTH):
            w.commit_subject(eid, _engine_rows(), [], {"kind": "engine", "input_sha256": str(eid)})
    for eid in (TS_ONLY, BOTH):
        (sub,) = import_labels([_ts_folder(root, eid)], "totalsegmentator", default_mapping("totalsegmentator"), home=h)
        assert sub.error is None, sub.error
    return h


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return build_store(tmp_path_factory.mktemp("compartments"))


def _expect_compartments(row: pd.Series) -> None:
    assert row["anterior_cm3"] == pytest.approx(ANTERIOR["left"] + ANTERIOR["right"])
    assert row["medial_cm3"] == pytest.approx(MEDIAL["left"] + MEDIAL["right"])
    assert row["posterior_cm3"] == pytest.approx(POSTERIOR["left"] + POSTERIOR["right"])
    assert row["pa_ratio"] == pytest.approx(sum(POSTERIOR.values()) / sum(ANTERIOR.values()))
    assert bool(row["compartment_level"]) is True


def test_a_compartment_only_source_has_compartment_volumes_and_no_thigh_muscles(store_home: Home) -> None:
    assert ANTERIOR["right"] == pytest.approx(6 * CM3)  # 6 + 2 voxels, the 2 shared ones counted once
    with Reader(store_home) as r:
        wide = r.participants().set_index("eid")
    ts = wide.loc[TS_ONLY]
    _expect_compartments(ts)
    assert ts["metric_source"] == "totalsegmentator"
    assert ts["vol_sartorius_left_cm3"] == pytest.approx(_cm3("sartorius_left"))  # measured one by one: kept
    thigh = [s.key for s in STRUCTURES if s.compartment in ("anterior", "medial", "posterior") and s.key != "sartorius"]
    assert len(thigh) == 12
    for key in thigh:  # not measured: NULL, never 0
        for col in (f"vol_{key}_cm3", f"vol_{key}_left_cm3", f"vol_{key}_right_cm3"):
            assert pd.isna(ts[col]), col
    for col in ("tmv_cm3", "tmv_left_cm3", "tvi", "muscle_strength", "lr_asym_mri_pct"):
        assert pd.isna(ts[col]), col  # TMV is the 25 structures: not formed from compartment regions


def test_engine_sources_keep_their_per_structure_compartments(store_home: Home) -> None:
    with Reader(store_home) as r:
        wide = r.participants().set_index("eid")
    for eid in (ENGINE_ONLY, BOTH):  # BOTH: the engine is preferred, and nothing of the import mixes in
        row = wide.loc[eid]
        assert row["metric_source"] == "msmv"
        assert row["anterior_cm3"] == pytest.approx(_engine_sum(range(1, 6)))
        assert row["medial_cm3"] == pytest.approx(_engine_sum(range(14, 19)))
        assert row["posterior_cm3"] == pytest.approx(_engine_sum(range(19, 22)))
        assert row["pa_ratio"] == pytest.approx(_engine_sum(range(19, 22)) / _engine_sum(range(1, 6)))
        assert row["tmv_cm3"] == pytest.approx(_engine_sum(range(1, 26)))
        assert bool(row["compartment_level"]) is False


def test_the_import_alone_shows_its_compartments_for_the_shared_participant(store_home: Home) -> None:
    with Reader(store_home) as r:
        wide = r.participants(CohortFilter(metric_source="totalsegmentator")).set_index("eid")
    _expect_compartments(wide.loc[BOTH])
    assert pd.isna(wide.loc[BOTH, "tmv_cm3"]) and pd.isna(wide.loc[BOTH, "vol_rectus_femoris_cm3"])
    assert pd.isna(wide.loc[ENGINE_ONLY, "anterior_cm3"]) and pd.isna(wide.loc[ENGINE_ONLY, "compartment_level"])


def test_exports_carry_the_compartments(store_home: Home, tmp_path: Path) -> None:
    home = ["--home", str(store_home.root)]
    out = tmp_path / "cohort.csv"
    cols = "eid,anterior_cm3,medial_cm3,posterior_cm3,pa_ratio,compartment_level,vol_rectus_femoris_cm3"
    assert main([*home, "export", "--out", str(out), "--columns", cols]) == 0
    wide = pd.read_csv(out).set_index("eid")
    _expect_compartments(wide.loc[TS_ONLY])
    assert pd.isna(wide.loc[TS_ONLY, "vol_rectus_femoris_cm3"])
    assert wide.loc[ENGINE_ONLY, "medial_cm3"] == pytest.approx(_engine_sum(range(14, 19)))
    dictionary = pd.read_csv(tmp_path / "cohort.dictionary.csv").set_index("column")["definition"]
    assert "whole-compartment" in dictionary["compartment_level"]
    assert dictionary["medial_cm3"].endswith(  # the import's mapping, quoted for its source
        "Imported source 'totalsegmentator' (TotalSegmentator): medial compartment = the region thigh medial "
        "compartment (TotalSegmentator's medial thigh compartment, by its own definition: compare with MSMV's "
        "medial compartment, do not equate), plus any of the compartment's structures it measured one by one.")
    assert "Imported source" not in dictionary["pa_ratio"]

    long_out = tmp_path / "long.csv"
    assert main([*home, "export", "--long", "--out", str(long_out)]) == 0
    rows = pd.read_csv(long_out)
    comp = rows[rows["level"] == "compartment"]
    assert set(comp["eid"]) == {TS_ONLY, BOTH} and set(comp["source"]) == {"totalsegmentator"}
    ts = comp[comp["eid"] == TS_ONLY].set_index(["structure", "side"])["volume_cm3"]
    expected = {(f"{name}_compartment", side): v[side] for name, v in
                (("anterior", ANTERIOR), ("medial", MEDIAL), ("posterior", POSTERIOR)) for side in ("left", "right")}
    assert ts.to_dict() == pytest.approx(expected)
    structures = rows[rows["level"] == "structure"]
    assert set(structures.loc[structures["source"] == "msmv", "eid"]) == {ENGINE_ONLY, BOTH}
    assert len(structures[structures["source"] == "msmv"]) == 2 * 2 * len(STRUCTURES)
    ts_structures = structures[(structures["eid"] == TS_ONLY)]
    assert set(ts_structures["structure"]) == {"femur", "sartorius", "gluteus_maximus"}
    last = rows[rows["eid"] == TS_ONLY]["level"].tolist()
    assert last == sorted(last, key=["structure", "compartment"].index)  # compartments after the structures
