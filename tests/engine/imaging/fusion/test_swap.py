"""Fat–water swap detection and correction: phantom stations, factory packages, the NRRD header."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.cli import main
from engine.demo.phantom.subject import render, sample_anatomy
from engine.imaging.dicom.read import Station, read_package
from engine.imaging.fusion.fuse import fuse, write_fused
from engine.imaging.fusion.swap import detect_swaps, overlap_evidence, rim_evidence
from engine.imaging.volume import Volume, read_nrrd
from tests.engine.imaging.dicom.dicom_factory import tiny_ukb_specs, write_zip


def _phantom_stations(seed: int) -> list[Station]:
    """Stations 3-6 (the fused field) of a phantom subject with bias fields and Rician noise (water and fat)."""
    anatomy = sample_anatomy(np.random.default_rng(seed), sex=seed % 2, seed=seed)
    noise = np.random.default_rng([seed, 99])
    out = []
    for st in anatomy.stations[2:]:
        images = render(anatomy, st.geometry, noise_rng=noise)
        out.append(Station(st.number, {"water": images.water, "fat": images.fat},
                           {"water": f"w{st.number}", "fat": f"f{st.number}"}, ""))
    return out


@pytest.fixture(scope="module")
def phantoms() -> dict[int, list[Station]]:
    return {seed: _phantom_stations(seed) for seed in (11, 24)}


def _swap(stations: list[Station], *numbers: int) -> list[Station]:
    """The stations with the images of ``numbers`` exchanged, as a swap leaves them (series labels kept)."""
    return [replace(st, volumes={"water": st.volumes["fat"], "fat": st.volumes["water"]})
            if st.number in numbers else st for st in stations]


def test_clean_phantoms_are_never_flagged(phantoms):
    for seed, stations in phantoms.items():
        subsets = [stations, stations[:2], stations[2:], stations[1:]] + [[st] for st in stations]
        for subset in subsets:
            report = detect_swaps(subset)
            numbers = [st.number for st in subset]
            assert report.swapped == () and report.ambiguous == (), (seed, numbers, report)
            assert all(o.relation == "same" for o in report.overlaps), (seed, numbers)
            assert all(r.verdict == "clean" and r.fat_fraction > 0.85 for r in report.rims), (seed, numbers)


@pytest.mark.parametrize("station", [3, 4, 5, 6])
def test_each_swapped_station_is_named(phantoms, station):
    stations = phantoms[11]
    report = detect_swaps(_swap(stations, station))
    assert report.swapped == (station,)
    rim = next(r for r in report.rims if r.station == station)
    assert rim.verdict == "swapped" and rim.fat_fraction < 0.15  # subcutaneous fat reads as water
    for o in report.overlaps:  # exactly the overlaps that touch the swapped station disagree
        assert o.relation == ("exchanged" if station in (o.upper, o.lower) else "same"), o


def test_single_station_and_neighbouring_swaps_are_found_from_the_rim(phantoms):
    stations = phantoms[24]
    assert detect_swaps(_swap(stations[1:2], 4)).swapped == (4,)
    # two neighbours swapped together agree with each other in their overlap: only the rim tells
    report = detect_swaps(_swap(stations, 4, 5))
    assert report.swapped == (4, 5)
    assert [o.relation for o in report.overlaps] == ["exchanged", "same", "exchanged"]


def test_swapped_phantom_fuses_like_its_clean_twin(phantoms):
    clean = phantoms[11][1:3]  # stations 4 and 5: two are enough, and cheaper to fuse
    fixed = fuse(_swap(clean, 5), contrasts=("water", "fat"), device="cpu")
    twin = fuse(clean, contrasts=("water", "fat"), device="cpu")
    assert fixed.swapped_stations == (5,) and twin.swapped_stations == ()
    for c in ("water", "fat"):
        np.testing.assert_array_equal(fixed[c].data, twin[c].data)
        assert fixed[c].meta["msmv_swapped_stations"] == "5" and twin[c].meta["msmv_swapped_stations"] == ""
    # the series UIDs follow the images: station 5's water now comes from its "fat" series
    assert fixed["water"].meta["msmv_series_uids"] == "w4,f5"


def _constant_station(number: int, z0: float, water: float, fat: float) -> Station:
    shape = (12, 10, 6)
    vols = {c: Volume(np.full(shape, v, np.float32), (2.0, 2.0, 3.0), (0.0, 0.0, z0))
            for c, v in (("water", water), ("fat", fat))}
    return Station(number, vols, {}, "")


def test_overlap_distances_in_closed_form():
    # FF 0.2 above, 0.8 below: as labelled they differ by 0.6; exchanged they agree exactly
    upper = _constant_station(3, 12.0, water=400.0, fat=100.0)
    lower = _constant_station(4, 0.0, water=50.0, fat=200.0)
    o = overlap_evidence(upper, lower)
    assert o.relation == "exchanged"
    assert o.same == pytest.approx(0.6, abs=1e-6) and o.crossed == pytest.approx(0.0, abs=1e-6)
    assert o.voxels == 12 * 10 * 2  # slices at z 12 and 15 mm lie in both, every voxel of a small plane
    # a rim of uniform tissue with FF 0.2 says "swapped", FF 0.8 says "clean"
    assert rim_evidence(upper).fat_fraction == pytest.approx(0.2) and rim_evidence(upper).verdict == "swapped"
    assert rim_evidence(lower).verdict == "clean"


def test_two_stations_that_disagree_without_a_rim_are_ambiguous_not_flagged():
    # FF 0.45 vs 0.55: no rim verdict (neither clearly fat nor clearly water), overlap says exchanged
    upper = _constant_station(3, 12.0, water=550.0, fat=450.0)
    lower = _constant_station(4, 0.0, water=450.0, fat=550.0)
    report = detect_swaps([upper, lower])
    assert report.swapped == () and report.ambiguous == (3, 4)
    assert "cannot tell which is swapped" in report.describe()
    # a third station agreeing with the upper one settles it: the odd one out is swapped
    third = _constant_station(2, 24.0, water=550.0, fat=450.0)
    assert detect_swaps([third, upper, lower]).swapped == (4,)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("swap")
    specs = tiny_ukb_specs()
    swapped = tiny_ukb_specs()
    swapped[3].swapped = True  # station 4 (specs run superior → inferior)
    return write_zip(folder / "clean" / "1000001_20201_2_0.zip", specs), \
        write_zip(folder / "swapped" / "1000001_20201_2_0.zip", swapped)


def test_package_with_a_swapped_station_fuses_to_its_clean_twin(twins, tmp_path):
    clean_zip, swapped_zip = twins
    clean = fuse(read_package(clean_zip), device="cpu")
    fixed = fuse(read_package(swapped_zip), device="cpu")
    assert clean.swapped_stations == () and fixed.swapped_stations == (4,)
    assert "station(s) 4 (FF opposite to station 3's" in fixed.swaps.describe()
    for c in clean:
        np.testing.assert_array_equal(fixed[c].data, clean[c].data)
    unfixed = fuse(read_package(swapped_zip), device="cpu", fix_swaps=False)
    assert not np.array_equal(unfixed["water"].data, clean["water"].data)
    paths = write_fused(fixed, tmp_path / "fixed", with_fat_fraction=True)
    assert read_nrrd(paths["water"]).meta["msmv_swapped_stations"] == "4"
    assert read_nrrd(paths["fat_fraction"]).meta["msmv_swapped_stations"] == "4"
    paths = write_fused(clean, tmp_path / "clean")
    assert read_nrrd(paths["fat"]).meta["msmv_swapped_stations"] == ""


def test_clean_factory_packages_are_never_flagged(twins):
    clean_zip, _ = twins
    for stations in (None, [1, 2, 3, 4, 5, 6], [4], [6], [5, 6]):
        package = read_package(clean_zip, stations=stations)
        assert detect_swaps(package.stations).swapped == (), stations


def test_fusing_water_alone_still_corrects_a_swap(twins):
    clean_zip, swapped_zip = twins
    fixed = fuse(read_package(swapped_zip), contrasts=("water",), device="cpu")
    clean = fuse(read_package(clean_zip), contrasts=("water",), device="cpu")
    assert fixed.swapped_stations == (4,)
    np.testing.assert_array_equal(fixed["water"].data, clean["water"].data)
    only_water = fuse(read_package(swapped_zip, contrasts=("water",)), contrasts=("water",), device="cpu")
    assert not only_water.swaps.checked and "not checked" in only_water.swaps.describe()


def test_fuse_command_says_which_station_was_swapped(twins, tmp_path, capsys):
    clean_zip, swapped_zip = twins
    assert main(["fuse", str(swapped_zip), "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "fat-water swap corrected in station(s) 4" in text and "water and fat exchanged" in text
    assert read_nrrd(tmp_path / "s" / "water.nrrd").meta["msmv_swapped_stations"] == "4"
    assert main(["fuse", str(clean_zip), "--out", str(tmp_path / "c"), "--device", "cpu"]) == 0
    assert "fat-water swaps: none found" in capsys.readouterr().out


def test_rim_morphology_matches_scipy():
    from scipy import ndimage

    from engine.imaging.fusion.swap import _fill_plane_holes, _plane_dilate, _plane_erode

    rng = np.random.default_rng(5)
    plane = np.ones((3, 3, 1), dtype=bool)
    for shape in ((9, 7, 3), (2, 6, 2), (1, 5, 1), (12, 12, 2)):
        for density in (0.3, 0.8):
            m = rng.random(shape) < density
            assert np.array_equal(_plane_erode(m), ndimage.binary_erosion(m, structure=plane))
            assert np.array_equal(_plane_dilate(m), ndimage.binary_dilation(m, structure=plane))
            holes = np.stack([ndimage.binary_fill_holes(m[:, :, k]) for k in range(shape[2])], axis=2)
            assert np.array_equal(_fill_plane_holes(m), holes)
    ring = np.ones((5, 5, 1), dtype=bool)
    ring[2, 2, 0] = False  # one hole: filled; the same gap on the edge is no hole
    assert _fill_plane_holes(ring).all()
    ring[2, 2, 0], ring[0, 2, 0] = True, False
    assert not _fill_plane_holes(ring)[0, 2, 0]
