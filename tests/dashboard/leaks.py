"""What a page hands the browser that would single out a participant.

Shared by the AppTests (the element protos a run produced) and the browser test (what Chromium drew):
eids as text or as Arrow int64 cells, plotly traces that carry one point per person, and counts
below the small-count threshold.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

# A whole decimal number: not the tail of a longer number or of a fraction ("4523.1234567").
_NUMBER = re.compile(rb"(?<![\d.])\d{5,}(?!\d)")
SUMMARY_POINTS = 60  # more markers than any aggregate chart draws (27 structures, a few outcomes)


def eid_hits(blob: bytes, eids: Iterable[int]) -> set[int]:
    """The ``eids`` found in ``blob``: as a decimal token (JSON, text) or a little-endian int64 (Arrow)."""
    wanted = {int(e) for e in eids}
    found = {int(m) for m in _NUMBER.findall(blob)} & wanted
    return found | {e for e in wanted - found if struct.pack("<q", e) in blob}


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def decoded(obj: Any) -> Any:
    """A plotly JSON value with its typed arrays (``{"dtype": "f8", "bdata": base64}``) as lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            values = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if "shape" in obj:
                values = values.reshape([int(n) for n in str(obj["shape"]).split(",")])
            return np.where(np.isnan(values), None, values).tolist() if values.dtype.kind == "f" else values.tolist()
        return {k: decoded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decoded(v) for v in obj]
    return obj


def figure_specs(at: AppTest) -> list[dict]:
    """The plotly figures of a run, typed arrays decoded."""
    return [decoded(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]


def rendered_bytes(at: AppTest) -> bytes:
    """Every element and block of a finished run as sent to the browser, plus the figures' arrays as text
    (plotly ships numbers base64-encoded, where no eid would be seen)."""
    protos = [n.proto.SerializeToString() for n in _nodes(at._tree) if getattr(n, "proto", None) is not None]
    return b"".join([*protos, *(json.dumps(spec).encode() for spec in figure_specs(at))])


def trace_leaks(traces: Iterable[dict], min_count: int) -> list[str]:
    """Why any of these plotly traces (figure JSON ``data`` entries) shows individual participants."""
    problems = []
    for i, t in enumerate(traces):
        kind, name = t.get("type", "scatter"), str(t.get("name", ""))
        points = max(len(t.get("x") or []), len(t.get("y") or []))
        if kind == "scattergl":
            problems.append(f"trace {i} ({name}): scattergl, one point per participant")
        if kind in ("scatter", "scattergl") and ("outlier" in name.lower() or points > SUMMARY_POINTS):
            problems.append(f"trace {i} ({name}): {points} markers")
        if kind == "box" and (t.get("boxpoints") not in (False, None) or "q1" not in t):
            problems.append(f"trace {i} ({name}): a box that ships its values or points")
        if kind in ("histogram", "histogram2d", "histogram2dcontour"):
            problems.append(f"trace {i} ({name}): {kind} ships every value to the browser")
        if kind == "heatmap":  # a heatmap of counts (all cells whole numbers) is a density of people
            cells = [v for row in t.get("z") or [] for v in (row if isinstance(row, list) else [row])]
            numbers = [float(v) for v in cells if isinstance(v, int | float)]
            small = [v for v in numbers if 0 < v < min_count]
            if small and all(v.is_integer() for v in numbers):
                problems.append(f"trace {i} ({name}): {len(small)} density cells below {min_count}")
    return problems


def small_count_cells(values: Iterable[object], min_count: int) -> list[object]:
    """Counts shown as numbers below ``min_count`` ("<5" and numbers at or above it are fine)."""
    out = []
    for v in values:
        text = str(v).replace(",", "").strip()
        if re.fullmatch(r"\d+", text) and int(text) < min_count:
            out.append(v)
    return out
