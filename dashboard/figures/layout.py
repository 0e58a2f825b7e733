"""Fixed figure margins: the plot area is laid out once in the browser instead of redrawn until it fits.

Streamlit's plotly theme (like plotly.py's default template) turns ``automargin`` on for every axis:
plotly.js then measures the tick labels and titles after drawing, widens the margins and draws the
whole figure again, often twice. Measured in headless Chromium on the Cohort and Concordance
figures at 37,004 participants (Plotly.newPlot, median of 5, busy 2-core machine): 3.5-5.1 s for
the eleven figures with automargin, 1.6-2.1 s with it off. Figures whose margins hold their labels
(numeric ticks, one-line axis titles, which plotly keeps inside the margins) declare them with
:func:`fixed_margins`.
"""

from __future__ import annotations

import plotly.graph_objects as go


def fixed_margins(fig: go.Figure, *, l: int, r: int, t: int, b: int) -> go.Figure:  # noqa: E741 (plotly's names)
    """``fig`` with these margins (px) and no axis or the title widening them; returned for chaining."""
    fig.update_layout(margin=dict(l=l, r=r, t=t, b=b), title_automargin=False)
    fig.update_xaxes(automargin=False)
    fig.update_yaxes(automargin=False)
    return fig
