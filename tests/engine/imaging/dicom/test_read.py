import re
import zipfile

import numpy as np
import pydicom
import pytest

from engine.errors import DicomError, PackageError
from engine.imaging.dicom.package import parse_manifest
from engine.imaging.dicom.read import contrast_of, read_package
from tests.engine.imaging.dicom.dicom_factory import (
    CONTRASTS,
    StationSpec,
    linear_value,
    tiny_ukb_specs,
    write_folder,
    write_station,
    write_zip,
)


def _files(root, description, number=None):
    """DICOM files of one series description (optionally one station number via SeriesNumber)."""
    out = []
    for p in sorted(root.glob("*.dcm")):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.SeriesDescription == description and (number is None or ds.SeriesNumber == number):
            out.append((p, ds))
    return out


def test_default_keeps_four_inferior_stations_with_true_geometry_and_values(folder):
    pkg = read_package(folder)
    specs = tiny_ukb_specs()
    assert pkg.available == (1, 2, 3, 4, 5, 6)
    assert [st.number for st in pkg.stations] == [3, 4, 5, 6]
    assert pkg.skipped_files == (str(folder / "notes.txt"),)
    assert pkg.manifest[0]["date"] == "Nov 17, 2015" and pkg.manifest[0]["participant id"] == "1000001"
    for st, spec in zip(pkg.stations, specs[2:], strict=True):
        assert set(st.volumes) == set(CONTRASTS)
        assert st.series_time == spec.series_time
        for contrast, vol in st.volumes.items():
            assert vol.shape == spec.shape
            np.testing.assert_allclose(vol.spacing, spec.spacing, rtol=1e-6)
            np.testing.assert_allclose(vol.origin, spec.origin, atol=1e-5)
            np.testing.assert_allclose(vol.direction, np.eye(3), atol=1e-7)
            truth = linear_value(vol.world(np.indices(vol.shape).reshape(3, -1).T), contrast).reshape(vol.shape)
            step = 0.25 if st.number == 5 else 1.0  # station 5 stores values rescaled by slope 0.25
            assert np.abs(vol.data - truth).max() <= step / 2 + 1e-4
            assert vol.meta["msmv_series_description"].endswith({"water": "_W", "fat": "_F", "in_phase": "_in",
                                                                  "opposed_phase": "_opp"}[contrast])


def test_zip_folder_and_loose_files_agree_whatever_the_file_order(folder, tmp_path):
    specs = tiny_ukb_specs()
    specs[4].slope, specs[4].intercept = 0.25, -50.0
    a = read_package(folder, stations=[2, 5])
    b = read_package(sorted(folder.glob("*.dcm"), reverse=True), stations=[5, 2])
    z = read_package(write_zip(tmp_path / "1000001_20201_2_0.zip", specs, seed=7), stations=[2, 5])
    z_bytes = read_package((tmp_path / "1000001_20201_2_0.zip").read_bytes(), stations=[2, 5])
    for other in (b, z, z_bytes):
        assert [st.number for st in other.stations] == [2, 5]
        for sa, so in zip(a.stations, other.stations, strict=True):
            for c in CONTRASTS:
                np.testing.assert_array_equal(sa.volumes[c].data, so.volumes[c].data)
                np.testing.assert_allclose(sa.volumes[c].origin, so.volumes[c].origin)
    assert len(z.manifest) == sum(s.shape[2] for s in specs) * 4


def test_reacquired_station_keeps_latest_series_time(copy):
    # station 5 acquired again, later, 1 mm higher, with a different matrix: the repeat must win
    again = StationSpec((12, 10, 4), (2.0, 2.0, 4.5), (-12.5, -10.5, 1.0), "Dixon_noBH", "103000.000000", 40)
    written = write_station(copy, again)
    pkg = read_package(copy)
    st5 = pkg.stations[2]
    assert st5.number == 5 and st5.series_time == "103000.000000"
    np.testing.assert_allclose(st5.geometry.origin, again.origin)
    repeat_uids = {c: pydicom.dcmread(paths[0]).SeriesInstanceUID for c, paths in written.items()}
    assert st5.series_uids == repeat_uids
    assert len(pkg.superseded_series) == 4 and not set(pkg.superseded_series) & set(repeat_uids.values())
    assert pkg.available == (1, 2, 3, 4, 5, 6)


