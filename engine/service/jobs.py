"""The jobs read model for the UI and CLI: the jobs table with live stages and queued packages, stage timings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from engine.interop import bundle as label_bundles
from engine.service.pipeline import read_stage
from store.errors import NoSnapshotError
from store.home import Home
from store.reader import Reader

JOB_COLUMNS = ["eid", "status", "stage", "attempts", "error", "seconds"]


def jobs_table(home: Home) -> pd.DataFrame:
    """Jobs from the published snapshot, with the live stage of running jobs and what waits in the inbox
    unclaimed: packages, and label imports sealed by ``msmv import-labels`` while the engine held the store."""
    try:
        with Reader(home) as r:
            jobs = r.jobs()
    except NoSnapshotError:
        jobs = pd.DataFrame(columns=["job_id", *JOB_COLUMNS, "timings"])
    live = [read_stage(home.work / str(j)) if s == "running" else None
            for j, s in zip(jobs["job_id"], jobs["status"], strict=True)]
    jobs["stage"] = [lv or st for lv, st in zip(live, jobs["stage"], strict=True)]
    waiting = sorted(p.stem for p in home.inbox.glob("*.zip")) if home.inbox.exists() else []
    rows = [{"job_id": w[:16], "status": "queued", "stage": "inbox", "attempts": 0} for w in waiting]
    rows += [_waiting_import(p) for p in label_bundles.waiting(home)]
    if rows:
        extra = pd.DataFrame(rows)
        jobs = pd.concat([jobs, extra], ignore_index=True) if len(jobs) else extra
    return jobs


def _waiting_import(path: Path) -> dict[str, object]:
    """A label import sealed into the inbox, not yet claimed: its id (the job's, once claimed) and eid."""
    try:
        request = label_bundles.read_request(path)
    except label_bundles.BundleError:  # the engine fails it with the reason when it claims it
        return {"job_id": path.name.removesuffix(label_bundles.BUNDLE_SUFFIX), "status": "queued",
                "stage": f"inbox ({label_bundles.JOB_STAGE})", "attempts": 0}
    return {"job_id": request.bundle_id, "eid": request.eid, "status": "queued",
            "stage": f"inbox ({label_bundles.JOB_STAGE})", "attempts": 0}


def stage_timings(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per-stage seconds of finished jobs in long form: ``job_id, eid, stage, seconds``."""
    rows = []
    for _, job in jobs.iterrows():
        text = job.get("timings")
        if not isinstance(text, str) or not text:
            continue
        for stage_name, seconds in json.loads(text).items():
            rows.append({"job_id": job["job_id"], "eid": job.get("eid"), "stage": stage_name,
                         "seconds": float(seconds)})
    return pd.DataFrame(rows, columns=["job_id", "eid", "stage", "seconds"])
