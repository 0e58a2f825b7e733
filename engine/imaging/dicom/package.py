"""Safe access to the files of an imaging package: a UKB bulk zip, a folder, loose files or zip bytes.

Zip members are read in memory and never extracted, so nothing can be written outside any target;
entries with absolute paths or ``..`` are refused all the same (they mark a hostile or broken
archive), and the total uncompressed size, each member's size, its compression ratio and the file
count are bounded against zip bombs. The bounds are checked on the zip's central directory before
anything is inflated (:func:`check_zip_directory`, also run by ``msmv submit``), and again on the
bytes actually inflated, so an archive that lies about its sizes is caught too.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from isal import isal_zlib

from engine.errors import PackageError, PackageRefused

#: Bound on the total uncompressed size of a package. A UKB subject inflates to ~ 150 MB (~ 1,300
#: slices of ~ 80 kB); 1 GiB leaves room for ~ 7 of them, and the worker holds the kept stations'
#: bytes in memory at once, so this also bounds its memory.
DEFAULT_MAX_TOTAL_BYTES = 1024**3
#: Bound on one member's uncompressed size. A UKB slice is ~ 80 kB; a multi-frame (enhanced) series
#: of a whole station from another scanner is ~ 20 MB; 64 MiB is generous for both, and far below
#: what a single inflated member can cost a worker in time and memory.
DEFAULT_MAX_MEMBER_BYTES = 64 * 1024**2
#: Bound on one member's compression ratio (inflated / stored size). MR pixel data deflates ~ 2-5:1
#: and even a blank slice stays under ~ 100:1 once its header is counted, while a run of zeros
#: deflates ~ 1000:1: the mark of a zip bomb.
DEFAULT_MAX_RATIO = 100.0
#: Members smaller than this are exempt from the ratio bound: inflating them costs little whatever
#: their ratio, and small text members (the manifest) can compress well.
RATIO_EXEMPT_BYTES = 1024**2
#: Bound on the number of files in a package (a UKB subject has ~ 1,300 DICOM files).
DEFAULT_MAX_FILES = 20_000
#: The UKB bulk manifest's name: the misspelling is UK Biobank's.
MANIFEST_NAME = "manifest.cvs"

#: Bytes inflated up front per zip member, enough for a plain DICOM header up to PixelData: members of
#: stations that are not kept are never inflated further. (Kept members are inflated again from the
#: start, so a larger head costs every kept file; headers that do not fit are simply read whole.)
HEAD_BYTES = 8 * 1024
#: A zip on disk is read into memory whole (inflated from there, hashed in the same pass) once its directory
#: passed the bounds, if it is no larger than its members' stored bytes plus this much and, per member,
#: the next constant (local header, name, extra fields, data descriptor).
ZIP_SLACK_BYTES = 16 * 1024**2
ZIP_ENTRY_OVERHEAD_BYTES = 4 * 1024
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (APPNOTE 4.3.7)
_LOCAL_MAGIC = b"PK\x03\x04"
_DICM_OFFSET = 128  # DICOM Part 10: 128-byte preamble, then the magic "DICM"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")

PackageSource = str | os.PathLike[str] | bytes | Sequence[str | os.PathLike[str]]


class PackageFile:
    """One file of a package: its name inside the package and its bytes.

    Zip members are inflated lazily: ``head`` holds the first bytes (enough for a DICOM header), and
    ``data`` inflates the whole member on first use, so stations that are not kept cost only a header.
    """

    __slots__ = ("name", "_data", "_head", "_loader")

    def __init__(self, name: str, data: bytes | None = None, *, head: bytes | None = None,
                 loader: Callable[[], bytes] | None = None) -> None:
        if data is None and (head is None or loader is None):
            raise ValueError("a PackageFile needs its data, or a head and a loader")
        self.name = name
        self._data, self._head, self._loader = data, head, loader

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self._loader()  # type: ignore[misc]
        return self._data

    @property
    def head(self) -> bytes:
        """The file's first bytes (all of it once loaded)."""
        return self._data if self._data is not None else self._head  # type: ignore[return-value]

    @property
    def partial(self) -> bool:
        """True while only the head is in memory."""
        return self._data is None

    @property
    def is_dicom(self) -> bool:
        """Part-10 magic at offset 128, or a ``.dcm`` name (so a truncated DICOM is still DICOM)."""
        return self.head[_DICM_OFFSET:_DICM_OFFSET + 4] == b"DICM" or self.name.lower().endswith(".dcm")

    def __repr__(self) -> str:
        return f"PackageFile({self.name!r}, {'head only' if self.partial else f'{len(self.data)} bytes'})"


