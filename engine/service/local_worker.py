"""What the coordinator's local process pool runs in each worker, besides the pipeline.

**Its tie to the coordinator: it must not outlive it.** A worker left running after its coordinator was
killed (``kill -9``, the OOM killer) would keep a CPU and a subject's memory, and a restarted engine would
run the same job again beside it. So each worker of the local pool, as it starts (:func:`die_with_parent`,
the pool's initializer):

- asks Linux to SIGKILL it when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
- exits at once if its parent died before that was armed (it was still starting), seen as
  ``os.getppid()`` no longer being the coordinator's pid (an orphan is re-parented);
- starts a watchdog thread that checks the same every :data:`PARENT_CHECK_S` and exits, for systems
  without prctl (macOS) or a C library it cannot be found in.

**Which process runs which job** (:func:`run_noting_pid`): each job notes its worker's pid in its scratch
folder. When one worker dies (the OOM killer, a crash in native code), the pool fails every job it was
running and terminates the other workers (SIGTERM); the coordinator then charges the failed attempt only
to the job whose worker died on its own, and re-queues the bystanders without counting theirs.

Light on purpose (no pandas, no store): the pool's worker processes import it before any work.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKER_PID_FILE = "WORKER"  # in a job's scratch folder: the pid of the worker process running it
PARENT_CHECK_S = 1.0  # how often a worker checks that its coordinator still lives
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where prctl is not to be had."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):  # not Linux (no prctl in the C library)
        return False


def watch_parent(parent_pid: int, *, interval_s: float = PARENT_CHECK_S,
                 exit_now: Callable[[int], object] = os._exit) -> None:
    """Block until this process's parent is no longer ``parent_pid`` (it died), then ``exit_now(1)``."""
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    exit_now(1)


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: tie this worker's life to its coordinator's (``parent_pid``), as the module says."""
    set_parent_death_signal()
    if os.getppid() != parent_pid:  # orphaned already, before the signal was armed
        os._exit(1)
    threading.Thread(target=watch_parent, args=(parent_pid,), name="msmv-watch-parent", daemon=True).start()


def run_noting_pid(pipeline: Callable[..., Any], job_id: str, package: str, work_dir: str, *args: Any) -> Any:
    """Run ``pipeline`` for one job after noting this worker's pid in ``work_dir`` (:data:`WORKER_PID_FILE`)."""
    (Path(work_dir) / WORKER_PID_FILE).write_text(str(os.getpid()))
    return pipeline(job_id, package, work_dir, *args)


def worker_pid(work_dir: str | os.PathLike[str]) -> int | None:
    """The pid noted by :func:`run_noting_pid` in a job's scratch folder, or None (the job never started)."""
    try:
        text = (Path(work_dir) / WORKER_PID_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
