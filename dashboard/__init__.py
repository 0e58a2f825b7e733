"""MSMV dashboard: Streamlit entry point, UI kit and pure plotly figure builders."""
