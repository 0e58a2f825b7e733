"""Published read snapshots: how the writer hands consistent copies of the store to readers.

The writer checkpoints its database (so the file alone holds every committed transaction), copies
the file to a temporary name inside ``snapshots/``, and ``os.replace``-s it to
``snapshot-<version>.duckdb``; then it points ``CURRENT`` at it, again by ``os.replace``. A reader
reads ``CURRENT`` and opens that file read-only, so it sees either the old or the new snapshot,
never a half-written one. Old snapshots are pruned, keeping the newest ``MSMV_KEEP_SNAPSHOTS``
(an already-open reader keeps reading a pruned file: POSIX unlink leaves open files readable).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from store import settings
from store.errors import NoSnapshotError
from store.files import atomic_path, atomic_write_text
from store.home import Home

CURRENT_NAME = "CURRENT"
_SNAPSHOT = re.compile(r"^snapshot-(\d+)\.duckdb$")
_HINT = "run `msmv demo` (or `make run`) to build the demo store, or import data with `msmv import-phenotypes`"


def snapshot_name(version: int) -> str:
    return f"snapshot-{version}.duckdb"


def install(home: Home, db_file: Path, version: int) -> Path:
    """Copy a checkpointed database file into place as snapshot ``version``; point CURRENT at it."""
    home.snapshots.mkdir(parents=True, exist_ok=True)
    final = home.snapshots / snapshot_name(version)
    # fsync: a published snapshot and its pointer must survive a power cut, not only a killed writer
    with atomic_path(final, fsync=True) as tmp:
        shutil.copyfile(db_file, tmp)
    atomic_write_text(home.snapshots / CURRENT_NAME, final.name + "\n", fsync=True)
    prune(home)
    return final


def available(home: Home) -> list[tuple[int, Path]]:
    """Published snapshots as (version, path), oldest first."""
    if not home.snapshots.is_dir():
        return []
    found = []
    for p in home.snapshots.iterdir():
        if m := _SNAPSHOT.match(p.name):
            found.append((int(m[1]), p))
    return sorted(found)


def prune(home: Home, keep: int | None = None) -> None:
    """Delete all but the newest ``keep`` snapshots (default: the ``MSMV_KEEP_SNAPSHOTS`` setting), and
    temporary files left by a killed writer."""
    keep = settings.get("MSMV_KEEP_SNAPSHOTS") if keep is None else keep
    snaps = available(home)
    current = current_path(home, missing_ok=True)
    for _, p in snaps[:-keep] if keep > 0 else snaps:
        if p != current:
            p.unlink(missing_ok=True)
    mine = f".{os.getpid()}.tmp"
    for p in home.snapshots.glob(".*.tmp"):  # only the lock holder publishes: others' are leftovers
        if not p.name.endswith(mine):
            p.unlink(missing_ok=True)


def current_path(home: Home, *, missing_ok: bool = False) -> Path | None:
    """The newest published snapshot (via CURRENT, else the highest version on disk)."""
    pointer = home.snapshots / CURRENT_NAME
    try:
        name = pointer.read_text(encoding="utf-8").strip()
        if _SNAPSHOT.match(name) and (home.snapshots / name).is_file():
            return home.snapshots / name
    except FileNotFoundError:
        pass
    snaps = available(home)
    if snaps:
        return snaps[-1][1]
    if missing_ok:
        return None
    raise NoSnapshotError(f"no published MSMV store snapshot in {home.snapshots}; {_HINT}")
