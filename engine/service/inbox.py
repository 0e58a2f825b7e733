"""The inbox: where packages wait for the engine.

Submitting never touches the store (the engine service may hold the single writer lock): a package is
copied into ``MSMV_HOME/inbox/`` under its content hash by atomic rename, with a small JSON ticket
beside it. The engine claims inbox files, records a job per content hash and moves the package to
``MSMV_HOME/packages/``. Re-submitting a package whose hash already has a job does nothing unless
``force`` is set.

Submitting is bounded work: only regular files and folders are accepted (a device such as
``/dev/zero`` or a FIFO never is), a zip is refused from its central directory before a byte is
copied when it would inflate past the package bounds (:class:`ZipBounds`), copies count their bytes
and stop past the bound (a file may grow while it is copied), and a folder's symbolic links are not
followed out of it. Nothing is copied unless the inbox's disk has room for the package and
:data:`FREE_RESERVE_BYTES` besides (the store, artifacts and snapshots need the same disk).

Temporaries and restarts: a submission is staged in ``inbox/.incoming-<host>-<pid>-<random>/`` (package
and ticket) and only renamed out of it whole, so the engine never sees a partial file. An engine starting
(or scanning the inbox) removes a staging folder only when it is provably stale
(:func:`is_stale`): its writer ran on this host and that process is gone, or nothing in it changed for
:data:`STALE_AFTER_S` (a writer on another host sharing ``MSMV_HOME``, whose process cannot be checked
from here, or a pid reused since). A submission still copying is never touched.

A file dropped into the inbox by hand (not via ``msmv submit``) must arrive by rename too (copy it under
another name on the same disk, then ``mv`` it in): the engine claims any ``*.zip`` it finds there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from engine.errors import PackageError, PackageRefused
from engine.imaging.dicom.package import DEFAULT_BOUNDS, ZipBounds, check_zip_directory
from store.files import sha256_file
from store.home import Home

UKB_ZIP_NAME = re.compile(r"^(?P<eid>\d+)_20201_(?P<instance>\d+)_(?P<array>\d+)\.zip$")
_TMP_PREFIX = ".incoming-"
#: A staging folder left by a submission on another host, or whose pid may have been reused, is stale once
#: nothing in it changed for this long (a copy in progress writes every chunk; hashing a 1 GiB package
#: takes seconds).
STALE_AFTER_S = 24 * 3600
#: Free space a submission leaves on the inbox's disk beyond its own bytes: the engine's scratch, the
#: artifacts (~50 MB a subject) and the store's snapshots are written to the same disk.
FREE_RESERVE_BYTES = 2**30
_CHUNK_BYTES = 1024**2  # copy unit: the byte count is checked after each chunk
_LISTED_SKIPS = 5  # skipped files named in a submission's message; the rest are counted


@dataclass(frozen=True)
class Ticket:
    """What the submitter said about one package (the JSON beside ``<sha>.zip``)."""

    sha256: str
    original_name: str
    eid: int | None
    force: bool
    submitted: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> Ticket:
        data = json.loads(path.read_text())
        return cls(**{k: data.get(k) for k in ("sha256", "original_name", "eid", "force", "submitted")})


@dataclass(frozen=True)
class Submission:
    """The outcome of submitting one path."""

    source: str
    sha256: str | None
    status: str  # "queued", "already queued", "rejected"
    message: str = ""


_HASH_NAME = re.compile(r"^[0-9a-f]{64}\.zip$")


def is_hash_name(path: Path) -> bool:
    """True for inbox files named by content hash (``<sha256>.zip``), as :func:`submit` writes them."""
    return bool(_HASH_NAME.match(path.name))


def eid_from_name(name: str) -> int | None:
    """The participant ID of a UKB bulk file name such as ``1234567_20201_2_0.zip``."""
    m = UKB_ZIP_NAME.match(Path(name).name)
    return int(m.group("eid")) if m else None


def instance_from_name(name: str) -> int | None:
    """The assessment instance of a UKB bulk file name: 2 in ``1234567_20201_2_0.zip`` (the first imaging
    visit), 3 for the repeat imaging visit; None for any other name."""
    m = UKB_ZIP_NAME.match(Path(name).name)
    return int(m.group("instance")) if m else None


def check_zip(path: Path, label: str | None = None, bounds: ZipBounds = DEFAULT_BOUNDS) -> None:
    """Refuse what cannot be a Dixon package before it is queued: empty files, non-zips, and zips over
    ``bounds`` (judged from the central directory, nothing inflated). ``label`` names the user's file
    in messages (default: ``path``'s name)."""
    label = label or path.name
    if not path.is_file():
        raise PackageError(f"{label}: not a file")
    with path.open("rb") as fh:
        _check_zip_stream(fh, label, bounds)


def _check_zip_stream(fh: Any, label: str, bounds: ZipBounds) -> None:
    fh.seek(0, os.SEEK_END)
    if fh.tell() == 0:
        raise PackageError(f"{label}: the file is empty; expected a UK Biobank Dixon zip")
    if not zipfile.is_zipfile(fh):
        raise PackageError(f"{label}: not a zip archive; expected a UK Biobank Dixon zip (field 20201)")
    try:
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise PackageError(f"{label}: not a readable zip archive: {err}") from err
    if not any(not info.is_dir() for info in infos):
        raise PackageError(f"{label}: the zip holds no files")
    check_zip_directory(infos, label, bounds)
    fh.seek(0)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_regular(path: Path, label: str, *, follow: bool = True) -> Any:
    """Open ``path`` for reading, refusing anything but a regular file.

    The kind is judged on the opened descriptor (so the file cannot be swapped in between), and
    ``O_NONBLOCK`` keeps a FIFO from blocking the open while nobody writes to it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise PackageRefused(f"{label} is {_file_kind(mode)}; only regular files (zips) and folders can be "
                             "submitted")
    return os.fdopen(fd, "rb")


def _copy_bounded(fin: Any, fout: Any, limit: int, label: str) -> int:
    """Copy ``fin`` to ``fout`` in chunks; PackageRefused as soon as more than ``limit`` bytes came.

    The size was checked before copying, but a file can grow while it is read: counting bounds the
    copy whatever happens. Returns the bytes copied.
    """
    copied = 0
    while chunk := fin.read(_CHUNK_BYTES):
        copied += len(chunk)
        if copied > limit:
            raise PackageRefused(f"{label} grew past {limit} bytes while it was copied; refusing it")
        fout.write(chunk)
    return copied


Room = Callable[[int], None]  # raises PackageRefused when this many bytes do not fit (check_free_space)


def _stage_file(path: Path, staged: Path, bounds: ZipBounds, room: Room = lambda _n: None) -> None:
    """Copy a submitted zip to ``staged``: kind, size, zip directory and free space checked before any copying."""
    label = str(path)
    with _open_regular(path, label) as fin:
        size = os.fstat(fin.fileno()).st_size
        # a zip is no larger than what it inflates to (plus its directory): the package bound holds
        if size > bounds.total_bytes:
            raise PackageRefused(f"{label} is {size} bytes; at most {bounds.total_bytes} are allowed")
        _check_zip_stream(fin, label, bounds)
        room(size)
        with open(staged, "wb") as fout:
            _copy_bounded(fin, fout, bounds.total_bytes, label)


def _folder_files(folder: Path, bounds: ZipBounds) -> tuple[list[tuple[Path, str]], list[str]]:
    """The regular files of ``folder`` as (path, name in the zip), and a note for each file skipped.

    Symbolic links are followed only when they stay inside the folder (a link to a file outside it
    would submit that file); links to folders are not followed at all (``os.walk`` default). Files
    over the per-file bound are skipped, not refused: one stray large file should not stop a subject.
    """
    root = folder.resolve()
    keep: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                skipped.append(f"{(here / name).relative_to(folder).as_posix()} (a link to a folder, not followed)")
        for name in filenames:
            file = here / name
            rel = file.relative_to(folder).as_posix()
            if file.is_symlink() and not file.resolve().is_relative_to(root):
                skipped.append(f"{rel} (a link out of the folder, not followed)")
                continue
            try:
                info = file.stat()
            except OSError as err:
                skipped.append(f"{rel} (unreadable: {err.strerror})")
                continue
            if not stat.S_ISREG(info.st_mode):
                skipped.append(f"{rel} ({_file_kind(info.st_mode)})")
            elif info.st_size > bounds.member_bytes:
                skipped.append(f"{rel} ({info.st_size} bytes, over the {bounds.member_bytes} allowed per file)")
            else:
                keep.append((file, rel))
    return sorted(keep, key=lambda pair: pair[1]), skipped


def _zip_folder(folder: Path, dest: Path, bounds: ZipBounds = DEFAULT_BOUNDS, room: Room = lambda _n: None) -> list[str]:
    """A DICOM folder becomes one zip (entries relative to the folder, in a stable order).

    Returns a note for each file skipped (see :func:`_folder_files`). PackageRefused when the files
    kept add up to more than the package bound, or do not fit on the disk (``room``), before anything
    is copied.
    """
    files, skipped = _folder_files(folder, bounds)
    total = sum(f.stat().st_size for f, _ in files)
    if total > bounds.total_bytes:
        raise PackageRefused(f"{folder} holds {total} bytes of files; at most {bounds.total_bytes} are allowed")
    if len(files) > bounds.files:
        raise PackageRefused(f"{folder} holds {len(files)} files; at most {bounds.files} are allowed")
    room(total)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for file, rel in files:
            label = f"{folder}/{rel}"
            # a file that was no link when listed is opened without following one: it cannot be swapped
            # for a link out of the folder in between
            with _open_regular(file.resolve(), label, follow=not file.is_symlink()) as fin, \
                    zf.open(zipfile.ZipInfo.from_file(file, rel), "w") as out:
                _copy_bounded(fin, out, bounds.member_bytes, label)
    return skipped


def _skip_note(skipped: list[str]) -> str:
    if not skipped:
        return ""
    listed = "; ".join(skipped[:_LISTED_SKIPS])
    more = f"; and {len(skipped) - _LISTED_SKIPS} more" if len(skipped) > _LISTED_SKIPS else ""
    return f"skipped {len(skipped)} file(s): {listed}{more}"


def expand(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Zips stand for themselves; a folder of zips gives each zip; another folder is a DICOM folder."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"nothing at {path}")
        if path.is_dir():
            zips = sorted(path.glob("*.zip"))
            yield from zips if zips else [path]
        else:
            yield path


def _host() -> str:
    """This machine's name as it goes into staging folder names (letters, digits, dots and dashes)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


@contextmanager
def _staging(home: Home) -> Iterator[Path]:
    """A fresh staging folder in the inbox, named after this host and process; removed on leaving."""
    folder = Path(tempfile.mkdtemp(dir=home.inbox, prefix=f"{_TMP_PREFIX}{_host()}-{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _staging_writer(name: str) -> tuple[str, int] | None:
    """(host, pid) from a staging folder's name, or None for a name of another form."""
    host, sep, rest = name.removeprefix(_TMP_PREFIX).rpartition("-")
    host, sep2, pid = host.rpartition("-")
    return (host, int(pid)) if sep and sep2 and host and pid.isdigit() and rest else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _last_change(path: Path) -> float:
    """The newest modification time of ``path`` and everything under it (0 if it vanished meanwhile)."""
    newest = 0.0
    for entry in [path, *(path.rglob("*") if path.is_dir() and not path.is_symlink() else [])]:
        try:
            newest = max(newest, entry.lstat().st_mtime)
        except OSError:
            continue
    return newest


def is_stale(path: Path, *, now: float | None = None) -> bool:
    """Whether a temporary inbox entry (``.incoming-*``) can be removed without harming a submission.

    Stale when its writer ran on this host and that process is gone, or when nothing in it changed for
    :data:`STALE_AFTER_S` (a writer on another host, a name of another form, or a pid reused since).
    """
    writer = _staging_writer(path.name)
    if writer is not None and writer[0] == _host() and not _process_alive(writer[1]):
        return True
    now = time.time() if now is None else now
    return now - _last_change(path) > STALE_AFTER_S


def check_free_space(home: Home, needed: int, label: str) -> None:
    """PackageRefused when the inbox's disk cannot take ``needed`` bytes and keep :data:`FREE_RESERVE_BYTES`."""
    free = shutil.disk_usage(home.inbox).free
    if free - needed < FREE_RESERVE_BYTES:
        mb = 2**20
        raise PackageRefused(f"not enough free space for {label} in {home.inbox}: it needs {needed / mb:.1f} MB "
                             f"and {free / mb:.1f} MB are free, of which {FREE_RESERVE_BYTES / mb:.0f} MB are kept "
                             "for the engine's results")


def queued_hashes(home: Home) -> set[str]:
    return {p.stem for p in home.inbox.glob("*.zip") if is_hash_name(p)}


def submit(
    home: Home,
    paths: Iterable[str | os.PathLike[str]],
    *,
    force: bool = False,
    known: set[str] | None = None,
    bounds: ZipBounds = DEFAULT_BOUNDS,
) -> list[Submission]:
    """Copy each package into the inbox by atomic rename.

    ``known`` holds content hashes that already have a job (from the published store snapshot); such
    packages are skipped unless ``force``. Bad packages are rejected one by one; the rest still go in.
    ``bounds`` limit the work a package may cost, and nothing is copied that would leave less than
    :data:`FREE_RESERVE_BYTES` free on the inbox's disk (see the module docstring).
    """
    home.ensure()
    known = known or set()
    results: list[Submission] = []
    for path in expand(paths):
        with _staging(home) as folder:
            tmpdir = str(folder)
            staged = folder / "package.zip"
            skipped: list[str] = []
            room = partial(check_free_space, home, label=str(path))
            try:
                if path.is_dir():
                    skipped = _zip_folder(path, staged, bounds, room)
                else:
                    _stage_file(path, staged, bounds, room)
                check_zip(staged, str(path), bounds)  # what was copied, in case the source changed meanwhile
            except PackageError as err:
                message = "; ".join(filter(None, [str(err), _skip_note(skipped)]))
                results.append(Submission(str(path), None, "rejected", message))
                continue
            except OSError as err:  # an unreadable source, or the inbox's disk is full
                reason = err.strerror or str(err)
                ours = err.filename is None or str(err.filename).startswith(tmpdir)
                message = f"cannot copy {path} into the inbox: {reason}" if ours else f"{err.filename}: {reason}"
                results.append(Submission(str(path), None, "rejected", message))
                continue
            sha = sha256_file(staged)
            if not force and (sha in known or sha in queued_hashes(home)):
                results.append(Submission(str(path), sha, "already queued",
                                          "same content already submitted; use --force to process it again"))
                continue
            ticket = Ticket(sha, path.name, eid_from_name(path.name), force,
                            datetime.now(UTC).isoformat(timespec="seconds"))
            # both written in the staging folder and renamed out of it, ticket first, package last: the
            # engine only looks at complete <sha>.zip files
            staged_ticket = folder / "ticket.json"
            staged_ticket.write_text(ticket.to_json(), encoding="utf-8")
            os.replace(staged_ticket, home.inbox / f"{sha}.json")
            os.replace(staged, home.inbox / f"{sha}.zip")
            results.append(Submission(str(path), sha, "queued", _skip_note(skipped)))
    return results


def submit_upload(home: Home, name: str, data: bytes, *, max_bytes: int | None = None,
                  known: set[str] | None = None) -> Submission:
    """Queue an uploaded file (dashboard): size and type checked, then the same path as :func:`submit`."""
    if max_bytes is not None and len(data) > max_bytes:
        return Submission(name, None, "rejected",
                          f"{name}: {len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB upload limit")
    safe = Path(name).name or "upload.zip"
    if not safe.lower().endswith(".zip"):
        return Submission(name, None, "rejected", f"{safe}: expected a .zip (UK Biobank field 20201 package)")
    home.ensure()
    with _staging(home) as folder:
        staged = folder / safe
        try:
            check_free_space(home, 2 * len(data), safe)  # the upload here, then its copy for submit
        except PackageRefused as err:
            return Submission(name, None, "rejected", str(err))
        staged.write_bytes(data)
        result = submit(home, [staged], known=known)[0]
    # the copy lives in a temporary folder the user never saw: name the file they uploaded
    return replace(result, source=name, message=result.message.replace(str(staged), safe))


def clean_temporaries(home: Home, *, now: float | None = None) -> int:
    """Remove half-copied submissions left by a crash (only stale ones, :func:`is_stale`: a submission
    still copying is left alone); returns how many were removed."""
    removed = 0
    for p in home.inbox.glob(f"{_TMP_PREFIX}*") if home.inbox.is_dir() else []:
        if not is_stale(p, now=now):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    return removed