def load_all(files: Sequence[PackageFile], *, workers: int | None = None) -> None:
    """Inflate every file's data, in parallel threads (zlib releases the GIL)."""
    pending = [f for f in files if f.partial]
    if not pending:
        return
    n = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n) as pool:
        for _ in pool.map(lambda f: f.data, pending, chunksize=32):
            pass


class _ZipMembers:
    """Reads members of one zip held in memory (its bytes read once): stored and deflated members are
    inflated straight from those bytes, any other method (bzip2, lzma, encryption) through ``zipfile``
    with one ZipFile handle per thread.

    A member is never inflated past its declared size, and a whole member must match its CRC-32, as
    ``zipfile`` checks.
    """

    def __init__(self, source: bytes, label: str) -> None:
        self.source, self.label = source, label
        self._view = memoryview(source)
        self._local = threading.local()

    def _zip(self) -> zipfile.ZipFile:
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = _open_zip(self.source, self.label)
        return zf

    def _error(self, info: zipfile.ZipInfo, why: object) -> PackageError:
        return PackageError(f"{self.label}: cannot read zip entry {info.filename!r}: {why}")

    def _span(self, info: zipfile.ZipInfo) -> slice:
        """Where the member's stored bytes lie, from its local header."""
        at = info.header_offset
        header = bytes(self._view[at:at + _LOCAL_HEADER.size])
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
            raise self._error(info, "bad magic number for file header")
        name_len, extra_len = _LOCAL_HEADER.unpack(header)[-2:]
        start = at + _LOCAL_HEADER.size + name_len + extra_len
        if start + info.compress_size > len(self._view):
            raise self._error(info, "truncated file")
        return slice(start, start + info.compress_size)

    def read(self, info: zipfile.ZipInfo, limit: int | None = None) -> bytes:
        """The member's bytes (its first ``limit`` bytes when given); never more than its declared size."""
        want = info.file_size + 1 if limit is None else min(limit, info.file_size + 1)
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            data = self._read_zipfile(info, want)
        else:
            raw = self._view[self._span(info)]
            if info.compress_type == zipfile.ZIP_STORED:
                data = bytes(raw[:want])
            else:
                try:
                    data, ended = _inflate(raw, want, whole=limit is None)
                except isal_zlib.error as err:
                    raise self._error(info, f"invalid deflate data: {err}") from err
                if len(data) < want and not ended:
                    raise self._error(info, "Compressed file ended before the end-of-stream marker was reached")
            if limit is None and len(data) == info.file_size and isal_zlib.crc32(data) != info.CRC:
                raise self._error(info, f"Bad CRC-32 for file {info.filename!r}")
        if len(data) > info.file_size:
            raise PackageRefused(f"{self.label}: zip entry {info.filename!r} inflates past its declared size "
                               f"{info.file_size}; refusing")
        if limit is None and len(data) < info.file_size:
            raise self._error(info, f"it inflates to {len(data)} bytes, short of its declared {info.file_size}")
        return data

    def _read_zipfile(self, info: zipfile.ZipInfo, want: int) -> bytes:
        try:
            with self._zip().open(info) as fh:
                return fh.read(want)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as err:
            raise self._error(info, err) from err


