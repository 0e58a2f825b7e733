"""End to end: label files made in code → import → rows in the store, artifacts on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.cli.interop import _FORMATS
from engine.imaging.volume import Volume, read_nrrd, write_nrrd
from engine.interop.importer import FORMATS, SubjectImport, import_labels
from engine.interop.mapping import default_mapping, load_mapping
from engine.interop.read import LabelFileError
from store.home import Home
from store.home import home as make_home
from store.structures import BY_KEY
from store.writer import Writer
from tests.engine.interop.conftest import SHAPE, VOXEL_MM3, femora, write_nifti

CM3 = VOXEL_MM3 / 1000.0


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home")


def _rows(home: Home, eid: int, source: str) -> dict[tuple[str, str], tuple[float, float | None]]:
    with Writer(home) as w:
        rows = w.con.execute("""SELECT s.key, m.side, m.volume_cm3, m.fat_fraction FROM structure_metrics m
            JOIN structures s USING (label) WHERE eid = ? AND source = ?""", [eid, source]).fetchall()
    return {(k, side): (vol, ff) for k, side, vol, ff in rows}


def _compartments(home: Home, eid: int, source: str) -> dict[tuple[str, str], float]:
    with Writer(home) as w:
        rows = w.con.execute("SELECT compartment, side, volume_cm3 FROM compartment_metrics WHERE eid = ? AND source = ?",
                             [eid, source]).fetchall()
    return {(c, s): v for c, s, v in rows}


def _one(results: list[SubjectImport]) -> SubjectImport:
    assert len(results) == 1
    assert results[0].error is None, results[0].error
    return results[0]


def _musclemap(tmp_path: Path) -> Path:
    data = np.zeros(SHAPE, np.int16)
    femora(data, 6171, 6172)  # 16 voxels each
    data[2:4, 3, 0] = 7141  # sartorius left, patient's left of the midline (i <= 4)...
    data[6:9, 4, 1] = 7141  # ...and 3 voxels across it: still left, as labelled
    data[5:7, 5, 3] = 7142  # sartorius right
    data[3, 2:5, 2] = 5121  # psoas major left (3) + iliacus left (2) -> iliopsoas left
    data[4, 2:4, 3] = 6141
    data[5, 0:4, 0] = 5111  # erector spinae left: no counterpart
    data[9, 5, 3] = 9999  # a value MuscleMap does not have
    return write_nifti(tmp_path / "1234567_musclemap.nii.gz", data)


def test_musclemap_sides_as_labelled_and_merges(tmp_path: Path, home: Home) -> None:
    sub = _one(import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home))
    assert sub.eid == 1234567
    rows = _rows(home, 1234567, "musclemap")
    assert rows[("sartorius", "left")][0] == pytest.approx(5 * CM3)
    assert rows[("sartorius", "right")][0] == pytest.approx(2 * CM3)
    assert rows[("iliopsoas", "left")][0] == pytest.approx(5 * CM3)
    assert rows[("iliopsoas", "right")][0] == 0.0  # in MuscleMap's label set, no voxels: measured as none
    assert rows[("femur", "left")][0] == pytest.approx(16 * CM3)
    assert rows[("sartorius", "left")][1] is None  # no water/fat given
    # not in the file's label set: no rows at all, never 0
    for key in ("abdominal_oblique", "rectus_abdominis", "piriformis", "pectineus", "quadratus_femoris"):
        assert (key, "left") not in rows and (key, "right") not in rows
        assert f"{key} left" in sub.measured.not_measured
    assert len(rows) == 2 * 20  # 25 structures less the five only v1.2 labels, both sides
    assert sub.ignored == {"erector spinae left (5111)": 4, "9999": 1}
    assert "1.2" in sub.version_note


def test_musclemap_version_given_measures_the_later_labels(tmp_path: Path, home: Home) -> None:
    _one(import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home,
                       tool_version="1.2", source="mm12"))
    rows = _rows(home, 1234567, "mm12")
    assert rows[("piriformis", "left")][0] == 0.0 and rows[("quadratus_femoris", "right")][0] == 0.0
    assert len(rows) == 2 * 25


def test_provenance_and_the_converted_label_map(tmp_path: Path, home: Home) -> None:
    path = _musclemap(tmp_path)
    sub = _one(import_labels([path], "musclemap", default_mapping("musclemap"), home=home))
    assert sub.artifact_dir == home.artifact_dir(1234567) / "imports" / "2" / "musclemap"
    assert sub.job_id is not None and not sub.queued  # committed here: no engine held the writer
    labels = read_nrrd(sub.artifact_dir / "labels.nrrd")
    assert int(labels.data[7, 4, 1]) == BY_KEY["sartorius"].label
    assert int(labels.data[3, 3, 2]) == int(labels.data[4, 2, 3]) == BY_KEY["iliopsoas"].label
    assert int(labels.data[5, 0, 0]) == 0  # ignored labels are not in the converted map
    assert labels.world(np.array([1, 2, 3])) == pytest.approx([7.0, -9.0, 49.0])  # RAS (-7, 9, 49) in LPS
    from store.files import sha256_file

    with Writer(home) as w:
        kind, sha, details = w.con.execute(
            """SELECT p.kind, p.input_sha256, p.details FROM metric_sets m JOIN provenance p ON p.id = m.provenance_id
            WHERE eid = 1234567 AND source = 'musclemap'""").fetchone()
        arts = dict(w.con.execute("SELECT kind, path FROM artifacts WHERE eid = 1234567").fetchall())
    assert (kind, sha) == ("label-import", sha256_file(path))
    assert '"tool": "MuscleMap"' in details and "default musclemap.toml" in details
    assert "iliopsoas left = iliacus left + psoas major left" in details
    assert Path(arts["labels"]) == sub.artifact_dir / "labels.nrrd"


def _ts_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "1234568_totalseg"
    folder.mkdir()
    masks: dict[str, tuple[slice, ...]] = {
        "femur_left": np.s_[0:2, 0:2, :], "femur_right": np.s_[8:10, 0:2, :],
        "gluteus_maximus_left": np.s_[1:4, 3:6, 0], "gluteus_medius_left": np.s_[3:5, 3:6, 0],  # overlap at i = 3
        "sartorius_left": np.s_[2:4, 0, 2], "quadriceps_femoris_left": np.s_[1:4, 2:5, 2],
        "thigh_posterior_compartment_left": np.s_[1:4, 4:6, 3], "hip_left": np.s_[2:4, 1:3, 1],
        "spleen": np.s_[9, 5, 0],
    }
    for name, where in masks.items():
        data = np.zeros(SHAPE, np.uint8)
        data[where] = 1
        write_nifti(folder / f"{name}.nii.gz", data)
    return folder


def test_totalsegmentator_folder_compartments_and_overlaps(tmp_path: Path, home: Home) -> None:
    sub = _one(import_labels([_ts_folder(tmp_path)], "totalsegmentator", default_mapping("totalsegmentator"),
                             home=home))
    assert sub.eid == 1234568
    rows = _rows(home, 1234568, "totalsegmentator")
    assert rows[("gluteus_maximus", "left")][0] == pytest.approx(9 * CM3)
    assert rows[("gluteus_medius", "left")][0] == pytest.approx(3 * CM3)  # lost its 3 shared voxels
    assert sub.overlaps == ["3 voxels are in both gluteus_maximus_left and gluteus_medius_left: kept as "
                            "gluteus_maximus_left (listed first in the mapping)"]
    assert set(rows) == {("femur", "left"), ("femur", "right"), ("gluteus_maximus", "left"),
                         ("gluteus_medius", "left"), ("sartorius", "left")}  # thigh muscles, iliac bone: not measured
    comps = _compartments(home, 1234568, "totalsegmentator")
    assert comps == pytest.approx({("anterior", "left"): 11 * CM3, ("posterior", "left"): 6 * CM3})
    assert comps[("posterior", "left")] / comps[("anterior", "left")] == pytest.approx(6 / 11)
    assert set(sub.ignored) == {"hip bone (the whole os coxae: ilium, ischium and pubis), not MSMV's iliac bone "
                                "(hip_left)", "spleen"}


def test_totalsegmentator_multilabel_uses_the_files_own_table_else_the_versions(tmp_path: Path, home: Home) -> None:
    data = np.zeros(SHAPE, np.uint8)
    femora(data, 36, 37)  # femur_left / femur_right in total_mr since 2.5 (and in the file's table below)
    data[2:4, 3:5, 1] = 40  # 4 voxels
    table = {36: "femur_left", 37: "femur_right", 40: "gluteus_maximus_left"}
    with_table = write_nifti(tmp_path / "1234569_total_mr.nii.gz", data, label_table=table)
    _one(import_labels([with_table], "totalsegmentator", default_mapping("totalsegmentator"), home=home))
    assert _rows(home, 1234569, "totalsegmentator")[("gluteus_maximus", "left")][0] == pytest.approx(4 * CM3)
    bare = write_nifti(tmp_path / "1234570_total_mr.nii.gz", data)
    _one(import_labels([bare], "totalsegmentator", default_mapping("totalsegmentator"), home=home,
                       tool_version="2.4.0"))
    rows = _rows(home, 1234570, "totalsegmentator")
    # before 2.5, value 40 was gluteus_medius_left and 36/37 were the hips (ignored)
    assert rows[("gluteus_medius", "left")][0] == pytest.approx(4 * CM3)
    assert ("femur", "left") in rows and rows[("femur", "left")][0] == 0.0
    failed = import_labels([bare], "totalsegmentator", default_mapping("totalsegmentator"), home=home, source="x")[0]
    assert failed.error is not None and "give --tool-version" in failed.error


def _seg_nrrd(tmp_path: Path) -> tuple[Path, Volume]:
    data = np.zeros(SHAPE, np.uint8)
    data[0:2, 0:2, :] = 3  # femora, unsided: split at the midline (LPS x grows with i here: i >= 5 is left)
    data[8:10, 0:2, :] = 3
    data[1, 3:6, 2] = 5  # "Vastus lat L": labelled left although it lies right of the midline
    data[3:7, 4, 1] = 9  # adductor longus, unsided: 2 voxels each side
    vol = Volume(data, (1.5, 2.0, 2.5), (10.0, -20.0, 30.0))
    header = {"Segment0_Name": "Femur", "Segment0_LabelValue": "3", "Segment1_Name": "Vastus lat L",
              "Segment1_LabelValue": "5", "Segment2_Name": "Adductor longus", "Segment2_LabelValue": "9"}
    return write_nrrd(tmp_path / "sub-1234571_seg.seg.nrrd", vol, extra_header=header), vol


def test_labelmap_segment_names_values_and_fat_fraction_resampled(tmp_path: Path, home: Home) -> None:
    path, vol = _seg_nrrd(tmp_path)
    mapping_path = tmp_path / "map.toml"
    mapping_path.write_text('[map]\n"Vastus lat L" = { structure = "vastus_lateralis", side = "left" }\n'
                            '"9" = "adductor longus"\n"Femur" = "femur"\n')
    # water and fat on a finer grid that covers the label grid, in NIfTI (RAS): fat grows linearly with z
    spacing = np.array([0.75, 1.0, 1.25])
    origin = np.asarray(vol.origin) - 2.0
    lps = np.eye(4)
    lps[:3, :3] = np.diag(spacing)
    lps[:3, 3] = origin
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    shape = (30, 16, 12)
    z = origin[2] + spacing[2] * np.arange(shape[2])
    fat = np.broadcast_to(0.5 + (z - vol.origin[2]) / 10.0, shape).astype(np.float32)
    water_p = write_nifti(tmp_path / "water.nii.gz", np.ones(shape, np.float32), ras)
    fat_p = write_nifti(tmp_path / "fat.nii.gz", fat, ras)
    sub = _one(import_labels([path], "labelmap", load_mapping("labelmap", mapping_path), home=home,
                             water=water_p, fat=fat_p))
    assert sub.eid == 1234571
    rows = _rows(home, 1234571, "labelmap")
    cm3 = 1.5 * 2.0 * 2.5 / 1000.0
    assert rows[("vastus_lateralis", "left")][0] == pytest.approx(3 * cm3)
    assert ("vastus_lateralis", "right") not in rows  # the map only holds a left one
    assert rows[("adductor_longus", "left")][0] == pytest.approx(2 * cm3)
    assert rows[("adductor_longus", "right")][0] == pytest.approx(2 * cm3)
    assert rows[("femur", "left")][0] == pytest.approx(16 * cm3)
    # fat = 0.5 + 2.5 k / 10 at slice k, water = 1: ff = fat / (fat + 1)
    assert rows[("vastus_lateralis", "left")][1] == pytest.approx(1.0 / 2.0, abs=1e-5)  # k = 2
    assert rows[("adductor_longus", "left")][1] == pytest.approx(0.75 / 1.75, abs=1e-5)  # k = 1


def test_labelmap_mapping_naming_segments_the_file_lacks(tmp_path: Path, home: Home) -> None:
    path, _ = _seg_nrrd(tmp_path)
    mapping_path = tmp_path / "map.toml"
    mapping_path.write_text('[map]\n"Gracilis R" = { structure = "gracilis", side = "right" }\n')
    sub = import_labels([path], "labelmap", load_mapping("labelmap", mapping_path), home=home)[0]
    assert sub.error is not None and "label table does not have" in sub.error
    assert _rows(home, 1234571, "labelmap") == {}


def test_unknown_format_and_missing_eid(tmp_path: Path, home: Home) -> None:
    with pytest.raises(LabelFileError, match="unknown format 'itk'"):
        import_labels([_musclemap(tmp_path)], "itk", default_mapping("musclemap"), home=home)
    nameless = write_nifti(tmp_path / "labels.nii.gz", np.zeros(SHAPE, np.int16))
    sub = import_labels([nameless], "musclemap", default_mapping("musclemap"), home=home)[0]
    assert sub.error is not None and "no participant ID in the name" in sub.error


def test_a_folder_imports_each_file_and_the_cli_reports(tmp_path: Path, home: Home,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    first = _musclemap(folder)
    (folder / "1234572_musclemap.nii.gz").write_bytes(first.read_bytes())
    assert main(["--home", str(home.root), "import-labels", str(folder), "--format", "musclemap"]) == 0
    out = capsys.readouterr().out
    assert "participant 1234567" in out and "participant 1234572" in out
    assert "erector spinae left (5111): 4 voxels" in out
    assert _rows(home, 1234572, "musclemap")[("sartorius", "left")][0] == pytest.approx(5 * CM3)
    assert main(["--home", str(home.root), "import-labels", str(first), "--format", "labelmap"]) == 2
    assert "needs --mapping" in capsys.readouterr().err


def test_cli_formats_match_the_importers() -> None:
    assert _FORMATS == FORMATS


def test_meshes_keep_the_sides_as_labelled(tmp_path: Path, home: Home) -> None:
    from engine.imaging.mesh import load_meshes

    sub = _one(import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home))
    scene = load_meshes(sub.artifact_dir / "meshes.npz")
    assert scene.midline_source == "left mask"
    sartorius = BY_KEY["sartorius"].label
    # LPS x = 9 - 2 i here, midline x = 0: the 3 voxels labelled left at i = 6-8 lie at x = -3 ... -7, on the
    # patient's right, and stay in the left sartorius's surface (a midline split would move them to the right)
    left_x = scene.meshes[(sartorius, "left")].vertices[:, 0]
    assert left_x.min() < -2.0 and left_x.max() > 2.0
    right_x = scene.meshes[(sartorius, "right")].vertices[:, 0]
    assert -4.0 < right_x.min() and right_x.max() < 0.0  # the 2 right-labelled voxels, i = 5-6 (x = -1, -3)


def test_the_tool_version_comes_from_the_flag_else_a_bids_description_else_is_unknown(tmp_path: Path,
                                                                                       home: Home) -> None:
    import json

    folder = tmp_path / "derivatives" / "musclemap"
    (folder / "sub-1234567").mkdir(parents=True)
    path = _musclemap(folder / "sub-1234567")
    unknown = _one(import_labels([path], "musclemap", default_mapping("musclemap"), home=home))
    assert unknown.tool_version is None and "writes no version into its output" in unknown.version_note
    assert "are not measured (not 0)" in unknown.version_note and "piriformis" in unknown.version_note
    (folder / "dataset_description.json").write_text(json.dumps(
        {"Name": "thighs", "DatasetType": "derivative", "GeneratedBy": [{"Name": "dcm2niix", "Version": "1.0"},
                                                                        {"Name": "MuscleMap", "Version": "v1.2"}]}))
    described = _one(import_labels([path], "musclemap", default_mapping("musclemap"), home=home, source="mm-bids"))
    assert described.tool_version == "v1.2" and str(folder / "dataset_description.json") in described.version_note
    assert len(_rows(home, 1234567, "mm-bids")) == 2 * 25  # v1.2's label set: its structures measured (as 0 here)
    given = _one(import_labels([path], "musclemap", default_mapping("musclemap"), home=home, tool_version="1.1",
                               source="mm-given"))
    assert (given.tool_version, given.version_note) == ("1.1", "given with --tool-version")
    assert len(_rows(home, 1234567, "mm-given")) == 2 * 20
    (folder / "dataset_description.json").write_text("{")
    broken = import_labels([path], "musclemap", default_mapping("musclemap"), home=home, source="x")[0]
    assert broken.error is not None and "dataset_description.json: not readable JSON" in broken.error


def test_imports_reach_msmv_export_with_what_their_mappings_merged(tmp_path: Path, home: Home) -> None:
    import pandas as pd

    from store.metrics import data_dictionary
    from store.vocabulary import volume_column

    _one(import_labels([_musclemap(tmp_path)], "musclemap", default_mapping("musclemap"), home=home))
    _one(import_labels([_ts_folder(tmp_path)], "totalsegmentator", default_mapping("totalsegmentator"), home=home))
    out = tmp_path / "cohort.csv"
    cols = [volume_column(k, s) for k in ("sartorius", "iliopsoas", "gluteus_maximus") for s in ("left", "right")]
    assert main(["--home", str(home.root), "export", "--out", str(out), "--columns", ",".join(["eid", *cols])]) == 0
    rows = pd.read_csv(out).set_index("eid")
    assert rows.loc[1234567, "vol_sartorius_left_cm3"] == pytest.approx(5 * CM3)  # 2 + 3 voxels, sides as labelled
    assert rows.loc[1234567, "vol_iliopsoas_left_cm3"] == pytest.approx(5 * CM3)  # psoas 3 + iliacus 2
    assert rows.loc[1234568, "vol_gluteus_maximus_left_cm3"] == pytest.approx(9 * CM3)
    assert pd.isna(rows.loc[1234568, "vol_iliopsoas_left_cm3"])  # the TotalSegmentator folder has no iliopsoas mask
    dictionary = pd.read_csv(out.with_name("cohort.dictionary.csv")).set_index("column")["definition"]
    plain = data_dictionary().set_index("column")["definition"]["vol_iliopsoas_left_cm3"].rstrip(".")
    assert dictionary["vol_iliopsoas_left_cm3"] == (f"{plain}. Imported source 'musclemap' (MuscleMap): Iliopsoas = "
                                                    "psoas major + iliacus.")
    assert "biceps" not in " ".join(dictionary)  # only the exported columns' notes
    assert "Imported source" not in dictionary["vol_sartorius_left_cm3"]  # one label per side: nothing merged
