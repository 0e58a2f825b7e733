"""Bounded work at submission: devices, FIFOs, zip bombs, growing files, oversize files and links.

Every refusal is checked on what reached the inbox (nothing), and every message names the user's file.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.errors import PackageRefused
from engine.imaging.dicom.package import ZipBounds
from engine.service import inbox
from engine.service.coordinator import Engine
from store.home import home as make_home
from store.reader import Reader
from tests.engine.service.fake_pipeline import make_package

FAKE = "tests.engine.service.fake_pipeline:process"
ROOT = Path(__file__).resolve().parents[3]
BOMB_MEMBER_BYTES = 2 * 2**20  # zeros: deflate ~1000:1, so the zip stays ~2 kB


def _bomb(path: Path) -> Path:
    """A real-looking package with one member of zeros (the shape of a zip bomb, kept tiny)."""
    make_package(path, 4242)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.dcm", bytes(BOMB_MEMBER_BYTES))
    return path


def _inbox_bytes(h) -> int:
    """Bytes of every file under the inbox (temporary folders included)."""
    return sum(p.stat().st_size for p in h.inbox.rglob("*") if p.is_file())


def test_fifo_is_refused_without_blocking_or_copying(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    fifo = tmp_path / "1001_20201_2_0.zip"
    os.mkfifo(fifo)
    (res,) = inbox.submit(h, [fifo])
    assert res.status == "rejected"
    assert res.message == f"{fifo} is a FIFO; only regular files (zips) and folders can be submitted"
    assert list(h.inbox.iterdir()) == []


def test_zip_bomb_is_refused_from_its_directory_before_copying(tmp_path, monkeypatch):
    h = make_home(tmp_path / "home").ensure()
    bomb = _bomb(tmp_path / "4242_20201_2_0.zip")
    assert bomb.stat().st_size < 10_000
    copies: list[object] = []
    monkeypatch.setattr(inbox, "_copy_bounded", lambda *a: copies.append(a))
    (res,) = inbox.submit(h, [bomb])
    assert res.status == "rejected"
    assert res.message.startswith(f"{bomb}: zip entry 'bomb.dcm' is compressed ")
    assert "bytes inflating to 2097152); at most 100:1 is allowed" in res.message
    assert copies == [] and _inbox_bytes(h) == 0
    # the dashboard's upload path goes through the same check
    up = inbox.submit_upload(h, "upload.zip", bomb.read_bytes())
    assert up.status == "rejected" and "upload.zip: zip entry 'bomb.dcm' is compressed" in up.message
    assert "package.zip" not in up.message and _inbox_bytes(h) == 0


def test_member_and_total_bounds_refuse_before_copying(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    pkg = tmp_path / "pkg.zip"
    with zipfile.ZipFile(pkg, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.dcm", os.urandom(5000))
    (res,) = inbox.submit(h, [pkg], bounds=ZipBounds(member_bytes=1000))
    assert res.message == f"{pkg}: zip entry 'a.dcm' would inflate to 5000 bytes; at most 1000 are allowed per file"
    size = pkg.stat().st_size
    (res,) = inbox.submit(h, [pkg], bounds=ZipBounds(total_bytes=4000))
    assert res.message == f"{pkg} is {size} bytes; at most 4000 are allowed"
    assert _inbox_bytes(h) == 0
    (ok,) = inbox.submit(h, [pkg], bounds=ZipBounds(member_bytes=5000, total_bytes=size))
    assert ok.status == "queued" and (h.inbox / f"{ok.sha256}.zip").read_bytes() == pkg.read_bytes()


def test_a_growing_file_stops_the_copy_past_the_bound(monkeypatch):
    monkeypatch.setattr(inbox, "_CHUNK_BYTES", 4)
    out = io.BytesIO()
    with pytest.raises(PackageRefused, match=r"^src.zip grew past 10 bytes while it was copied; refusing it$"):
        inbox._copy_bounded(io.BytesIO(bytes(range(20))), out, 10, "src.zip")
    assert out.getvalue() == bytes(range(8))  # two whole chunks; the third would pass 10
    out = io.BytesIO()
    assert inbox._copy_bounded(io.BytesIO(b"0123456789"), out, 10, "src.zip") == 10
    assert out.getvalue() == b"0123456789"


def test_folder_skips_oversize_files_special_files_and_links_out_and_says_so(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"SECRET")
    folder = tmp_path / "dicom"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(b"A" * 100)
    (folder / "sub" / "b.dcm").write_bytes(b"B" * 200)
    (folder / "big.dcm").write_bytes(b"C" * 5000)
    (folder / "link_in.dcm").symlink_to(folder / "a.dcm")
    (folder / "link_out.dcm").symlink_to(outside / "secret.txt")
    (folder / "linkdir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(folder / "pipe")
    (res,) = inbox.submit(h, [folder], bounds=ZipBounds(member_bytes=1000))
    assert res.status == "queued"
    assert res.message.startswith("skipped 4 file(s): ")
    for note in ("big.dcm (5000 bytes, over the 1000 allowed per file)",
                 "link_out.dcm (a link out of the folder, not followed)",
                 "linkdir (a link to a folder, not followed)", "pipe (a FIFO)"):
        assert note in res.message
    with zipfile.ZipFile(h.inbox / f"{res.sha256}.zip") as zf:
        assert zf.namelist() == ["a.dcm", "link_in.dcm", "sub/b.dcm"]
        assert zf.read("link_in.dcm") == b"A" * 100 and zf.read("sub/b.dcm") == b"B" * 200
    assert b"SECRET" not in (h.inbox / f"{res.sha256}.zip").read_bytes()


def test_folder_over_the_total_bound_is_refused_before_copying(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    folder = tmp_path / "dicom"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.dcm").write_bytes(b"x" * 400)
    (res,) = inbox.submit(h, [folder], bounds=ZipBounds(total_bytes=1000))
    assert res.status == "rejected" and res.message == f"{folder} holds 1200 bytes of files; at most 1000 are allowed"
    assert _inbox_bytes(h) == 0


def test_a_refused_package_fails_at_once_and_is_never_retried(tmp_path):
    """A bomb dropped straight into the inbox (not via submit) is refused by the worker, once."""
    h = make_home(tmp_path / "home").ensure()
    _bomb(h.inbox / "4242_20201_2_0.zip")
    events: list[str] = []
    stats = Engine(h, workers=1, max_attempts=3, pipeline=FAKE,
                   on_event=lambda kind, _info: events.append(kind)).run(once=True)
    assert (stats.done, stats.failed, stats.retried) == (0, 1, 0)
    assert "retry" not in events
    with Reader(h) as r:
        job = r.jobs().iloc[0]
    assert (job["status"], job["stage"], job["attempts"]) == ("failed", "ingest", 1)
    assert "PackageRefused" in job["error"] and "zip entry 'bomb.dcm' is compressed" in job["error"]


def test_an_ordinary_failure_is_still_retried(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    make_package(h.inbox / "77_20201_2_0.zip", 77, fail="fuse")
    stats = Engine(h, workers=1, max_attempts=2, pipeline=FAKE).run(once=True)
    assert (stats.failed, stats.retried) == (1, 1)


def test_cli_refuses_a_device_a_fifo_and_a_bomb_without_a_traceback(tmp_path):
    h = make_home(tmp_path / "home").ensure()
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    bomb = _bomb(tmp_path / "4242_20201_2_0.zip")
    env = {**os.environ, "MSMV_HOME": str(h.root), "PYTHONPATH": str(ROOT)}
    # a timeout: before, /dev/zero was copied until the disk was full
    done = subprocess.run([sys.executable, "-m", "engine.cli", "submit", "/dev/zero", str(fifo), str(bomb)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("rejected        /dev/zero  (/dev/zero is a character device; only regular")
    assert lines[1].startswith(f"rejected        {fifo}  ({fifo} is a FIFO;")
    assert lines[2].startswith(f"rejected        {bomb}  ({bomb}: zip entry 'bomb.dcm' is compressed")
    assert _inbox_bytes(h) == 0
