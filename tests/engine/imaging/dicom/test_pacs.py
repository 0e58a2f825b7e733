"""A folder exported from a PACS: the Dixon series beside other objects (pydicom's own test files)."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest

from engine.cli import main
from engine.errors import DicomError, PackageError
from engine.imaging.dicom.read import read_package
from engine.imaging.dicom.screen import MR_IMAGE_STORAGE
from tests.engine.imaging.dicom.dicom_factory import CONTRASTS, tiny_ukb_specs, write_folder

#: pydicom ships these (no download): file name → the reason it must be skipped for
PACS_OBJECTS: dict[str, str] = {
    "CT_small.dcm": "not an MR image: CT Image Storage, Modality CT",
    "JPEG2000.dcm": "not an MR image: Secondary Capture Image Storage, Modality NM",  # JPEG 2000 compressed
    "SC_jpeg_no_color_transform.dcm": "not an MR image: Secondary Capture Image Storage",
    "rtplan.dcm": "not an MR image: RT Plan Storage, Modality RTPLAN",
    "rtdose.dcm": "not an MR image: RT Dose Storage, Modality RTDOSE",
    "rtstruct.dcm": "not an MR image: RT Structure Set Storage, Modality RTSTRUCT",
    "reportsi.dcm": "not an MR image: Basic Text SR Storage, Modality SR",
    "liver_1frame.dcm": "not an MR image: Segmentation Storage, Modality SEG",
    "waveform_ecg.dcm": "not an MR image: 12-lead ECG Waveform Storage, Modality ECG",
    "DICOMDIR": "not an MR image: Media Storage Directory Storage",
}
#: MR images of other series (one of them RLE-compressed): read, then ignored as non-Dixon series
OTHER_MR = ("MR_small.dcm", "MR_small_RLE.dcm")
_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _pydicom_file(name: str) -> Path:
    return min(_TEST_FILES.rglob(name), key=lambda p: len(p.parts))  # the top-level copy when nested


@pytest.fixture(scope="module")
def dixon(tmp_path_factory):
    root = tmp_path_factory.mktemp("dixon") / "1000001_20201_2_0"
    write_folder(root, tiny_ukb_specs())
    return root


@pytest.fixture
def pacs(dixon, tmp_path):
    root = tmp_path / "export"
    shutil.copytree(dixon, root / "dixon")
    for name in (*PACS_OBJECTS, *OTHER_MR):
        shutil.copy(_pydicom_file(name), root / name)
    shutil.copy(_pydicom_file("CT_small.dcm"), root / "CT_again.dcm")  # two objects with one reason
    return root


def test_dixon_series_are_read_and_every_other_object_is_listed_with_its_reason(dixon, pacs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its deliberately odd test files
        pkg = read_package(pacs)
    alone = read_package(dixon)
    assert [st.number for st in pkg.stations] == [3, 4, 5, 6]
    for st, ref in zip(pkg.stations, alone.stations, strict=True):
        for c in CONTRASTS:
            np.testing.assert_array_equal(st.volumes[c].data, ref.volumes[c].data)
    found = {Path(entry.split(": ", 1)[0]).name: entry.split(": ", 1)[1] for entry in pkg.skipped_objects}
    assert found == {**PACS_OBJECTS, "CT_again.dcm": PACS_OBJECTS["CT_small.dcm"]}
    descriptions = {pydicom.dcmread(_pydicom_file(n), stop_before_pixels=True).get("SeriesDescription", "")
                    for n in OTHER_MR}
    assert {s.split(" (", 1)[1].rstrip(")") for s in pkg.ignored_series} == descriptions
    summary = pkg.skipped_summary()
    assert summary[0].startswith("2 files: not an MR image: CT Image Storage, Modality CT (e.g. ")
    assert len(summary) == len(PACS_OBJECTS)  # the two CT files share one line


def test_every_pydicom_object_with_a_sop_class_is_skipped_around_the_dixon_series(dixon, tmp_path):
    root = tmp_path / "all"
    shutil.copytree(dixon, root / "dixon")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copied = 0
        for n, path in enumerate(sorted(p for p in _TEST_FILES.rglob("*") if p.is_file())):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:  # noqa: BLE001 - not DICOM at all (README, json, icc): not a PACS object
                continue
            sop_class = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
            # an MR image without a SeriesDescription cannot be told from a truncated Dixon slice: it stops
            # the read (as it should), so it is left out here
            if sop_class and not (sop_class == MR_IMAGE_STORAGE and not ds.get("SeriesDescription")):
                shutil.copy(path, root / f"{n:04d}_{path.name}")
                copied += 1
        pkg = read_package(root)
    assert copied > 100
    assert [st.number for st in pkg.stations] == [3, 4, 5, 6]
    assert len(pkg.skipped_objects) + sum(1 for _ in pkg.ignored_series) > 100


def test_a_broken_dixon_slice_in_a_pacs_folder_is_still_an_error(pacs):
    victim = next(p for p in sorted((pacs / "dixon").glob("*.dcm"))
                  if pydicom.dcmread(p, stop_before_pixels=True).SeriesDescription == "Dixon_noBH_F")
    ds = pydicom.dcmread(victim)
    del ds.PixelSpacing
    ds.save_as(victim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DicomError, match=rf"{re.escape(victim.name)}: missing required tag PixelSpacing \(0028,0030\)"):
            read_package(pacs)


def test_an_object_without_any_identity_is_not_skipped(pacs):
    # no SOP class, Modality or description: nothing says it is not a lost Dixon slice
    shutil.copy(_pydicom_file("empty_charset_LEI.dcm"), pacs / "mystery.dcm")
    with pytest.raises(DicomError, match=r"mystery\.dcm: corrupt or truncated DICOM \(missing required tag SOPInstanceUID"):
        read_package(pacs)


def test_a_folder_without_dixon_series_says_what_it_holds(tmp_path):
    for name in ("CT_small.dcm", "rtplan.dcm", "MR_small.dcm"):
        shutil.copy(_pydicom_file(name), tmp_path / name)
    description = pydicom.dcmread(_pydicom_file("MR_small.dcm"), stop_before_pixels=True).get("SeriesDescription", "")
    with pytest.raises(PackageError, match=rf"holds no Dixon series; found series .* \({re.escape(description)}\); "
                                           r".*CT_small\.dcm: not an MR image: CT Image Storage"):
        read_package(tmp_path)


def test_fuse_command_lists_what_it_skipped(pacs, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fuse", str(pacs), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert f"skipped {len(PACS_OBJECTS) + 1} DICOM objects that are not Dixon slices:" in text
    assert "  rtplan.dcm: not an MR image: RT Plan Storage, Modality RTPLAN" in text.replace(f"{pacs}/", "")
