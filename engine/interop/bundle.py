"""Label-import bundles: one converted, measured subject waiting for the store's single writer.

``msmv import-labels`` converts and measures in its own process (no store needed) and seals the result
in a bundle: a folder holding the converted label map, the meshes and ``request.json`` (the rows to
commit, provenance, artifact checksums). The bundle is built under ``MSMV_HOME/inbox/.labels-building-*`` and
renamed whole to ``inbox/<id>.labels``, as packages are, so the inbox never holds half a bundle. Whoever
holds the writer then claims and commits it -- the running engine's coordinator, or the command itself
as a one-shot writer when no engine runs:

- **claim** (:func:`claim_bundle`): a job row ``<id>`` (stage ``label import``) is added, then the bundle
  moves to ``MSMV_HOME/packages/<id>.labels``. A crash in between only repeats the move.
- **commit** (:func:`commit_job`): the bundle folder is renamed to the subject's import folder
  ``artifacts/<eid>/imports/<instance>/<source>/`` (an earlier import of that source set aside first),
  then the rows, the artifacts and the job's ``done`` commit in one transaction. A failure puts the
  earlier folder back and marks the job failed with the reason; a crash leaves the job queued and the
  next writer commits it again from wherever the folder got to. Nothing is ever half-committed.

Imports live apart from the engine's ``artifacts/<eid>/<instance>/`` folder, which the engine replaces
whole when it processes a subject again. Light on purpose (no numpy): the coordinator imports it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from store.files import atomic_path, sha256_file
from store.home import Home
from store.vocabulary import LABEL_IMPORT_KIND

BUNDLE_SUFFIX = ".labels"
REQUEST_FILE = "request.json"
REQUEST_FORMAT = 1
#: What a label-import job shows as its stage in the Jobs table.
JOB_STAGE = "label import"
#: Bound on ``request.json``: 54 structure-side rows and a provenance record take ~ 20 kB.
MAX_REQUEST_BYTES = 4 * 2**20
#: A bundle holds the request and a few artifact files; anything more is not one of ours.
MAX_BUNDLE_ENTRIES = 8
PACKAGES_DIR = "packages"  # the coordinator's name for claimed inputs (engine.service.coordinator)
# Bundles are built in "<_STAGING><pid>-<random>": not the packages' ".incoming-" prefix, which an engine
# (re)starting clears at once, even under an import still building its bundle; a stale one (its process
# gone) is removed when bundles are next claimed.
_STAGING = ".labels-building-"
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_BUNDLE_ID = re.compile(r"^[0-9a-f]{24}$")


class BundleError(EngineError, ValueError):
    """A bundle that cannot be committed: unreadable request, missing or changed file, wrong layout."""


@dataclass(frozen=True)
class Request:
    """What to commit for one subject (``request.json``)."""

    bundle_id: str
    eid: int
    instance: int
    source: str
    metrics: list[dict[str, Any]]
    compartments: list[dict[str, Any]]
    provenance: dict[str, Any]
    artifacts: list[dict[str, str]]  # kind, file (in the bundle), sha256
    input: str
    input_sha256: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step in the importing process
    submitted: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def seconds(self) -> float:
        return round(sum(self.timings.values()), 3)

    def to_json(self) -> str:
        return json.dumps({"format": REQUEST_FORMAT, **asdict(self)}, indent=1, default=float)


def new_bundle_id() -> str:
    return uuid.uuid4().hex[:24]


def folder_name(source: str) -> str:
    """The import folder of a source name: the name itself when it is a safe file name, else a slug and
    a short hash (``--source`` is free text: it never reaches the path as given)."""
    if _FILE_NAME.match(source) and source not in (".", ".."):
        return source
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", source).strip("._")[:40] or "source"
    return f"{slug}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def import_dir(home: Home, eid: int, instance: int, source: str) -> Path:
    """Where a committed import's label map and meshes live."""
    return home.artifact_dir(eid) / "imports" / str(instance) / folder_name(source)


def is_bundle(path: object) -> bool:
    """True for a job input that is a label-import bundle (not a Dixon package)."""
    return isinstance(path, str | os.PathLike) and str(path).endswith(BUNDLE_SUFFIX)


