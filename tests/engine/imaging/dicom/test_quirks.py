"""Dixon packages as they really come: a missing station, other manifest names, water/fat extents."""

from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest

from engine.errors import DicomError, PackageError
from engine.imaging.dicom.numbering import missing_between, number_stations
from engine.imaging.dicom.read import read_package
from tests.engine.imaging.dicom.dicom_factory import StationSpec, linear_value, tiny_ukb_specs, write_station


def _ukb_ranges(extent: float = 130.0, overlap: float = 10.0) -> list[tuple[float, float]]:
    """Six stations superior first, each ``extent`` mm long, overlapping the next by ``overlap`` mm."""
    tops = [600.0 - n * (extent - overlap) for n in range(6)]
    return [(top - extent, top) for top in tops]


def test_stations_are_numbered_by_position_not_by_count():
    six = _ukb_ranges()
    assert number_stations(six) == [1, 2, 3, 4, 5, 6]
    assert number_stations([six[n] for n in (0, 1, 2, 4, 5)]) == [1, 2, 3, 5, 6]  # station 4 missing
    assert number_stations([six[n] for n in (0, 3, 4, 5)]) == [1, 4, 5, 6]  # 2 and 3 missing
    assert missing_between([six[n] for n in (0, 3, 4, 5)]) == [2, 0, 0]
    # a missing end cannot be seen from gaps: the knee end is anchored at 6
    assert number_stations(six[2:]) == [3, 4, 5, 6] and number_stations(six[:5]) == [2, 3, 4, 5, 6]
    assert number_stations([six[2]]) == [6]
    # a small gap (stations that merely abut) is no missing station
    assert number_stations([(100.0, 230.0), (-25.0, 95.0)]) == [5, 6]


def test_too_wide_a_spread_is_refused_with_the_positions():
    six = _ukb_ranges()
    far = [*six[:5], (six[5][0] - 400.0, six[5][1] - 400.0)]
    with pytest.raises(PackageError, match=r"pkg: 6 station positions \(z \+470.0\.\.\+600.0 mm, .*\) and the gaps "
                                           r"between them span 9 stations; expected at most 6"):
        number_stations(far, label="pkg")


def _drop_station(root, series_numbers: range) -> None:
    for p in root.glob("*.dcm"):
        if pydicom.dcmread(p, stop_before_pixels=True).SeriesNumber in series_numbers:
            p.unlink()


def test_a_package_missing_station_4_keeps_the_true_numbers(copy):
    specs = tiny_ukb_specs()
    _drop_station(copy, range(13, 17))  # station 4's four series (SeriesNumber 13-16)
    with pytest.raises(PackageError, match=r"station\(s\) 4 not found; the package has stations 1 at z \+48\.5 mm; "
                                           r"2 at z \+38\.0 mm; 3 at z \+27\.5 mm; 5 at z \+6\.8 mm; 6 at z -4\.0 mm "
                                           r"\(numbered by position: 4 absent between them\)"):
        read_package(copy)
    pkg = read_package(copy, stations=[3, 5, 6])
    assert pkg.available == (1, 2, 3, 5, 6)
    for st in pkg.stations:
        spec = specs[st.number - 1]
        assert st.z_range == pytest.approx((spec.origin[2], spec.origin[2] + (spec.shape[2] - 1) * spec.spacing[2]))


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.cvs", "1000001_20201_2_0_MANIFEST.cvs"])
def test_any_file_named_like_a_manifest_is_read_as_one(copy, name):
    (copy / "manifest.cvs").rename(copy / name)
    pkg = read_package(copy)
    assert len(pkg.manifest) == len(list(copy.glob("*.dcm")))
    assert pkg.manifest[0]["date"] == "Nov 17, 2015"  # the bare comma folded back
    assert name not in pkg.skipped_files and "notes.txt" in [p.rsplit("/", 1)[-1] for p in pkg.skipped_files]
    assert pkg.notes == ()


def test_a_missing_manifest_is_noted_not_fatal(copy, folder):
    (copy / "manifest.cvs").unlink()
    pkg = read_package(copy)
    assert pkg.manifest == () and pkg.notes == ("no manifest (informational only)",)
    ref = read_package(folder)
    np.testing.assert_array_equal(pkg.stations[0].volumes["water"].data, ref.stations[0].volumes["water"].data)



def _station_with_odd_fat(root, fat_origin: tuple[float, float, float]) -> None:
    """Station 6 alone: water/in/opp on 10x10x5 from (-9, -10, -12); fat on 11x10x4 from ``fat_origin``."""
    base = StationSpec((10, 10, 5), (2.0, 2.0, 4.0), (-9.0, -10.0, -12.0))
    odd = StationSpec((11, 10, 4), (2.0, 2.0, 4.0), fat_origin)
    write_station(root, base, contrasts=("water", "in_phase", "opposed_phase"), study_uid="1.2.3", frame_uid="1.2.4")
    write_station(root, odd, contrasts=("fat",), study_uid="1.2.3", frame_uid="1.2.4")


def test_contrasts_differing_slightly_in_extent_are_cropped_to_what_they_share(tmp_path):
    _station_with_odd_fat(tmp_path, (-11.0, -10.0, -8.0))  # one column more on the right, one slice less below
    pkg = read_package(tmp_path, stations=[6])
    st = pkg.stations[0]
    for c, vol in st.volumes.items():
        assert vol.shape == (10, 10, 4) and vol.origin == pytest.approx((-9.0, -10.0, -8.0)), c
        world = vol.world(np.indices(vol.shape).reshape(3, -1).T)
        truth = linear_value(world, c).reshape(vol.shape)
        assert np.abs(vol.data - truth).max() <= 0.5 + 1e-3, c  # the right voxels were kept
    assert pkg.notes[-1] == ("station 6: contrasts cropped to their common 10x10x4 voxels (water 10x10x5, "
                             "fat 11x10x4, in_phase 10x10x5, opposed_phase 10x10x5)")


def test_contrasts_on_different_grids_are_still_refused(tmp_path):
    _station_with_odd_fat(tmp_path, (-10.0, -10.0, -8.0))  # half a voxel across
    with pytest.raises(DicomError, match=re.escape("station 6: fat is offset [-0.5, 0.0, 1.0] voxels from water")):
        read_package(tmp_path, stations=[6])
