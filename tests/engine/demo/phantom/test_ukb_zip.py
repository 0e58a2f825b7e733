"""Phantom packages in the UK Biobank layout, truth on the fused grid, demo inbox and CLI."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import defaultdict

import numpy as np
import pydicom
import pytest

from engine.cli import main
from engine.demo.phantom.anatomy import UKB_MATRICES, UKB_PIXEL_MM, UKB_SLICE_MM
from engine.demo.phantom.subject import (
    FUSED_STATIONS,
    add_demo_phantoms,
    measure_volumes,
    package_name,
    sample_anatomy,
    truth_labels,
    truth_maps,
    write_ukb_zip,
)
from engine.demo.phantom.ukb_zip import _manifest
from engine.imaging.dicom.read import read_package
from engine.imaging.fusion.fuse import fuse, global_grid
from engine.imaging.volume import read_nrrd
from store.home import home as make_home
from store.structures import MUSCLE_LABELS, STRUCTURES


@pytest.fixture(scope="module")
def anatomy():
    return sample_anatomy(np.random.default_rng(11), sex=0, seed=11)


def test_stations_follow_ukb_geometry(anatomy):
    sts = anatomy.stations
    assert [s.number for s in sts] == [1, 2, 3, 4, 5, 6]
    for st, (rows, cols, slices), dz in zip(sts, UKB_MATRICES, UKB_SLICE_MM, strict=True):
        assert st.shape == (cols, rows, slices)
        assert st.spacing == (UKB_PIXEL_MM, UKB_PIXEL_MM, dz)
    for upper, lower in zip(sts, sts[1:], strict=False):  # 1 is most superior; small overlaps
        overlap = lower.z_range[1] - upper.z_range[0]
        assert 5.0 <= overlap <= 15.0
    offsets = {round(s.origin[0] + (s.shape[0] - 1) / 2 * UKB_PIXEL_MM, 3) for s in sts}
    assert len(offsets) > 1  # slight in-plane offsets between stations
    # the anatomy spans the fused stations: femoral heads (z=0) and the knee lie inside them
    z0, z1 = anatomy.fused_z_range
    assert z0 < -0.9 * 467 * anatomy.height_cm / 176 and z1 > 100


def test_truth_is_on_the_fused_grid_rule(anatomy):
    labels = truth_labels(anatomy)
    grid = global_grid([anatomy.station(n).geometry for n in FUSED_STATIONS])
    assert labels.shape == grid.shape and labels.data.dtype == np.uint8
    np.testing.assert_allclose(labels.spacing, (UKB_PIXEL_MM, UKB_PIXEL_MM, 3.0))  # finest slice spacing
    np.testing.assert_allclose(labels.origin, grid.origin)
    lows = [min(anatomy.station(n).origin[c] for n in FUSED_STATIONS) for c in range(3)]
    np.testing.assert_allclose(labels.origin, lows)  # union of the stations' voxel-centre boxes
    assert set(np.unique(labels.data)) == set(range(28))


def test_manifest_date_column_has_commas():
    text = _manifest([["a.dcm", "5_20201_2_0", "Nov 23, 2016", "5", "Dixon_noBH_W"]])
    header, row = list(csv.reader(io.StringIO(text)))
    assert header[2] == "date" and len(row) == len(header) + 1  # the unquoted comma splits the date
    assert "Nov 23, 2016" in text


def test_bad_eid_is_refused(anatomy, tmp_path):
    with pytest.raises(ValueError, match="eid must be a positive integer"):
        write_ukb_zip(anatomy, -3, tmp_path / "x.zip", seed=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_demo_phantoms_land_in_the_inbox_in_ukb_layout(tmp_path):
    h = make_home(tmp_path / "home")
    paths = add_demo_phantoms(h, count=2, seed=5, eids=[1000011, 1000012], progress=False)
    assert [p.name for p in paths] == [package_name(1000011), package_name(1000012)]
    assert all(p.parent == h.inbox for p in paths) and not list(h.work.glob("*.zip"))
    truths = [json.loads((h.root / "phantoms" / str(e) / "truth.json").read_text()) for e in (1000011, 1000012)]
    assert {t["sex"] for t in truths} == {0, 1}  # both sexes

    with zipfile.ZipFile(paths[0]) as zf:
        names = zf.namelist()
        manifest = zf.read("manifest.cvs").decode()
        datasets = [pydicom.dcmread(io.BytesIO(zf.read(n))) for n in names if n.endswith(".dcm")]
    assert "manifest.cvs" in names and ", 20" in manifest.splitlines()[1]
    series = defaultdict(list)
    for ds in datasets:
        series[ds.SeriesInstanceUID].append(ds)
    assert len(series) == 24  # six stations x four contrasts
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets) == sum(m[2] for m in UKB_MATRICES) * 4
    for slices in series.values():  # instance numbers follow the slice positions
        by_number = sorted(slices, key=lambda d: int(d.InstanceNumber))
        assert [int(d.InstanceNumber) for d in by_number] == list(range(1, len(slices) + 1))
        assert np.all(np.diff([float(d.ImagePositionPatient[2]) for d in by_number]) > 0)
        assert all(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID for d in slices)
    shapes = defaultdict(set)
    for slices in series.values():
        ds = slices[0]
        assert ds.PatientID == "1000011" and ds.pixel_array.dtype == np.uint16
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert [float(v) for v in ds.PixelSpacing] == [UKB_PIXEL_MM, UKB_PIXEL_MM]
        suffix = ds.SeriesDescription.rsplit("_", 1)[1]
        assert ds.ImageType[-1] == {"W": "W", "F": "F", "in": "IN_PHASE", "opp": "OPP_PHASE"}[suffix]
        zs = sorted(float(s.ImagePositionPatient[2]) for s in slices)
        dz = float(np.median(np.diff(zs)))
        stem = ds.SeriesDescription.rsplit("_", 1)[0]
        assert stem == ("Dixon_BH_17s" if dz == 3.0 else "Dixon_noBH")
        shapes[(int(ds.Rows), int(ds.Columns), len(slices), round(dz, 3))].add(suffix)
    want = [(r, c, n, dz) for (r, c, n), dz in zip(UKB_MATRICES, UKB_SLICE_MM, strict=True)]
    assert sorted(shapes) == sorted(set(want))
    assert all(v == {"W", "F", "in", "opp"} for v in shapes.values())

    # the ingest + fusion engine reads it, and the truth shares the fused grid exactly
    package = read_package(paths[0])
    fused = fuse(package)
    truth = read_nrrd(h.root / "phantoms" / "1000011" / "labels.nrrd")
    assert fused["water"].shape == truth.shape
    np.testing.assert_allclose(fused["water"].origin, truth.origin, atol=1e-3)
    np.testing.assert_allclose(fused["water"].spacing, truth.spacing)
    muscle = np.isin(truth.data, MUSCLE_LABELS)
    w, f = fused["water"].data[muscle], fused["fat"].data[muscle]
    assert 150 < np.median(w) < 450 and np.median(f) < 0.3 * np.median(w)  # UKB-like muscle signal
    measured = truths[0]["volumes_cm3"]
    assert truths[0]["tmv_cm3"] == pytest.approx(
        sum(measured[s.key][side] for s in STRUCTURES if s.is_muscle for side in ("left", "right")), rel=1e-6)
    n_vl = np.count_nonzero(truth.data == 3)
    assert measured["vastus_lateralis"]["left"] + measured["vastus_lateralis"]["right"] == pytest.approx(
        n_vl * truth.voxel_volume_mm3 / 1000, rel=1e-3)


def test_truth_volumes_from_sides(anatomy):
    labels, sides = truth_maps(anatomy)
    got = measure_volumes(labels, sides)
    for key, want in anatomy.targets.items():
        assert got[key] == pytest.approx(want, rel=0.10), key


@pytest.mark.slow
def test_cli_writes_a_random_phantom_with_truth(tmp_path, capsys):
    out, truth = tmp_path / "42_20201_2_0.zip", tmp_path / "truth"
    assert main(["--home", str(tmp_path / "h"), "phantom", "--eid", "42", "--out", str(out), "--random",
                 "--seed", "3", "--truth", str(truth)]) == 0
    assert out.is_file() and (truth / "labels.nrrd").is_file()
    assert json.loads((truth / "truth.json").read_text())["eid"] == 42
    assert "wrote" in capsys.readouterr().out


def test_cli_without_a_store_says_so(tmp_path, capsys):
    rc = main(["--home", str(tmp_path / "empty"), "phantom", "--eid", "42", "--out", str(tmp_path / "x.zip")])
    assert rc == 2
    assert "snapshot" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
