"""``msmv export-labels``: a processed subject's label map as NRRD, NIfTI and DICOM SEG, read back."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.cli import main
from engine.imaging.export import LabelExportError, export_labels, find_labels
from engine.imaging.volume import Volume, read_nrrd, write_nrrd
from engine.segmentation.infer import write_labels
from store.errors import ExportError
from store.files import sha256_file
from store.home import Home
from store.home import home as make_home
from store.reader import Reader
from store.structures import STRUCTURES
from store.writer import Writer
from tests.engine.imaging import grids
from tests.store.conftest import metric_rows, write_phenotypes

EID, UNPROCESSED, IMPORTED = 1000001, 1000002, 1000003
TABLE = {s.label: s.name for s in STRUCTURES}


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("export-labels")
    h = make_home(tmp / "msmv")
    art = h.artifact_dir(EID, 2)
    engine_labels = grids.labels()  # as the engine writes it: without the fused image's header keys
    engine_labels = Volume(engine_labels.data, engine_labels.spacing, engine_labels.origin, engine_labels.direction)
    labels = write_labels(art / "labels.nrrd", engine_labels, TABLE)
    water = write_nrrd(art / "water.nrrd", grids.water())
    # an imported label map on a grid of its own (twice the voxel size in x), beside the engine's water image
    imported = grids.labels()
    coarse = Volume(np.ascontiguousarray(np.asarray(imported.data)[::2]), (2 * grids.SPACING[0], *grids.SPACING[1:]),
                    imported.origin, imported.direction)
    imp_dir = h.artifact_dir(IMPORTED, 2)
    imp_labels = write_labels(imp_dir / "import-musclemap" / "labels.nrrd", coarse, TABLE)
    imp_water = write_nrrd(imp_dir / "water.nrrd", grids.water())
    with Writer(h) as w:
        w.import_phenotypes(write_phenotypes(tmp / "p.csv", [{"eid": EID, "sex": 1, "age": 60},
                                                             {"eid": UNPROCESSED, "sex": 0, "age": 61}]))
        w.commit_subject(IMPORTED, metric_rows(IMPORTED), [{"kind": k, "path": str(p), "sha256": sha256_file(p)}
                                                           for k, p in (("labels", imp_labels), ("water", imp_water))],
                         {"kind": "label-import", "input_sha256": "y"}, source="musclemap")
        w.commit_subject(EID, metric_rows(EID), [{"kind": k, "path": str(p), "sha256": sha256_file(p)}
                                                 for k, p in (("labels", labels), ("water", water))],
                         {"kind": "engine", "input_sha256": "x"})
    return h


def _stored(h: Home):
    with Reader(h) as r:
        return find_labels(r, EID)


def _seg_folder(root: Path) -> tuple[hd.seg.Segmentation, list[pydicom.Dataset]]:
    seg = hd.seg.segread(root / "seg.dcm")
    images = [pydicom.dcmread(p) for p in sorted((root / "water").glob("*.dcm"))]
    return seg, images


def test_dicom_seg_reads_back_with_its_references_and_exact_voxel_counts(processed: Home, tmp_path: Path) -> None:
    result = export_labels(_stored(processed), "dicom-seg", tmp_path / "seg")
    seg, images = _seg_folder(result.path)
    assert seg.number_of_segments == 3 == result.segments
    names = [seg.get_segment_description(n).segment_label for n in (1, 2, 3)]
    assert names == ["Sartorius", "Abdominal oblique", "Femur"]
    assert int(seg.NumberOfFrames) == sum(grids.SLICES.values()) == result.frames  # empty frames left out
    exported = {str(ds.SOPInstanceUID) for ds in images}
    assert len(images) == grids.SHAPE[2]
    referenced = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    per_frame = {str(src.ReferencedSOPInstanceUID) for f in seg.PerFrameFunctionalGroupsSequence
                 for d in f.DerivationImageSequence for src in d.SourceImageSequence}
    assert per_frame <= referenced <= exported and per_frame
    # every label voxel is a SEG pixel: rebuild the label map slice by slice from the referenced images
    by_position = sorted(images, key=lambda ds: int(ds.InstanceNumber))
    uids = [str(ds.SOPInstanceUID) for ds in by_position]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=False,
                                               ignore_spatial_locations=True)  # (slice, row, column, segment)
    truth = np.asarray(grids.labels().data)
    for n, label in enumerate((1, 24, 27)):
        assert int(pixels[..., n].sum()) == grids.VOXELS[label] == int((truth == label).sum())
        np.testing.assert_array_equal(pixels[..., n].transpose(2, 1, 0).astype(bool), truth == label)
    tracking = [seg.get_segment_description(n).tracking_id for n in (1, 2, 3)]
    assert tracking == ["MSMV label 1", "MSMV label 24", "MSMV label 27"]
    side = json.loads((result.path / "export.json").read_text())
    assert side["eid"] == EID and side["source"] == "msmv" and side["instance"] == 2
    assert [s["code"] for s in side["segments"]] == ["sartorius", "abdominal_oblique", "71341001"]


def test_dicom_seg_zip_and_replacing_an_earlier_export(processed: Home, tmp_path: Path) -> None:
    stored = _stored(processed)
    zipped = export_labels(stored, "dicom-seg", tmp_path / "seg.zip")
    with zipfile.ZipFile(zipped.path) as zf:
        names = zf.namelist()
    assert "seg.dcm" in names and "export.json" in names and sum(n.startswith("water/") for n in names) == 7
    folder = export_labels(stored, "dicom-seg", tmp_path / "again")
    with pytest.raises(ExportError, match="already exists; choose another --out, or replace it with --force"):
        export_labels(stored, "dicom-seg", folder.path)
    first = hd.seg.segread(folder.path / "seg.dcm").SOPInstanceUID
    export_labels(stored, "dicom-seg", folder.path, force=True)  # an earlier label export: replaced
    assert hd.seg.segread(folder.path / "seg.dcm").SOPInstanceUID != first
    mine = tmp_path / "mine"
    (mine / "keep.txt").parent.mkdir()
    (mine / "keep.txt").write_text("user data")
    with pytest.raises(ExportError, match="not an earlier label export; MSMV does not delete it"):
        export_labels(stored, "dicom-seg", mine, force=True)
    assert (mine / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine", "seg.zip"]  # no staging left behind


def test_cli_nifti_and_nrrd_exports_keep_the_grid(processed: Home, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MSMV_HOME", str(processed.root))
    root = ["--home", str(processed.root)]
    assert main([*root, "export-labels", str(EID), "--format", "nifti", "--out", str(tmp_path / "l.nii.gz")]) == 0
    stored = read_nrrd(_stored(processed).path)
    img = nib.load(str(tmp_path / "l.nii.gz"))
    ijk = np.array([[0, 0, 0], [10, 8, 6], [4, 2, 3]], dtype=float)
    lps = nib.affines.apply_affine(img.affine, ijk) * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps, stored.world(ijk), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), stored.data)
    side = json.loads((tmp_path / "l.json").read_text())
    assert side["meta"]["msmv_eid"] == str(EID) and side["meta"]["msmv_source"] == "msmv"
    # the fused water image's header: stations, their ranges, swapped stations, source series
    for key in ("msmv_stations", "msmv_station_ranges", "msmv_swapped_stations", "msmv_series_uids"):
        assert side["meta"][key] == grids.FUSED_META[key], key
    assert {d["value"]: d["name"] for d in side["labels"]} == TABLE
    assert main([*root, "export-labels", str(EID), "--format", "nrrd", "--out", str(tmp_path / "l.nrrd")]) == 0
    assert (tmp_path / "l.nrrd").read_bytes() == _stored(processed).path.read_bytes()
    assert "3 segments" in capsys.readouterr().out
    assert main([*root, "export-labels", str(EID), "--format", "dicom-seg", "--out", str(tmp_path / "s.zip")]) == 0
    assert "3 segments, 8 frames" in capsys.readouterr().out and zipfile.is_zipfile(tmp_path / "s.zip")


@pytest.mark.parametrize(("args", "message"), [
    (["999", "--format", "nrrd"], "participant 999 is not in the store"),
    ([str(UNPROCESSED), "--format", "nrrd"], f"participant {UNPROCESSED} has no label map in the store: not processed"),
    ([str(EID), "--format", "nrrd", "--source", "musclemap"], "no label map for source musclemap; stored: instance 2 source msmv"),
    ([str(EID), "--format", "nifti", "--instance", "3"], "no label map for instance 3"),
])  # fmt: skip
def test_cli_names_what_is_missing(processed: Home, tmp_path: Path, monkeypatch, capsys, args, message) -> None:
    monkeypatch.setenv("MSMV_HOME", str(processed.root))
    assert main(["--home", str(processed.root), "export-labels", *args, "--out", str(tmp_path / "x.nrrd")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.nrrd").exists()


def test_targets_that_are_refused_before_anything_is_written(processed: Home, tmp_path: Path) -> None:
    stored = _stored(processed)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match=r"cannot write .*file/l.nrrd: .*file is a file, not a folder"):
        export_labels(stored, "nrrd", tmp_path / "file" / "l.nrrd")
    with pytest.raises(ExportError, match="would overwrite its input"):
        export_labels(stored, "nrrd", stored.path, force=True)
    (tmp_path / "l.json").write_text("{}")  # the NIfTI sidecar's name is taken: refused without --force
    with pytest.raises(ExportError, match=r"l.json already exists"):
        export_labels(stored, "nifti", tmp_path / "l.nii.gz")
    with pytest.raises(ExportError, match=r"--format nifti writes a .nii or .nii.gz file, found 'l.nrrd'"):
        export_labels(stored, "nifti", tmp_path / "l.nrrd")
    with pytest.raises(ExportError, match="a DICOM SEG export is a folder or a .zip"):
        export_labels(stored, "dicom-seg", tmp_path / "seg.dcm")
    for unwritable in (Path("/sys/msmv-labels.nii.gz"), Path("/sys/msmv-seg")):  # sysfs refuses new files, root or not
        fmt = "nifti" if unwritable.name.endswith(".nii.gz") else "dicom-seg"
        with pytest.raises(ExportError, match=f"cannot write {unwritable}"):
            export_labels(stored, fmt, unwritable)
    assert not list(Path("/sys").glob("*msmv*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "l.json"]


def test_find_labels_without_a_water_image_cannot_make_a_seg(processed: Home, tmp_path: Path) -> None:
    from dataclasses import replace

    with pytest.raises(LabelExportError, match="records no water image"):
        export_labels(replace(_stored(processed), water=None), "dicom-seg", tmp_path / "seg")


def test_an_imported_label_map_on_its_own_grid_gets_the_water_image_resampled(processed: Home, tmp_path: Path) -> None:
    with Reader(processed) as r:
        stored = find_labels(r, IMPORTED)
    assert stored.source == "musclemap" and stored.water is not None
    result = export_labels(stored, "dicom-seg", tmp_path / "seg")
    assert result.notes == ("the water image was resampled (trilinear) onto the musclemap label map's grid",)
    seg, images = _seg_folder(result.path)
    assert (images[0].Columns, images[0].Rows) == (6, 9)  # the label map's grid, not the water's 11 x 9
    assert float(images[0].PixelSpacing[1]) == pytest.approx(2 * grids.SPACING[0])
    truth = np.asarray(read_nrrd(stored.path).data)
    uids = [str(ds.SOPInstanceUID) for ds in sorted(images, key=lambda ds: int(ds.InstanceNumber))]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=False,
                                               ignore_spatial_locations=True)
    for n, label in enumerate(sorted(set(np.unique(truth)) - {0})):
        assert int(pixels[..., n].sum()) == int((truth == label).sum())
    assert seg.get_segment_description(1).algorithm_identification[0].AlgorithmName == "musclemap"


class _Artifacts:
    """A reader stand-in that answers ``artifacts`` only, with or without the store's ``source`` column."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        import pandas as pd

        self.frame = pd.DataFrame(rows)

    def artifacts(self, eid: int):
        return self.frame


