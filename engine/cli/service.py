"""``msmv engine``, ``msmv submit`` and ``msmv jobs``: the background queue from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light modules only at the top: the coordinator, pipeline, reader (pandas, DuckDB) and tqdm load in
# the handlers, so `msmv --help` does not pay for them.
from store import settings
from store.errors import NoSnapshotError
from store.home import home

if TYPE_CHECKING:
    from store.home import Home


def _default(name: str) -> str:
    return f"${name} or {settings.default(name)}"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "engine", help="run the engine service: claim queued packages, process them, commit results",
        description="Claims packages from MSMV_HOME/inbox and runs ingest → fuse → segment → measure for each "
                    "in worker processes (or on a Dask cluster with --scheduler); only this process writes the "
                    "store. Safe to kill at any moment: a restart resumes the queue.")
    # Defaults stay None here and are read when the command runs, so a bad variable is reported as an
    # error of `msmv engine` rather than breaking every command's --help.
    p.add_argument("--workers", type=int, help=f"local worker processes (default {_default('MSMV_ENGINE_WORKERS')})")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (workers need MSMV_HOME)")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--checkpoint", type=Path, help="segmentation checkpoint (default: the active one)")
    p.add_argument("--max-attempts", type=int,
                   help=f"tries per package before it is marked failed (default {_default('MSMV_MAX_ATTEMPTS')})")
    p.add_argument("--threads", type=int, help=f"torch threads per worker (default {_default('MSMV_ENGINE_THREADS')})")
    p.add_argument("--pipeline", help=argparse.SUPPRESS)  # module:function, for custom/test pipelines
    p.set_defaults(func=run_engine)

    s = subparsers.add_parser("submit", help="queue Dixon packages (zips, folders of zips, DICOM folders)")
    s.add_argument("paths", nargs="+", type=Path)
    s.add_argument("--force", action="store_true", help="process again even if this content was processed")
    s.set_defaults(func=run_submit)

    j = subparsers.add_parser("jobs", help="list the engine's jobs")
    j.add_argument("--json", action="store_true", help="print JSON instead of a table")
    j.set_defaults(func=run_jobs)


def run_engine(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.service.coordinator import Engine
    from engine.service.pipeline import PipelineOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    h = home()
    threads = settings.get("MSMV_ENGINE_THREADS") if args.threads is None else args.threads
    options = PipelineOptions(checkpoint=str(args.checkpoint) if args.checkpoint else None, home=str(h.root),
                              torch_threads=threads)
    bar = tqdm(desc="subjects", unit="subject", file=sys.stderr, disable=not args.once)

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind in ("done", "failed"):
            bar.update()
            bar.set_postfix_str(f"last {kind}: {info.get('eid', info.get('job_id'))}")
        if kind in ("failed", "retry"):
            tqdm.write(f"{kind}: job {info['job_id']} at {info['stage']}: {info['error']}", file=sys.stderr)

    eng = Engine(h, workers=args.workers, scheduler=args.scheduler, max_attempts=args.max_attempts,
                 options=options, pipeline=args.pipeline, on_event=on_event)
    signal.signal(signal.SIGTERM, lambda *_: eng.stop())
    where = args.scheduler or f"{eng.workers} local worker(s)"
    print(f"msmv engine: watching {h.inbox} with {where}" + (" until the queue is empty" if args.once else ""),
          file=sys.stderr)
    stats = eng.run(once=args.once)
    bar.close()
    print(f"done {stats.done}, failed {stats.failed}, retried {stats.retried}", file=sys.stderr)
    return 0 if stats.failed == 0 else 1


def _known_hashes(h: Home) -> set[str]:
    from store.reader import Reader

    try:
        with Reader(h) as r:
            jobs = r.jobs()
    except NoSnapshotError:
        return set()
    return {str(s) for s in jobs["input_sha256"].dropna()}


def run_submit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.service import inbox

    h = home()
    known = set() if args.force else _known_hashes(h)
    paths = list(inbox.expand(args.paths))
    results = []
    for path in tqdm(paths, desc="submit", unit="package", file=sys.stderr, disable=len(paths) < 2):
        results.extend(inbox.submit(h, [path], force=args.force, known=known))
    for r in results:
        line = f"{r.status:15s} {r.source}"
        print(line + (f"  ({r.message})" if r.message else ""))
    return 1 if any(r.status == "rejected" for r in results) else 0


def run_jobs(args: argparse.Namespace) -> int:
    from engine.service.jobs import JOB_COLUMNS, jobs_table

    jobs = jobs_table(home())
    cols = ["job_id", *JOB_COLUMNS]
    out = jobs.reindex(columns=cols)
    if args.json:
        records = json.loads(out.to_json(orient="records"))
        print(json.dumps(records, indent=1))
    elif out.empty:
        print("no jobs")
    else:
        print(out.to_string(index=False, na_rep=""))
    return 0
