"""store.files: the one content hash and the one atomic write-then-rename."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store.files import atomic_path, atomic_write_bytes, atomic_write_text, sha256_file, temp_path

# SHA-256 test vectors from FIPS 180-2 (appendix B.1) and of the empty message
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_sha256_file_matches_published_vectors(tmp_path: Path) -> None:
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "abc") == ABC_SHA256
    assert sha256_file(str(tmp_path / "empty")) == EMPTY_SHA256


def test_sha256_file_reads_past_one_chunk(tmp_path: Path) -> None:
    # a million 'a's: FIPS 180-2 appendix B.3, longer than any read buffer
    (tmp_path / "a").write_bytes(b"a" * 1_000_000)
    assert sha256_file(tmp_path / "a") == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


def test_success_replaces_the_previous_file(tmp_path: Path) -> None:
    final = tmp_path / "table.csv"
    final.write_text("old\n")
    old_inode = final.stat().st_ino
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name != final.name and tmp.name.startswith(".")
        tmp.write_text("new\n")
        assert final.read_text() == "old\n"  # readers still see the old file while it is written
    assert final.read_text() == "new\n"
    assert final.stat().st_ino != old_inode  # renamed over, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_failure_leaves_neither_temp_nor_final(tmp_path: Path) -> None:
    final = tmp_path / "labels.nrrd"
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(final) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_final_file(tmp_path: Path) -> None:
    final = tmp_path / "CURRENT"
    final.write_text("snapshot-1.duckdb\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(final, fsync=True) as tmp:
        tmp.write_text("snapshot-2")
        raise KeyboardInterrupt
    assert final.read_text() == "snapshot-1.duckdb\n"
    assert [p.name for p in tmp_path.iterdir()] == ["CURRENT"]


def test_nothing_written_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    final = tmp_path / "x.json"
    with pytest.raises(FileNotFoundError), atomic_path(final):
        pass
    assert not final.exists()


def test_temp_name_layout(tmp_path: Path) -> None:
    tmp = temp_path(tmp_path / "meshes.npz", prefix=".incoming-", suffix=".tmp.npz")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".incoming-meshes.npz.")
    assert tmp.name.endswith(f".{os.getpid()}.tmp.npz")  # the writer's pid last: cleanup knows its own
    assert temp_path(tmp_path / "a") != temp_path(tmp_path / "a")  # two threads never share a name


def test_write_helpers_round_trip_and_fsync(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff", fsync=True).read_bytes() == b"\x00\xff"
    assert atomic_write_text(tmp_path / "t.txt", "Gluteus médius\n").read_bytes() == "Gluteus médius\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "t.txt"]
