"""The derived MR series (geometry, pixels, derivation) and the SEG's segments and codes."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from engine.errors import EngineError
from engine.imaging.dicom.derived import Subject, derived_series
from engine.imaging.dicom.seg import LOCAL_SCHEME, label_seg, structure_code
from tests.engine.imaging import grids


def test_derived_series_puts_each_pixel_where_the_voxel_is(tmp_path) -> None:
    water = grids.water()
    series = derived_series(water, Subject("1000001"))
    assert len(series) == grids.SHAPE[2] and len({ds.SOPInstanceUID for ds in series}) == grids.SHAPE[2]
    for k in (0, 4, 6):
        path = tmp_path / f"{k}.dcm"
        series[k].save_as(path, enforce_file_format=True)
        ds = pydicom.dcmread(path)
        row, col = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        dr, dc = (float(x) for x in ds.PixelSpacing)  # between rows, between columns
        for r, c in [(0, 0), (8, 10), (3, 5)]:
            # DICOM PS3.3 C.7.6.2.1.1: P = IPP + row cosine * column index * column spacing + column cosine * row index * row spacing
            world = np.asarray(ds.ImagePositionPatient, float) + row * c * dc + col * r * dr
            np.testing.assert_allclose(world, water.world(np.array([c, r, k])), atol=1e-3)
            assert int(ds.pixel_array[r, c]) == int(np.rint(water.data[c, r, k]))
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "fat-water swap corrected in stations 4" in ds.DerivationDescription
        assert "1.2.826.0.1.3 1.2.826.0.1.4" in ds.DerivationDescription
        assert {c.CodeValue for c in ds.DerivationCodeSequence} == {"113090", "113085"}  # stitching, resampling
        assert ds.PatientID == "1000001" and ds.Modality == "MR"
        decimal = [str(v) for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                                     "SliceThickness", "WindowCenter", "WindowWidth")
                   for v in (ds[kw].value if ds[kw].VM > 1 else [ds[kw].value])]
        assert max(map(len, decimal)) <= 16  # the DS value representation's limit, which oblique geometry exceeds raw


def test_derived_series_refuses_values_that_are_not_16_bit() -> None:
    water = grids.water()
    with pytest.raises(EngineError, match="do not fit unsigned 16-bit"):
        derived_series(water.with_data(np.asarray(water.data) - 10.0), Subject("1"))


def test_segment_codes_standard_where_known_else_the_local_scheme() -> None:
    femur = structure_code(27, "Femur")
    assert (femur.value, femur.scheme_designator) == (codes.SCT.Femur.value, "SCT")
    assert structure_code(26, "Iliac bone").value == codes.SCT.Ilium.value
    sartorius = structure_code(1, "Sartorius")
    assert (sartorius.value, sartorius.scheme_designator) == ("sartorius", LOCAL_SCHEME)
    assert structure_code(13, "Tensor fasciae latae").value == "tensor_fasciae_latae"  # > 16 characters


def test_label_seg_refuses_a_series_of_another_grid_and_unknown_labels() -> None:
    labels, water = grids.labels(), grids.water()
    series = derived_series(water, Subject("1"))
    with pytest.raises(EngineError, match="has 7 slices, the referenced series 6 images"):
        label_seg(labels, {1: "Sartorius", 24: "Abdominal oblique", 27: "Femur"}, series[:6])
    with pytest.raises(EngineError, match=r"label value\(s\) \[24, 27\] are not in the label table"):
        label_seg(labels, {1: "Sartorius"}, series)
    seg, info = label_seg(labels, {1: "Sartorius", 24: "Abdominal oblique", 27: "Femur"}, series)
    assert [s.label for s in info] == [1, 24, 27] and seg.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == LOCAL_SCHEME