def test_other_stations_on_request_and_missing_station_named(copy):
    pkg = read_package(copy, stations=[1, 2])
    assert [st.number for st in pkg.stations] == [1, 2]
    for p, _ in _files(copy, "Dixon_BH_17s_W") + _files(copy, "Dixon_BH_17s_F") + _files(
            copy, "Dixon_BH_17s_in") + _files(copy, "Dixon_BH_17s_opp"):
        p.unlink()
    # only the three leg stations remain: numbered 4-6 from the bottom, so 3 is missing
    with pytest.raises(PackageError, match=r"station\(s\) 3 not found; the package has stations 4 at z \+17.0 mm"):
        read_package(copy)


def test_missing_contrast_says_which_and_what_was_found(copy):
    for p, ds in _files(copy, "Dixon_noBH_F"):
        if ds.SeriesNumber == 13 + 1:  # station 4's fat series
            p.unlink()
    with pytest.raises(PackageError, match=r"station 4 lacks fat; found in_phase \(Dixon_noBH_in\), "
                                           r"opposed_phase \(Dixon_noBH_opp\), water \(Dixon_noBH_W\)"):
        read_package(copy)


def test_contrast_from_suffix_then_image_type():
    assert contrast_of("Dixon_BH_17s_W") == "water"
    assert contrast_of("Dixon_noBH_opp") == "opposed_phase"
    assert contrast_of("Dixon_noBH_IN") == "in_phase"
    assert contrast_of("Dixon", ["ORIGINAL", "PRIMARY", "M", "DIXON", "F"]) == "fat"
    assert contrast_of("whatever", ["ORIGINAL", "PRIMARY", "M", "OPP_PHASE"]) == "opposed_phase"
    assert contrast_of("localizer", ["ORIGINAL", "PRIMARY", "M", "ND"]) is None
    assert contrast_of("x", ["ORIGINAL", "PRIMARY", "W", "F"]) is None  # ambiguous


def test_image_type_fallback_reads_unnamed_series(tmp_path):
    spec = StationSpec((4, 3, 3), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0), "DIXON")
    written = write_station(tmp_path, spec)
    for paths in written.values():
        for p in paths:
            ds = pydicom.dcmread(p)
            ds.SeriesDescription = "Dixon legs"
            ds.save_as(p)
    pkg = read_package(tmp_path, stations=[6])
    assert set(pkg.stations[0].volumes) == set(CONTRASTS)


def test_manifest_with_quoted_or_bare_commas():
    bare = b"filename,date,eid\na.dcm,Nov 17, 2015,1\n"
    quoted = b'filename,date,eid\n"a.dcm","Nov 17, 2015","1"\n'
    for data in (bare, quoted):
        assert parse_manifest(data) == [{"filename": "a.dcm", "date": "Nov 17, 2015", "eid": "1"}]


# ---- bad input: each error names what went wrong --------------------------------------------------


def test_corrupt_dicom_names_the_file(copy):
    victim = sorted(copy.glob("*.dcm"))[5]
    victim.write_bytes(b"\0" * 128 + b"DICM" + b"\xff\xfe\x01\x02garbage" * 3)
    with pytest.raises(DicomError, match=rf"{re.escape(victim.name)}: corrupt or truncated DICOM \(missing required"
                                         r" tag SOPInstanceUID \(0008,0018\)\)"):
        read_package(copy)


@pytest.mark.parametrize(("keep", "message"), [
    (-50, r"truncated PixelData \(7FE0,0010\): 150 bytes, expected 200 for 10x10 at 16 bits"),
    (300, r"corrupt or truncated DICOM"),
])
def test_truncated_dicom_names_the_file(copy, keep, message):
    victim = next(p for p, ds in _files(copy, "Dixon_noBH_W") if ds.SeriesNumber == 21)  # station 6: 10x10
    data = victim.read_bytes()
    victim.write_bytes(data[:keep])
    with pytest.raises(DicomError, match=rf"{re.escape(victim.name)}: {message}"):
        read_package(copy, stations=[1, 2, 3, 4, 5, 6])