@pytest.mark.parametrize("with_source_column", [True, False])
def test_several_sources_need_a_choice_and_each_finds_its_own_files(tmp_path: Path, with_source_column: bool) -> None:
    files = {name: tmp_path / name for name in ("labels.nrrd", "import-musclemap/labels.nrrd", "water.nrrd")}
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    rows = [{"instance": 2, "kind": "labels", "path": str(files["labels.nrrd"]), "source": "msmv"},
            {"instance": 2, "kind": "labels", "path": str(files["import-musclemap/labels.nrrd"]), "source": "musclemap"},
            {"instance": 2, "kind": "water", "path": str(files["water.nrrd"]), "source": "msmv"}]
    if not with_source_column:  # a store from before sources were kept apart: the folder tells the source
        rows = [{k: v for k, v in r.items() if k != "source"} for r in rows]
    reader = _Artifacts(rows)
    with pytest.raises(LabelExportError, match="has 2 label maps .*instance 2 source msmv, instance 2 source "
                                               "musclemap.*choose one with --instance and --source"):
        find_labels(reader, 5)  # type: ignore[arg-type]
    imported = find_labels(reader, 5, source="musclemap")  # type: ignore[arg-type]
    assert imported.path == files["import-musclemap/labels.nrrd"] and imported.water == files["water.nrrd"]
    assert find_labels(reader, 5, source="msmv").path == files["labels.nrrd"]  # type: ignore[arg-type]
