"""Where MSMV keeps its data: ``MSMV_HOME`` (default ``./data``) and the fixed layout below it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store import settings


@dataclass(frozen=True)
class Home:
    """The folder layout under MSMV_HOME."""

    root: Path

    @property
    def store_db(self) -> Path:  # the writer's file: only the single writer opens it
        return self.root / "store" / "msmv.duckdb"

    @property
    def snapshots(self) -> Path:  # published read snapshots: readers open these read-only
        return self.root / "store" / "snapshots"

    @property
    def lock(self) -> Path:
        return self.root / "store" / "writer.lock"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def work(self) -> Path:  # scratch space for the engine; cleaned on restart
        return self.root / "work"

    @property
    def onnx_cache(self) -> Path:  # ONNX exports, one per weights checksum (written atomically); kept on restart
        return self.root / "cache" / "onnx"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def artifact_dir(self, eid: int | str, instance: int | None = None) -> Path:
        """A participant's artifact folder, or that of one imaging visit (``<eid>/<instance>``) inside it."""
        folder = self.artifacts / str(eid)
        return folder if instance is None else folder / str(instance)

    def ensure(self) -> Home:
        for p in (self.store_db.parent, self.snapshots, self.inbox, self.artifacts, self.work):
            p.mkdir(parents=True, exist_ok=True)
        return self


def home(path: str | os.PathLike[str] | None = None) -> Home:
    """The MSMV home: ``path``, else the ``MSMV_HOME`` setting (default ``./data``)."""
    root = Path(path) if path is not None else Path(settings.get("MSMV_HOME"))
    return Home(root.expanduser().resolve())
