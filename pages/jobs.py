"""Jobs: the engine's queue, failures with reasons, per-stage timings, and package upload."""

import streamlit as st

from dashboard.figures.jobs import stage_timing_figure, status_counts
from engine.service import inbox
from engine.service.jobs import JOB_COLUMNS, jobs_table, stage_timings
from store.home import home

st.title("Jobs")
h = home()

with st.expander("Upload a Dixon package", icon=":material/upload:"):
    limit_mb = int(st.get_option("server.maxUploadSize"))
    st.caption(f"A UK Biobank bulk file `{{eid}}_20201_2_0.zip` (DICOM + manifest), at most {limit_mb} MB. "
               "It is checked, queued by content hash, and processed by the engine (`make run` starts it).")
    upload = st.file_uploader("Package", type=["zip"], accept_multiple_files=False)
    if upload is not None and st.button("Queue it", icon=":material/playlist_add:"):
        result = inbox.submit_upload(h, upload.name, upload.getvalue(), max_bytes=limit_mb * 2**20)
        if result.status == "queued":
            st.success(f"Queued {upload.name} ({result.sha256[:12]}…).")
        elif result.status == "already queued":
            st.info(f"{upload.name}: {result.message}")
        else:
            st.error(result.message)


@st.fragment(run_every=5)
def queue() -> None:
    jobs = jobs_table(h)
    counts = status_counts(jobs)
    cols = st.columns(4)
    for col, (status, n) in zip(cols, counts.items(), strict=True):
        col.metric(status.capitalize(), n)
    if jobs.empty:
        st.info("No jobs yet. Submit packages with `msmv submit PATH` or upload one above.")
        return
    st.subheader("Queue")
    st.dataframe(jobs.reindex(columns=["job_id", *JOB_COLUMNS]), hide_index=True, width="stretch")
    failed = jobs[jobs["status"] == "failed"]
    if len(failed):
        st.subheader("Failures")
        st.dataframe(failed.reindex(columns=["eid", "stage", "attempts", "error"]), hide_index=True, width="stretch")
    timings = stage_timings(jobs[jobs["status"] == "done"]) if "timings" in jobs else None
    if timings is not None and len(timings):
        st.plotly_chart(stage_timing_figure(timings), width="stretch")


queue()