def staging(home: Home) -> Path:
    """A fresh folder in the inbox to build one bundle in (:func:`claim` removes it if this process dies)."""
    home.ensure()
    return Path(tempfile.mkdtemp(dir=home.inbox, prefix=f"{_STAGING}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_staging(home: Home) -> int:
    """Remove bundle folders whose building process is gone (a crashed import); returns how many."""
    removed = 0
    for folder in home.inbox.glob(f"{_STAGING}*") if home.inbox.exists() else []:
        pid = folder.name.removeprefix(_STAGING).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def seal(folder: Path, request: Request) -> Path:
    """Write ``request.json`` into ``folder`` (whose artifact files are already there, checksums in ``request``)
    and rename the folder whole into the inbox; returns the bundle's path."""
    with atomic_path(folder / REQUEST_FILE, prefix=".tmp-") as tmp:
        tmp.write_text(request.to_json(), encoding="utf-8")
    target = folder.parent / f"{request.bundle_id}{BUNDLE_SUFFIX}"
    os.replace(folder, target)
    return target


def waiting(home: Home) -> list[Path]:
    """Complete bundles in the inbox, oldest first."""
    if not home.inbox.exists():
        return []
    found = [p for p in home.inbox.glob(f"*{BUNDLE_SUFFIX}") if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _fail(where: Path, message: str) -> BundleError:
    return BundleError(f"label-import bundle {where.name}: {message}")


def _int(data: dict[str, Any], key: str, where: Path) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(where, f"{key} must be a positive whole number, found {value!r}")
    return value


def _list_of_dicts(data: dict[str, Any], key: str, where: Path) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _fail(where, f"{key} must be a list of objects")
    return value


def _timings(data: dict[str, Any], where: Path) -> dict[str, float]:
    value = data.get("timings", {})
    if not isinstance(value, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                              for v in value.values()):
        raise _fail(where, "timings must map step names to seconds")
    return {str(k): float(v) for k, v in value.items()}


def read_request(folder: Path) -> Request:
    """The request of a bundle (or of an installed import folder), bounded and checked before use."""
    path = folder / REQUEST_FILE
    try:
        with open(path, "rb") as fh:
            if not os.path.isfile(path) or os.fstat(fh.fileno()).st_size > MAX_REQUEST_BYTES:
                raise _fail(folder, f"{REQUEST_FILE} is not a file of at most {MAX_REQUEST_BYTES:,} bytes")
            raw = fh.read(MAX_REQUEST_BYTES + 1)
    except OSError as err:
        raise _fail(folder, f"cannot read {REQUEST_FILE}: {err.strerror or err}") from err
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(folder, f"{REQUEST_FILE} is not JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != REQUEST_FORMAT:
        raise _fail(folder, f"{REQUEST_FILE} is not a label-import request of format {REQUEST_FORMAT}")
    bundle_id = data.get("bundle_id")
    if not isinstance(bundle_id, str) or not _BUNDLE_ID.match(bundle_id):
        raise _fail(folder, f"bundle_id must be 24 hex digits, found {bundle_id!r}")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise _fail(folder, f"source must be a name of 1-200 characters, found {source!r}")
    artifacts = _list_of_dicts(data, "artifacts", folder)
    for art in artifacts:
        if not all(isinstance(art.get(k), str) for k in ("kind", "file", "sha256")) or not _FILE_NAME.match(art["file"]):
            raise _fail(folder, f"artifact entries need kind, a plain file name and sha256, found {art!r}")
    provenance = data.get("provenance")
    if not isinstance(provenance, dict):
        raise _fail(folder, "provenance must be an object")
    return Request(bundle_id, _int(data, "eid", folder), _int(data, "instance", folder), source,
                   _list_of_dicts(data, "metrics", folder), _list_of_dicts(data, "compartments", folder), provenance,
                   artifacts, str(data.get("input", "")), str(data.get("input_sha256", "")),
                   _timings(data, folder), str(data.get("submitted", "")))


def _check_files(folder: Path, request: Request) -> None:
    entries = list(folder.iterdir())
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise _fail(folder, f"holds {len(entries)} entries; a bundle holds at most {MAX_BUNDLE_ENTRIES}")
    for art in request.artifacts:
        path = folder / art["file"]
        if path.is_symlink() or not path.is_file():
            raise _fail(folder, f"{art['file']} is missing or not a regular file")
        if sha256_file(path) != art["sha256"]:
            raise _fail(folder, f"{art['file']} changed after the import measured it (checksum differs)")


def claimed_path(home: Home, bundle: Path) -> Path:
    """Where :func:`claim_bundle` moves ``bundle`` (the job's input path)."""
    return home.root / PACKAGES_DIR / bundle.name


def claim_bundle(w: Any, home: Home, bundle: Path) -> str | None:
    """Record a job for ``bundle`` and move it to ``packages/``; returns the job id (None: deleted unclaimed).

    ``w`` is the open :class:`store.writer.Writer`. A withdrawn participant's bundle is deleted with no job
    (as the coordinator does with their packages); an unreadable one becomes a failed job saying why.
    """
    target = claimed_path(home, bundle)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        request = read_request(bundle)
    except BundleError as err:
        job_id = bundle.name.removesuffix(BUNDLE_SUFFIX)
        job_id = job_id if _BUNDLE_ID.match(job_id) else new_bundle_id()
        if job_id not in set(w.jobs()["job_id"]):
            w.add_job(bundle, job_id=job_id)
        w.update_job(job_id, status="failed", stage=JOB_STAGE, error=str(err)[:2000])
        shutil.rmtree(bundle, ignore_errors=True)
        return job_id
    if w.is_withdrawn(request.eid):
        shutil.rmtree(bundle, ignore_errors=True)
        return None
    if request.bundle_id not in set(w.jobs()["job_id"]):  # present already: a crash came before the move
        w.add_job(target, eid=request.eid, instance=request.instance, input_sha256=request.input_sha256 or None,
                  job_id=request.bundle_id)
        w.update_job(request.bundle_id, stage=JOB_STAGE, attempts=1, seconds=request.seconds,
                     timings=request.timings or None)
    os.replace(bundle, target)
    return request.bundle_id


def claim(w: Any, home: Home) -> int:
    """Claim every waiting bundle (the coordinator's inbox scan); returns how many became jobs."""
    remove_stale_staging(home)
    return sum(1 for bundle in waiting(home) if claim_bundle(w, home, bundle) is not None)


@dataclass(frozen=True)
class Outcome:
    """What committing one queued label-import job did."""

    job_id: str
    eid: int | None
    error: str | None = None  # None: committed


def _optional_int(value: object) -> int | None:
    if value is None or (isinstance(value, float) and value != value):  # None, NaN or pandas' NA as float
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def commit_queued(w: Any, home: Home) -> list[Outcome]:
    """Commit every queued label-import job (:func:`commit_job`), one transaction each; a failure is that
    job's (marked failed with its reason) and the others go on."""
    jobs = w.jobs()
    out = []
    for job in jobs.to_dict("records"):
        if job["status"] != "queued" or not is_bundle(job["input_path"]):
            continue
        eid, instance = _optional_int(job.get("eid")), _optional_int(job.get("instance"))
        try:
            commit_job(w, home, str(job["job_id"]), str(job["input_path"]), eid, instance)
        except Exception as err:  # noqa: BLE001 - recorded on the job; the next one goes on
            out.append(Outcome(str(job["job_id"]), eid, str(err)))
            continue
        out.append(Outcome(str(job["job_id"]), eid))
    return out


def _installed(home: Home, eid: int | None, instance: int | None, job_id: str) -> Path | None:
    """The import folder a crash left installed but uncommitted (its request names this job)."""
    if eid is None or instance is None:
        return None
    root = home.artifact_dir(eid) / "imports" / str(instance)
    for folder in sorted(root.glob("*")) if root.exists() else []:
        try:
            if read_request(folder).bundle_id == job_id:
                return folder
        except BundleError:
            continue
    return None


def _committed(w: Any, job_id: str) -> bool:
    try:
        jobs = w.jobs()
        return bool((jobs.loc[jobs["job_id"] == job_id, "status"] == "done").any())
    except Exception:  # noqa: BLE001 - the store cannot say: treat it as not committed
        return False


def commit_job(w: Any, home: Home, job_id: str, input_path: str, eid: int | None = None,
               instance: int | None = None) -> int:
    """Install a claimed bundle's folder and commit its rows in one transaction; returns the provenance id.

    On any failure the earlier import folder is back in place, the bundle removed, the job marked failed
    with the reason and :class:`BundleError` (or the writer's error) raised.
    """
    bundle = Path(input_path)
    installed = False
    final = trash = None
    try:
        if bundle.is_dir():
            request = read_request(bundle)
            _check_files(bundle, request)
            final = import_dir(home, request.eid, request.instance, request.source)
            trash = final.with_name(f".{final.name}.old-{request.bundle_id}")
            final.parent.mkdir(parents=True, exist_ok=True)
            for stale in final.parent.glob(f".{final.name}.old-*"):
                if stale != trash:  # a crash after an earlier commit, before its tidy-up
                    shutil.rmtree(stale, ignore_errors=True)
            if final.exists():
                os.replace(final, trash)
            os.replace(bundle, final)
            installed = True
        else:
            found = _installed(home, eid, instance, job_id)  # a crash came between the rename and the commit
            if found is None:
                raise BundleError(f"label-import job {job_id}: its bundle {bundle.name} is gone; import it again")
            request, final = read_request(found), found
            trash = final.with_name(f".{final.name}.old-{request.bundle_id}")
            installed = True
            _check_files(final, request)
        artifacts = [{"kind": a["kind"], "path": str(final / a["file"]), "sha256": a["sha256"]}
                     for a in request.artifacts]
        prov = w.commit_subject(request.eid, request.metrics, artifacts, request.provenance, job_id=job_id,
                                instance=request.instance, source=request.source,
                                compartments=request.compartments, kind=LABEL_IMPORT_KIND)
    except Exception as err:  # a crash (or Ctrl-C) skips this: the job stays queued and is committed again
        if _committed(w, job_id):  # what failed came after the transaction (publishing a snapshot): keep it
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
            raise
        if installed and final is not None and final.exists():
            shutil.rmtree(final, ignore_errors=True)
        if trash is not None and trash.exists() and final is not None:
            os.replace(trash, final)  # the earlier import is back
        shutil.rmtree(bundle, ignore_errors=True)
        try:
            w.update_job(job_id, status="failed", stage=JOB_STAGE, error=str(err)[:2000])
        except Exception:  # noqa: BLE001 - the store failing as well (a full disk): the first error is the one to report
            pass
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return prov
