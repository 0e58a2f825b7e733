"""Zip members inflated straight from the zip's bytes: integrity checks, other methods, the one-pass hash."""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest

from engine.errors import PackageError, PackageRefused
from engine.imaging.dicom import package
from engine.imaging.dicom.package import iter_package_files, load_all
from engine.imaging.dicom.read import read_package
from engine.imaging.dicom.slice import Slice
from tests.engine.imaging.dicom.dicom_factory import tiny_ukb_specs, write_zip

PAYLOAD = bytes(range(256)) * 64 + b"tail" * 3000  # 28 kB: more than a head, compresses


def _one_member(path, compression):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("a.dcm", PAYLOAD)
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_every_method_reads_the_same_bytes(tmp_path, compression):
    (pf,) = iter_package_files(_one_member(tmp_path / "p.zip", compression))
    assert pf.partial and pf.head == PAYLOAD[:len(pf.head)] and len(pf.head) == 8 * 1024
    assert pf.data == PAYLOAD


def test_a_corrupt_member_is_caught_by_its_crc(tmp_path):
    path = _one_member(tmp_path / "p.zip", zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"tail")
    raw[at] ^= 0xFF  # one flipped byte inside the stored member
    path.write_bytes(bytes(raw))
    (pf,) = iter_package_files(path)
    with pytest.raises(PackageError, match=r"p\.zip: cannot read zip entry 'a\.dcm': Bad CRC-32"):
        load_all([pf])


def test_a_zip_with_hidden_bytes_is_refused_before_it_is_read(tmp_path):
    path = _one_member(tmp_path / "p.zip", zipfile.ZIP_DEFLATED)
    data = path.read_bytes()
    cut = data.index(b"PK\x01\x02")  # junk between the last member and the central directory
    junk = package.ZIP_SLACK_BYTES + 2 * package.ZIP_ENTRY_OVERHEAD_BYTES
    path.write_bytes(data[:cut] + bytes(junk) + data[cut:])
    with pytest.raises(PackageRefused, match=r"p\.zip is \d+ bytes, but its members account for at most \d+"):
        list(iter_package_files(path))


def test_package_hash_is_taken_as_it_is_read(tmp_path):
    zipped = write_zip(tmp_path / "1000001_20201_2_0.zip", tiny_ukb_specs(), seed=1)
    pkg = read_package(zipped, threads=1)
    assert pkg.source_sha256 == hashlib.sha256(zipped.read_bytes()).hexdigest()
    assert read_package(zipped.read_bytes()).source_sha256 == pkg.source_sha256
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(folder)
    unzipped = read_package(folder)
    assert unzipped.source_sha256 is None
    for a, b in zip(pkg.stations, unzipped.stations, strict=True):
        for c in a.volumes:
            np.testing.assert_array_equal(a.volumes[c].data, b.volumes[c].data)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_pixels_into_a_stack_match_the_rescaled_copy(dtype):
    stored = np.random.default_rng(2).integers(0, 40_000, (3, 4)).astype(dtype)
    sl = Slice("a.dcm", "1.2", "1.3", "Dixon_W", (), 1, "", np.zeros(6), np.zeros(3), (1.0, 1.0), 3, 4,
               None, 0.37, -12.5, lambda: stored)
    stack = np.full((2, 3, 4), np.nan, dtype=np.float32)
    sl.pixels_into(stack[1])
    expected = stored.astype(np.float32) * np.float32(0.37) + np.float32(-12.5)  # what pixels() always did
    assert np.array_equal(stack[1], expected) and np.isnan(stack[0]).all()
    assert np.array_equal(sl.pixels(), expected)