def test_missing_tag_is_named(copy):
    p, ds = _files(copy, "Dixon_noBH_W")[1]
    ds = pydicom.dcmread(p)
    del ds.ImagePositionPatient
    ds.save_as(p)
    with pytest.raises(DicomError, match=rf"{re.escape(p.name)}: missing required tag ImagePositionPatient \(0020,0032\)"):
        read_package(copy)


def _edit_one_slice(root, description, edit):
    p, _ = _files(root, description)[2]
    ds = pydicom.dcmread(p)
    edit(ds)
    ds.save_as(p)
    return p


def test_mixed_orientation_in_a_series(copy):
    def tilt(ds):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9848078, 0.1736482]

    p = _edit_one_slice(copy, "Dixon_noBH_opp", tilt)
    with pytest.raises(DicomError, match=rf"mixes orientations: .*{re.escape(p.name)} has (ImageOrientationPatient )?\[1.0, 0.0, 0.0, 0.0, 0.9848, 0.1736\]"):
        read_package(copy, stations=[1, 2, 3, 4, 5, 6])


def test_inconsistent_pixel_spacing_in_a_series(copy):
    def widen(ds):
        ds.PixelSpacing = [2.5, 2.5]

    p = _edit_one_slice(copy, "Dixon_BH_17s_in", widen)
    with pytest.raises(DicomError, match=rf"inconsistent PixelSpacing: .*{re.escape(p.name)} has \[2.5, 2.5\]"):
        read_package(copy, stations=[1, 2, 3])


def test_duplicate_slice_is_refused_but_the_same_file_twice_is_not(copy):
    p, _ = _files(copy, "Dixon_noBH_in")[0]
    pkg = read_package([*sorted(copy.glob("*.dcm")), p])  # the same image listed twice: harmless
    assert [st.number for st in pkg.stations] == [3, 4, 5, 6]
    ds = pydicom.dcmread(p)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    twin = copy / "twin.dcm"
    ds.save_as(twin)
    with pytest.raises(DicomError, match=r"duplicate slices at position .* mm along the normal: .*twin\.dcm"):
        read_package(copy)


def test_missing_middle_slice_is_refused(copy):
    files = _files(copy, "Dixon_noBH_W")
    station = [(p, ds) for p, ds in files if ds.SeriesNumber == 21]
    station.sort(key=lambda f: float(f[1].ImagePositionPatient[2]))
    station[2][0].unlink()
    with pytest.raises(DicomError, match=r"uneven slice spacing: median 4.000 mm, but 8.000 mm"):
        read_package(copy)


def test_empty_and_non_zip_uploads(tmp_path):
    with pytest.raises(PackageError, match="upload is empty"):
        read_package(b"")
    with pytest.raises(PackageError, match=r"upload is not a zip file \(starts with b'hello"):
        read_package(b"hello world")
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    with pytest.raises(PackageError, match="neither a zip file nor a DICOM file"):
        read_package(text)
    (tmp_path / "empty.zip").write_bytes(b"")
    with pytest.raises(PackageError, match=r"empty \(0 bytes\)"):
        read_package(tmp_path / "empty.zip")
    empty_zip = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("manifest.cvs", "filename,date\n")
    with pytest.raises(PackageError, match="holds no DICOM files"):
        read_package(empty_zip)
    (tmp_path / "void").mkdir()
    with pytest.raises(PackageError, match="is empty; expected DICOM files"):
        read_package(tmp_path / "void")
    with pytest.raises(FileNotFoundError, match="no package at"):
        read_package(tmp_path / "absent.zip")


