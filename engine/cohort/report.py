"""A one-page PDF report of one participant: EWGSOP2 status, derived metrics and every structure
against the same-sex ±5-year reference group (:mod:`engine.cohort.reference`).

:func:`report_content` assembles the text and tables (pure, testable); :func:`report_pdf` lays them
out on one A4 page with matplotlib (no display needed) and returns the PDF bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from engine.cohort.reference import ewgsop2_status
from store.metrics import column_title
from store.vocabulary import SEX_WORDS

A4_INCHES = (8.27, 11.69)
SIMULATED_NOTE = "Simulated data: not a UK Biobank participant; no clinical conclusion may be drawn."


@dataclass(frozen=True)
class ReportContent:
    title: str
    header: tuple[str, ...]
    status: str
    derived: pd.DataFrame  # display strings
    structures: pd.DataFrame  # display strings
    simulated: bool


def _fmt(v: object, digits: int = 1) -> str:
    if v is None:
        return "–"
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return "–" if math.isnan(x) else f"{x:,.{digits}f}"


def report_content(row: pd.Series, structures: pd.DataFrame, derived: pd.DataFrame, *,
                   group_description: str, simulated: bool = False) -> ReportContent:
    """Text and tables of the report.

    ``row``: the participant's wide-table row; ``structures``: :func:`engine.cohort.reference.structure_table`;
    ``derived``: :func:`engine.cohort.reference.compare` over derived metrics.
    """
    for name, frame, need in (("structures", structures, {"name", "left_cm3", "right_cm3", "asymmetry_pct",
                                                             "fat_fraction", "percentile", "z_score"}),
                              ("derived", derived, {"column", "value", "percentile", "z_score", "n_ref"})):
        missing = sorted(need - set(frame.columns))
        if missing:
            raise ValueError(f"{name} table lacks columns {missing}")
    eid = int(row["eid"])
    sex = None if pd.isna(row.get("sex")) else SEX_WORDS.get(int(row["sex"]), "unknown")
    age = row.get("age")
    header = (
        f"Participant {eid} · {sex or 'sex unknown'} · age {_fmt(age, 0)} years · height {_fmt(row.get('height_cm'))} cm"
        f" · BMI {_fmt(row.get('bmi'))} kg/m²",
        f"Reference group: {group_description} (same sex, ±5 years, the participant excluded)",
    )
    d = pd.DataFrame({
        "Metric": [column_title(c) for c in derived["column"]],
        "Value": [_fmt(v, 3 if c in ("tvi", "pa_ratio") else 1) for c, v in zip(derived["column"], derived["value"],
                                                                                  strict=True)],
        "Percentile": [_fmt(v, 0) for v in derived["percentile"]],
        "z": [_fmt(v, 2) for v in derived["z_score"]],
        "n ref": [f"{int(n):,}" for n in derived["n_ref"]],
    })
    s = pd.DataFrame({
        "Structure": structures["name"],
        "Left cm³": [_fmt(v) for v in structures["left_cm3"]],
        "Right cm³": [_fmt(v) for v in structures["right_cm3"]],
        "Asym %": [_fmt(v) for v in structures["asymmetry_pct"]],
        "FF": [_fmt(v, 3) for v in structures["fat_fraction"]],
        "Pctl": [_fmt(v, 0) for v in structures["percentile"]],
        "z": [_fmt(v, 2) for v in structures["z_score"]],
    })
    return ReportContent(f"MSMV muscle report · participant {eid}", header, f"EWGSOP2: {ewgsop2_status(row)}",
                         d, s, simulated)


def _table(ax, frame: pd.DataFrame, fontsize: float) -> None:  # ax: matplotlib Axes
    ax.axis("off")
    t = ax.table(cellText=frame.to_numpy().tolist(), colLabels=list(frame.columns), loc="upper center",
                 cellLoc="right", colLoc="right", edges="horizontal")
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    t.auto_set_column_width(list(range(frame.shape[1])))
    for (r, c), cell in t.get_celld().items():
        if c == 0:
            cell.set_text_props(ha="left")
        if r == 0:
            cell.set_text_props(weight="bold")


def report_pdf(content: ReportContent, *, software_version: str = "", fmt: str = "pdf") -> bytes:
    """Lay ``content`` out on one A4 page; the PDF's metadata names the participant and the software.

    ``fmt="png"`` renders the same page as an image (a preview).
    """
    if fmt not in ("pdf", "png"):
        raise ValueError(f"report format must be 'pdf' or 'png', found {fmt!r}")
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4_INCHES)
    fig.text(0.06, 0.965, content.title, fontsize=14, weight="bold", va="top")
    y = 0.94
    for line in content.header:
        fig.text(0.06, y, line, fontsize=8.5, va="top")
        y -= 0.017
    fig.text(0.06, y - 0.004, content.status, fontsize=10, weight="bold", va="top", color="#7a1f1f")
    if content.simulated:
        fig.text(0.06, y - 0.026, SIMULATED_NOTE, fontsize=8, va="top", color="#a15c00", style="italic")
    _table(fig.add_axes((0.06, 0.63, 0.88, 0.22)), content.derived, 7.5)
    fig.text(0.06, 0.635, "Structures (volume percentile and z-score of left + right)", fontsize=9, weight="bold")
    _table(fig.add_axes((0.06, 0.05, 0.88, 0.575)), content.structures, 7)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.text(0.06, 0.02, f"MSMV {software_version} · {stamp} · percentile = share of the reference group with "
             "a smaller value (ties count half); z = (value − mean) / SD", fontsize=6, color="#666")
    buf = io.BytesIO()
    if fmt == "pdf":
        fig.savefig(buf, format="pdf", metadata={"Title": content.title, "Creator": f"MSMV {software_version}".strip()})
    else:
        fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
