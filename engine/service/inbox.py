"""The inbox: where packages wait for the engine.

Submitting never touches the store (the engine service may hold the single writer lock): a package is
copied into ``MSMV_HOME/inbox/`` under its content hash by atomic rename, with a small JSON ticket
beside it. The engine claims inbox files, records a job per content hash and moves the package to
``MSMV_HOME/packages/``. Re-submitting a package whose hash already has a job does nothing unless
``force`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import PackageError
from store.files import atomic_path, sha256_file
from store.home import Home

UKB_ZIP_NAME = re.compile(r"^(?P<eid>\d+)_20201_(?P<instance>\d+)_(?P<array>\d+)\.zip$")
_TMP_PREFIX = ".incoming-"


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


def check_zip(path: Path) -> None:
    """Refuse what cannot be a Dixon package before it is queued: empty files and non-zips."""
    if not path.is_file():
        raise PackageError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise PackageError(f"{path.name}: the file is empty; expected a UK Biobank Dixon zip")
    if not zipfile.is_zipfile(path):
        raise PackageError(f"{path.name}: not a zip archive; expected a UK Biobank Dixon zip (field 20201)")
    with zipfile.ZipFile(path) as zf:
        if not any(not info.is_dir() for info in zf.infolist()):
            raise PackageError(f"{path.name}: the zip holds no files")


def _zip_folder(folder: Path, dest: Path) -> None:
    """A DICOM folder becomes one zip (entries relative to the folder, in a stable order)."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(file, file.relative_to(folder).as_posix())


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


def queued_hashes(home: Home) -> set[str]:
    return {p.stem for p in home.inbox.glob("*.zip") if is_hash_name(p)}


def submit(
    home: Home,
    paths: Iterable[str | os.PathLike[str]],
    *,
    force: bool = False,
    known: set[str] | None = None,
) -> list[Submission]:
    """Copy each package into the inbox by atomic rename.

    ``known`` holds content hashes that already have a job (from the published store snapshot); such
    packages are skipped unless ``force``. Bad packages are rejected one by one; the rest still go in.
    """
    home.ensure()
    known = known or set()
    results: list[Submission] = []
    for path in expand(paths):
        with tempfile.TemporaryDirectory(dir=home.inbox, prefix=_TMP_PREFIX) as tmpdir:
            staged = Path(tmpdir) / "package.zip"
            try:
                if path.is_dir():
                    _zip_folder(path, staged)
                else:
                    shutil.copyfile(path, staged)
                check_zip(staged)
            except PackageError as err:
                results.append(Submission(str(path), None, "rejected", str(err)))
                continue
            sha = sha256_file(staged)
            if not force and (sha in known or sha in queued_hashes(home)):
                results.append(Submission(str(path), sha, "already queued",
                                          "same content already submitted; use --force to process it again"))
                continue
            ticket = Ticket(sha, path.name, eid_from_name(path.name), force,
                            datetime.now(UTC).isoformat(timespec="seconds"))
            # ticket first, package last: the engine only looks at complete <sha>.zip files
            with atomic_path(home.inbox / f"{sha}.json", prefix=_TMP_PREFIX) as tmp:  # clean_temporaries' prefix
                tmp.write_text(ticket.to_json(), encoding="utf-8")
            os.replace(staged, home.inbox / f"{sha}.zip")
            results.append(Submission(str(path), sha, "queued"))
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
    with tempfile.TemporaryDirectory(dir=home.inbox, prefix=_TMP_PREFIX) as tmpdir:
        staged = Path(tmpdir) / safe
        staged.write_bytes(data)
        return submit(home, [staged], known=known)[0]


def clean_temporaries(home: Home) -> int:
    """Remove half-copied submissions left by a crash; returns how many were removed."""
    removed = 0
    for p in home.inbox.glob(f"{_TMP_PREFIX}*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    return removed