@pytest.mark.parametrize(("entry", "message"), [
    ("../evil.dcm", r"zip entry '\.\./evil\.dcm' points outside the package"),
    ("sub/../../evil.dcm", r"points outside the package"),
    ("/tmp/evil.dcm", r"zip entry '/tmp/evil\.dcm' has an absolute path"),
    ("C:/evil.dcm", r"has an absolute path"),
])
def test_unsafe_zip_entries_are_refused_and_nothing_written(folder, tmp_path, entry, message):
    target = tmp_path / "upload" / "pkg.zip"
    target.parent.mkdir()
    first = sorted(folder.glob("*.dcm"))[0]
    with zipfile.ZipFile(target, "w") as zf:
        zf.write(first, first.name)
        zf.writestr(zipfile.ZipInfo(entry), first.read_bytes())
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(PackageError, match=message):
        read_package(target)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_zip_bombs_are_bounded(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.dcm", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 50_000
    with pytest.raises(PackageError, match=r"would inflate to 5000000 bytes; at most 1000000 are allowed"):
        read_package(bomb, max_total_bytes=1_000_000)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for n in range(5):
            zf.writestr(f"f{n}.dcm", b"x")
    with pytest.raises(PackageError, match="holds 5 files; at most 3 are allowed"):
        read_package(many, max_files=3)
    bytes_upload = many.read_bytes()
    with pytest.raises(PackageError, match="upload holds 5 files; at most 3 are allowed"):
        read_package(bytes_upload, max_files=3)


def test_folder_bounds(folder):
    with pytest.raises(PackageError, match=r"package holds \d+ files; at most 10 are allowed"):
        read_package(folder, max_files=10)
    with pytest.raises(PackageError, match="package exceeds 1000 bytes"):
        read_package(folder, max_total_bytes=1000)


def test_unknown_contrast_argument():
    with pytest.raises(ValueError, match=r"unknown contrasts \['t1'\]"):
        read_package(b"x", contrasts=("t1",))


def test_non_dixon_series_are_ignored_and_too_many_stations_refused(tmp_path):
    specs = tiny_ukb_specs()
    write_folder(tmp_path, specs)
    localizer = StationSpec((4, 4, 1), (4.0, 4.0, 5.0), (-8.0, -8.0, 30.0), "localizer")
    ds_files = write_station(tmp_path, localizer, contrasts=("water",))
    for p in ds_files["water"]:
        ds = pydicom.dcmread(p)
        ds.SeriesDescription, ds.ImageType = "localizer", ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.save_as(p)
    pkg = read_package(tmp_path)
    assert len(pkg.ignored_series) == 1 and pkg.ignored_series[0].endswith("(localizer)")
    assert [st.number for st in pkg.stations] == [3, 4, 5, 6]
    write_station(tmp_path, StationSpec((4, 4, 3), (2.0, 2.0, 3.0), (-4.0, -4.0, 200.0), "Dixon_BH_17s"))
    with pytest.raises(PackageError, match="holds 7 station positions; expected at most 6"):
        read_package(tmp_path)


@pytest.mark.parametrize("head_bytes", [64, 700, 100_000])
def test_lazy_zip_members_read_the_same_whatever_the_head_size(folder, tmp_path, monkeypatch, head_bytes):
    import engine.imaging.dicom.package as package_module

    specs = tiny_ukb_specs()
    specs[4].slope, specs[4].intercept = 0.25, -50.0
    zipped = write_zip(tmp_path / "1000001_20201_2_0.zip", specs, seed=3)
    monkeypatch.setattr(package_module, "HEAD_BYTES", head_bytes)
    files = list(package_module.iter_package_files(zipped))
    with zipfile.ZipFile(zipped) as zf:
        for pf in files:
            whole = zf.read(pf.name)
            assert pf.partial == (len(whole) > head_bytes)
            assert pf.head == whole[:head_bytes] if pf.partial else pf.data == whole
            assert pf.data == whole and not pf.partial
    a, b = read_package(folder), read_package(zipped)
    for sa, sb in zip(a.stations, b.stations, strict=True):
        for c in CONTRASTS:
            np.testing.assert_array_equal(sa.volumes[c].data, sb.volumes[c].data)