def _inflate(raw: memoryview, want: int, *, whole: bool) -> tuple[bytes, bool]:
    """The first ``want`` bytes raw deflate data ``raw`` inflates to, and whether its stream ended
    (``whole``: the member is read whole, so all of ``raw`` is needed anyway).

    ISA-L inflates the same bytes as zlib, ~2x faster (a UKB-size package: 0.36 s instead of 0.8 s of
    CPU), but works through all the input it is given: a head is inflated from a prefix of the input
    (half its size first: DICOM headers compress well), a longer one only when that falls short.
    """
    size = len(raw) if whole else want // 2 + 1024
    while True:
        inflater = isal_zlib.decompressobj(-zlib.MAX_WBITS)
        data = inflater.decompress(raw[:size], want)
        if len(data) >= want or inflater.eof or size >= len(raw):
            return data, inflater.eof
        size *= 4


def _check_entry_name(name: str) -> None:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _WINDOWS_DRIVE.match(normalised):
        raise PackageError(f"zip entry {name!r} has an absolute path; refusing the package")
    if ".." in normalised and ".." in PurePosixPath(normalised).parts:  # the substring test spares a path parse
        raise PackageError(f"zip entry {name!r} points outside the package ('..'); refusing the package")


@dataclass(frozen=True)
class ZipBounds:
    """The bounds on a zip package's work (defaults: the ``DEFAULT_MAX_*`` values above)."""

    total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    files: int = DEFAULT_MAX_FILES
    member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    ratio: float = DEFAULT_MAX_RATIO


DEFAULT_BOUNDS = ZipBounds()


def check_zip_directory(infos: Iterable[zipfile.ZipInfo], label: str, bounds: ZipBounds = DEFAULT_BOUNDS) -> None:
    """Refuse a zip from its central directory alone, before anything is inflated.

    Bounding the declared sizes bounds what is inflated, since no member is read past its declared
    size. ``label`` names the package in messages. Raises :class:`PackageRefused`.
    """
    max_total_bytes, max_files = bounds.total_bytes, bounds.files
    max_member_bytes, max_ratio = bounds.member_bytes, bounds.ratio
    infos = [i for i in infos if not i.is_dir()]
    try:
        for info in infos:  # refuse hostile names before reading anything
            _check_entry_name(info.filename)
    except PackageError as err:
        raise PackageRefused(f"{label}: {err}") from None
    if len(infos) > max_files:
        raise PackageRefused(f"{label} holds {len(infos)} files; at most {max_files} are allowed")
    declared = sum(i.file_size for i in infos)
    if declared > max_total_bytes:
        raise PackageRefused(f"{label} would inflate to {declared} bytes; at most {max_total_bytes} are allowed")
    for info in infos:
        if info.file_size > max_member_bytes:
            raise PackageRefused(f"{label}: zip entry {info.filename!r} would inflate to {info.file_size} bytes; "
                                 f"at most {max_member_bytes} are allowed per file")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_EXEMPT_BYTES and ratio > max_ratio:
            raise PackageRefused(f"{label}: zip entry {info.filename!r} is compressed {ratio:.0f}:1 "
                                 f"({info.compress_size} bytes inflating to {info.file_size}); at most "
                                 f"{max_ratio:g}:1 is allowed (a zip bomb?)")


def check_zip_file(path: str | os.PathLike[str], label: str | None = None, bounds: ZipBounds = DEFAULT_BOUNDS) -> None:
    """:func:`check_zip_directory` for a zip on disk (``label`` defaults to its path).

    PackageError if it is no readable zip, PackageRefused if it is over the bounds.
    """
    label = str(path) if label is None else label
    with _open_zip(Path(path), label) as zf:
        check_zip_directory(zf.infolist(), label, bounds)


def _iter_zip(zf: zipfile.ZipFile, source: bytes | Path, label: str, max_total_bytes: int, max_files: int,
              on_zip_bytes: Callable[[bytes], None] | None) -> Iterator[PackageFile]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    check_zip_directory(infos, label, ZipBounds(total_bytes=max_total_bytes, files=max_files))
    data = source if isinstance(source, bytes) else _read_zip_bytes(source, label, infos)
    if on_zip_bytes is not None:
        on_zip_bytes(data)
    members = _ZipMembers(data, label)
    for info in infos:
        if info.file_size <= HEAD_BYTES:
            yield PackageFile(info.filename, members.read(info))
        else:
            yield PackageFile(info.filename, head=members.read(info, HEAD_BYTES),
                              loader=functools.partial(members.read, info))


