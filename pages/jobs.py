"""Jobs: the engine's queue, failures with reasons, per-stage timings, and package upload."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.access import current_access, sign_in_prompt
from dashboard.figures.jobs import stage_timing_figure, status_counts
from dashboard.markup import literal
from dashboard.uploads import queue_upload
from engine.service.jobs import JOB_COLUMNS, stage_timings

QUEUE_REFRESH_S = 5  # the queue redraws itself this often while the page is open


def _upload() -> None:
    limit_mb = int(st.get_option("server.maxUploadSize"))
    st.caption(f"A UK Biobank bulk file `{{eid}}_20201_2_0.zip` (DICOM + manifest), at most {limit_mb} MB. "
               "It is checked, queued by content hash, and processed by the engine (`make run` starts it).")
    st.caption("Larger or many packages: `msmv submit PATH…` (zips, folders of zips, DICOM folders) or copy "
               "them into the inbox folder, `MSMV_HOME/inbox/`; the browser holds an upload whole in memory.")
    if not current_access().participant_level:
        sign_in_prompt("upload packages")
        return
    upload = st.file_uploader("Package", type=["zip"], accept_multiple_files=False)
    if upload is not None and st.button("Queue it", icon=":material/playlist_add:"):
        result = queue_upload(upload.name, upload.getvalue(), max_bytes=limit_mb * 2**20)
        if result.status == "queued":
            st.success(f"Queued {literal(upload.name)} ({result.sha256[:12]}…).")
        elif result.status == "already queued":
            st.info(f"{literal(upload.name)}: {literal(result.message, limit=400)}")
        else:
            st.error(literal(result.message, limit=400))


@st.fragment(run_every=QUEUE_REFRESH_S)
def _queue() -> None:
    jobs = data.jobs()
    counts = status_counts(jobs)
    cols = st.columns(4)
    for col, (status, n) in zip(cols, counts.items(), strict=True):
        col.metric(status.capitalize(), n)
    if jobs.empty:
        st.info("No jobs yet. Submit packages with `msmv submit PATH` or upload one above.")
        return
    st.subheader("Queue")
    access = current_access()
    if not access.participant_level:  # jobs name participants (eid, file name) and their failures
        sign_in_prompt("see the queue, its participants and failures", access, key="jobs_queue_login")
        return
    st.dataframe(jobs.reindex(columns=["job_id", *JOB_COLUMNS]), hide_index=True, width="stretch")
    failed = jobs[jobs["status"] == "failed"]
    if len(failed):
        st.subheader("Failures")
        st.dataframe(failed.reindex(columns=["eid", "stage", "attempts", "error"]), hide_index=True, width="stretch")
    timings = stage_timings(jobs[jobs["status"] == "done"]) if "timings" in jobs else None
    if timings is not None and len(timings):
        st.plotly_chart(stage_timing_figure(timings), width="stretch")


def main() -> None:
    st.title("Jobs")
    with st.expander("Upload a Dixon package", icon=":material/upload:"):
        _upload()
    _queue()


main()
