"""Slicer segment tables in label-map headers, read once for the engine's own maps and users' files."""

from __future__ import annotations

import pytest

from engine.imaging.segments import SegmentHeaderError, segment_names
from engine.interop.read import LabelFileError, read_labels


def test_values_default_to_the_index_plus_one_and_the_table_stops_at_a_gap() -> None:
    meta = {"Segment0_Name": "Femur", "Segment0_LabelValue": "27", "Segment1_Name": "Sartorius",
            "Segment3_Name": "after a gap: not read"}
    assert segment_names(meta) == {27: "Femur", 2: "Sartorius"}
    assert segment_names({"space": "left-posterior-superior"}) == {}


def test_bad_tables_are_refused() -> None:
    with pytest.raises(SegmentHeaderError, match="Segment0_LabelValue must be an integer, found 'one'"):
        segment_names({"Segment0_Name": "Femur", "Segment0_LabelValue": "one"})
    with pytest.raises(SegmentHeaderError, match="segment 'Gracilis' is in layer 1"):
        segment_names({"Segment0_Name": "Femur", "Segment0_Layer": "0", "Segment1_Name": "Gracilis",
                       "Segment1_Layer": "1"})


def test_a_layered_seg_nrrd_is_refused_naming_the_file(tmp_path) -> None:
    import numpy as np

    from engine.imaging.volume import Volume, write_nrrd

    path = write_nrrd(tmp_path / "x.seg.nrrd", Volume(np.zeros((2, 2, 2), np.uint8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
                      extra_header={"Segment0_Name": "A", "Segment0_Layer": "2"})
    with pytest.raises(LabelFileError, match=r"x\.seg\.nrrd: segment 'A' is in layer 2"):
        read_labels(path)
