import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, generate_uid

from engine.errors import DicomError
from engine.imaging.dicom.header import read_header
from engine.imaging.dicom.package import PackageFile
from engine.imaging.dicom.slice import parse_slice
from tests.engine.imaging.dicom.dicom_factory import StationSpec, linear_value, slice_dataset

SPEC = StationSpec((6, 5, 3), (2.0, 2.5, 3.0), (-6.0, -5.0, 10.0), slope=0.5, intercept=-100.0)


def _dataset(k: int = 1) -> Dataset:
    return slice_dataset(SPEC, "fat", k, generate_uid(), study_uid=generate_uid(), frame_uid=generate_uid())


def _file(tmp_path, ds: Dataset, name: str = "a.dcm", **save) -> PackageFile:
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True, **save)
    return PackageFile(name, path.read_bytes())


def _same(a, b):
    for attr in ("sop_uid", "series_uid", "description", "image_type", "series_number", "series_time", "rows",
                 "cols", "spacing", "thickness", "slope", "intercept"):
        assert getattr(a, attr) == getattr(b, attr), attr
    np.testing.assert_allclose(a.iop, b.iop)
    np.testing.assert_allclose(a.ipp, b.ipp)
    np.testing.assert_array_equal(a.pixels(), b.pixels())


def _nested_sequences(ds: Dataset) -> Dataset:
    # undefined-length sequences (pydicom's default) holding a nested sequence, placed before the
    # tags we read: the fast reader must skip them exactly
    inner = Dataset()
    inner.CodeValue = "X"
    item = Dataset()
    item.ReferencedSOPInstanceUID = generate_uid()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ConceptCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    item["ConceptCodeSequence"].is_undefined_length = True
    ds["ReferencedImageSequence"].is_undefined_length = True
    item.is_undefined_length_sequence_item = True
    return ds


@pytest.mark.parametrize("variant", ["explicit", "sequences", "implicit"])
def test_fast_reader_agrees_with_pydicom(tmp_path, variant):
    ds = _dataset()
    save = {}
    if variant == "sequences":
        ds = _nested_sequences(ds)
    if variant == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        save = {"implicit_vr": True, "little_endian": True}
    pf = _file(tmp_path, ds, **save)
    assert read_header(pf.data) is not None
    fast, slow = parse_slice(pf), parse_slice(pf, fast=False)
    _same(fast, slow)
    # and both hold the true field (stored in steps of the 0.5 slope)
    world = SPEC.world(np.stack(np.meshgrid(np.arange(6), np.arange(5), [1], indexing="xy"), -1).reshape(-1, 3))
    truth = linear_value(world, "fat").reshape(5, 6)
    assert np.abs(fast.pixels() - truth).max() <= 0.25 + 1e-4
    assert fast.slope == 0.5 and fast.intercept == -100.0 and fast.spacing == (2.5, 2.0)


def test_fast_reader_declines_what_it_does_not_handle(tmp_path):
    assert read_header(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00") is None  # runs off the end
    assert read_header(b"not dicom at all" * 20) is None
    little = _dataset()
    big = _dataset()
    big.SOPInstanceUID, big.SeriesInstanceUID = little.SOPInstanceUID, little.SeriesInstanceUID
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    big.PixelData = np.frombuffer(little.PixelData, "<u2").astype(">u2").tobytes()
    pf = _file(tmp_path, big, implicit_vr=False, little_endian=False)
    assert read_header(pf.data) is None
    # the fallback reads it all the same
    _same(parse_slice(pf), parse_slice(_file(tmp_path, little, "little.dcm")))


def test_missing_required_tag_is_worded_by_the_pydicom_path(tmp_path):
    ds = _dataset()
    del ds.PixelSpacing
    pf = _file(tmp_path, ds)
    with pytest.raises(DicomError, match=r"a\.dcm: missing required tag PixelSpacing \(0028,0030\)"):
        parse_slice(pf)
