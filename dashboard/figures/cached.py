"""Figures as the dashboard's caches keep them: plain dicts, rebuilt without plotly's validation.

``st.cache_data`` pickles what it keeps and unpickles a copy on every hit. A ``go.Figure`` unpickles
through its validating constructor (the default template alone is hundreds of validated
properties): about 40 ms a figure, which made reading the Cohort page's five cached figures cost more
than computing its tables. :func:`packed` turns each figure of a result (alone, or in a tuple, list or
dict) into its dict, :func:`unpacked` builds the figure again from that already validated dict with
validation off (about 4 ms), giving the same JSON.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


class FigureDict(dict):
    """A figure's ``to_dict()``, marked so that :func:`unpacked` knows to rebuild it."""


def packed(value: Any) -> Any:
    """``value`` with every ``go.Figure`` in it (alone, or in a tuple, list or dict) as a :class:`FigureDict`."""
    if isinstance(value, go.Figure):
        return FigureDict(value.to_dict())
    if type(value) in (tuple, list):
        return type(value)(packed(v) for v in value)
    if type(value) is dict:
        return {k: packed(v) for k, v in value.items()}
    return value


def unpacked(value: Any) -> Any:
    """The inverse of :func:`packed`: each :class:`FigureDict` a ``go.Figure`` again (not re-validated)."""
    if isinstance(value, FigureDict):
        return go.Figure(dict(value), _validate=False)
    if type(value) in (tuple, list):
        return type(value)(unpacked(v) for v in value)
    if type(value) is dict:
        return {k: unpacked(v) for k, v in value.items()}
    return value
