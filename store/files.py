"""Files on disk: content hashes and atomic write-then-rename.

Every layer writes files that a reader in another process may open at any moment (artifacts,
snapshots, inbox tickets, exports), so each file is written under a temporary name in the same folder
and renamed over its final name: ``os.replace`` within one file system is atomic, so a reader sees
the old file or the new one, never half of either. On failure the temporary file is removed and the
previous final file is left as it was.

A temporary name is ``<prefix><final name>.<random>.<pid><suffix>`` (default ``.name.1a2b3c4d.123.tmp``):
hidden, never matching the final name's pattern, and ending in the writer's pid, so a cleanup run by
the only writer (see :func:`store.snapshot.prune`) can tell its own files from a killed writer's.

This module is the lowest layer's: it imports nothing from ``engine``, ``dashboard`` or ``pages``
(workers hash files without importing the store writer).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_dir", "sha256_file", "temp_path"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (packages and checkpoints run to hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def temp_path(final: str | os.PathLike[str], *, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """A fresh temporary name beside ``final`` (same folder, so the rename stays on one file system)."""
    final = Path(final)
    return final.with_name(f"{prefix}{final.name}.{uuid.uuid4().hex[:8]}.{os.getpid()}{suffix}")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries, so a rename inside it survives a power cut, not only a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(
    final: str | os.PathLike[str], *, fsync: bool = False, prefix: str = ".", suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it over ``final``, on any failure remove it.

    ``fsync`` also flushes the file and its folder to disk before and after the rename: needed where a
    power cut must not lose a published file (read snapshots); a killed process loses nothing either
    way, since the page cache outlives it. ``suffix`` keeps a tool that appends its own extension
    (``numpy.savez`` adds ``.npz``) from writing to a different name than the one yielded.
    """
    final = Path(final)
    tmp = temp_path(final, prefix=prefix, suffix=suffix)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, final)
        if fsync:
            fsync_dir(final.parent)
    finally:
        # after a successful rename there is nothing left to remove; after a failure (an exception,
        # KeyboardInterrupt included) the half-written file goes and ``final`` is untouched
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``final`` atomically (see :func:`atomic_path`); returns ``final``."""
    with atomic_path(final, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(
    final: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = False
) -> Path:
    """Write ``text`` to ``final`` atomically (see :func:`atomic_path`); returns ``final``."""
    with atomic_path(final, fsync=fsync) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(final)