def _read_zip_bytes(path: Path, label: str, infos: Sequence[zipfile.ZipInfo]) -> bytes:
    """The whole zip file, read once, after its directory passed the bounds; refused when it is far larger
    than its members account for (bytes hidden between them must not be read into memory either)."""
    size = path.stat().st_size
    allowed = sum(i.compress_size for i in infos) + ZIP_SLACK_BYTES + ZIP_ENTRY_OVERHEAD_BYTES * len(infos)
    if size > allowed:
        raise PackageRefused(f"{label} is {size} bytes, but its members account for at most {allowed}; refusing")
    return path.read_bytes()


def _open_zip(source: bytes | Path, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as err:
        raise PackageError(f"{label} is not a readable zip: {err}") from err


def _read_disk_file(path: Path, total: int, max_total_bytes: int) -> bytes:
    size = path.stat().st_size
    if total + size > max_total_bytes:
        raise PackageRefused(f"package exceeds {max_total_bytes} bytes (at {path}); refusing")
    return path.read_bytes()


def iter_package_files(
    source: PackageSource,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    on_zip_bytes: Callable[[bytes], None] | None = None,
) -> Iterator[PackageFile]:
    """Yield every file of ``source``: zip bytes, a zip path, a folder (recursive), a file or a list of files.

    ``on_zip_bytes`` is called once with the whole zip's bytes when ``source`` is a zip (to hash it in
    the same pass that reads it); never for a folder or loose files.

    Raises PackageError for an empty or unreadable upload, unsafe zip entries or a package over the bounds.
    """
    if isinstance(source, bytes):
        if not source:
            raise PackageError("the upload is empty (0 bytes); expected a zip of DICOM files")
        if not zipfile.is_zipfile(io.BytesIO(source)):
            raise PackageError(f"the upload is not a zip file (starts with {source[:8]!r})")
        with _open_zip(source, "upload") as zf:
            yield from _iter_zip(zf, source, "upload", max_total_bytes, max_files, on_zip_bytes)
        return
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no package at {path}")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise PackageError(f"folder {path} is empty; expected DICOM files")
        elif path.stat().st_size == 0:
            raise PackageError(f"{path} is empty (0 bytes); expected a zip of DICOM files or a DICOM file")
        elif zipfile.is_zipfile(path):
            with _open_zip(path, str(path)) as zf:
                yield from _iter_zip(zf, path, str(path), max_total_bytes, max_files, on_zip_bytes)
            return
        else:
            head = path.open("rb").read(_DICM_OFFSET + 4)
            if head[_DICM_OFFSET:] != b"DICM" and not path.name.lower().endswith(".dcm"):
                raise PackageError(f"{path} is neither a zip file nor a DICOM file (starts with {head[:8]!r})")
            files = [path]
    else:
        files = [Path(p) for p in source]
        if not files:
            raise PackageError("no files given; expected a zip, a folder or DICOM files")
    if len(files) > max_files:
        raise PackageRefused(f"package holds {len(files)} files; at most {max_files} are allowed")
    total = 0
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no file at {f}")
        data = _read_disk_file(f, total, max_total_bytes)
        total += len(data)
        yield PackageFile(str(f), data)


def parse_manifest(data: bytes) -> list[dict[str, str]]:
    """Parse a UKB ``manifest.cvs`` (informational only; never trusted over the DICOM headers).

    Its date column contains commas, quoted or not: a row with more fields than the header has the
    surplus folded back into the column whose name mentions a date (else the last column).
    """
    text = data.decode("utf-8", errors="replace")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    date_col = next((n for n, h in enumerate(header) if "date" in h.lower()), len(header) - 1)
    out: list[dict[str, str]] = []
    for row in rows[1:]:
        extra = len(row) - len(header)
        if extra > 0:
            row = row[:date_col] + [",".join(row[date_col:date_col + extra + 1])] + row[date_col + extra + 1:]
        out.append({h: (row[n].strip() if n < len(row) else "") for n, h in enumerate(header)})
    return out
