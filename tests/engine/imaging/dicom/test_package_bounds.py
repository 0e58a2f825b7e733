"""Zip bounds judged from the central directory, before a byte is inflated (worker side)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from engine.errors import PackageRefused
from engine.imaging.dicom.package import ZipBounds, check_zip_directory, check_zip_file
from engine.imaging.dicom.read import read_package
from engine.service.pipeline import PipelineOptions, StageError, process_package


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def no_inflating(monkeypatch):
    """Any attempt to open a zip member for reading, or to inflate one from the package's bytes (the reader's
    own path), fails the test (writing test zips still works)."""
    from engine.imaging.dicom import package

    real_open = zipfile.ZipFile.open

    def inflating(raw, want, *, whole):
        raise AssertionError(f"a zip member was inflated ({want} bytes wanted)")

    def guarded(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            raise AssertionError(f"zip member {name} was opened for reading")
        return real_open(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", guarded)
    monkeypatch.setattr(package, "_inflate", inflating)


def test_ratio_bound_refuses_a_bomb_and_spares_small_members(tmp_path, no_inflating):
    bomb = _zip(tmp_path / "bomb.zip", {"a.dcm": bytes(2 * 2**20)})
    with pytest.raises(PackageRefused, match=r"bomb.zip: zip entry 'a.dcm' is compressed \d{3,}:1 \(\d+ bytes "
                                             r"inflating to 2097152\); at most 100:1 is allowed"):
        read_package(bomb)
    # the same ratio on a member under 1 MiB costs little to inflate: not refused on ratio
    small = _zip(tmp_path / "small.zip", {"a.dcm": bytes(2**20)})
    with zipfile.ZipFile(small) as zf:
        infos = zf.infolist()
    assert infos[0].file_size / infos[0].compress_size > 100
    check_zip_directory(infos, "small.zip")
    # a lower ratio bound still catches it once the member is big enough
    with pytest.raises(PackageRefused, match="at most 3:1 is allowed"):
        check_zip_directory(zipfile.ZipFile(bomb).infolist(), "bomb.zip", ZipBounds(ratio=3))


def test_member_bound_refuses_an_oversize_member(tmp_path, no_inflating):
    pkg = _zip(tmp_path / "pkg.zip", {"ok.dcm": b"x" * 10, "big.dcm": b"y" * 5000}, zipfile.ZIP_STORED)
    with pytest.raises(PackageRefused, match=r"^pkg.zip: zip entry 'big.dcm' would inflate to 5000 bytes; at most "
                                             r"4999 are allowed per file$"):
        check_zip_file(pkg, "pkg.zip", ZipBounds(member_bytes=4999))
    check_zip_file(pkg, "pkg.zip", ZipBounds(member_bytes=5000))


def test_unsafe_names_are_refusals_too(tmp_path, no_inflating):
    pkg = _zip(tmp_path / "evil.zip", {"../../etc/passwd": b"x"})
    with pytest.raises(PackageRefused, match=r"^evil.zip: zip entry '../../etc/passwd' points outside the package"):
        check_zip_file(pkg, "evil.zip")


def test_worker_refuses_a_bomb_at_ingest_before_reading_the_patient_id(tmp_path, no_inflating):
    bomb = _zip(tmp_path / "bomb.zip", {"a.dcm": bytes(2 * 2**20)})
    with pytest.raises(StageError) as caught:
        process_package("job", str(bomb), str(tmp_path / "work"), None, PipelineOptions(torch_threads=1))
    err = caught.value
    assert (err.stage, err.permanent) == ("ingest", True)
    assert err.message.startswith(f"PackageRefused: {bomb}: zip entry 'a.dcm' is compressed")
    # the flag survives the trip from a worker process
    import pickle

    assert pickle.loads(pickle.dumps(err)).permanent is True
