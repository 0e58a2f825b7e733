"""Streamlit entry point: ``streamlit run dashboard/app.py`` (``make run`` does this)."""

from __future__ import annotations

import streamlit as st

from dashboard.registry import PAGES


def main() -> None:
    st.set_page_config(page_title="MSMV", page_icon=":material/accessibility_new:", layout="wide")
    pages = [
        st.Page(str(p.path), title=p.title, icon=p.icon, url_path=p.url_path, default=(i == 0))
        for i, p in enumerate(PAGES)
    ]
    if not pages:
        st.error("No dashboard page is installed (expected files under pages/).")
        return
    st.navigation(pages).run()


main()
