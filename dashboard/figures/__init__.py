"""Pure plotly figure builders ``(DataFrame, options) -> go.Figure``: no Streamlit, no store access."""
