"""QC flags per subject from what the store holds: the wide table and each metric set's provenance details.

Nothing here re-reads images or re-segments, so every stored subject gets the flags its stored results
allow: volumes, missing structures and asymmetry from the structure volumes; the z-scores against
same-sex participants of a similar age (:func:`engine.cohort.reference.band_z_scores`); and from the
engine's provenance details the segmentation confidence, the structures touching the scanned range's
ends, the corrected fat-water swaps and a degraded mesh stage (subjects processed before those were
recorded simply have none of them). Thresholds: :mod:`engine.quality.checks`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.cohort.reference import band_z_scores
from engine.quality.checks import (
    ASYMMETRY_PCT_MAX,
    BY_CODE,
    EDGE_MIN_SHARE,
    LOW_CONFIDENCE_SHARE_MAX,
    VOLUME_Z_MAX,
)
from store.structures import BY_LABEL, STRUCTURES, expected_inside
from store.vocabulary import volume_column

FLAG_COLUMNS = ["eid", "code", "structure", "value", "threshold", "reason"]
#: Per-subject columns of :attr:`QualityReport.subjects` (the numbers the Quality page's distributions draw).
SUBJECT_COLUMNS = ["eid", "qc_flag_count", "qc_flags", "low_confidence_share", "max_abs_z", "max_asymmetry_pct",
                   "missing_structures", "swapped_stations", "mesh_error"]


@dataclass(frozen=True)
class QualityReport:
    """``flags``: one row per flag (:data:`FLAG_COLUMNS`); ``subjects``: one row per imaged subject."""

    flags: pd.DataFrame
    subjects: pd.DataFrame

    @property
    def flagged(self) -> pd.DataFrame:
        """The subjects with at least one flag, most flags first."""
        s = self.subjects
        return s[s["qc_flag_count"] > 0].sort_values(["qc_flag_count", "eid"], ascending=[False, True])

    def counts(self) -> pd.DataFrame:
        """Per check: flags raised and subjects flagged (every declared check, zeros included)."""
        f = self.flags
        rows = [(c.code, c.title, int((f["code"] == c.code).sum()), int(f.loc[f["code"] == c.code, "eid"].nunique()))
                for c in BY_CODE.values()]
        return pd.DataFrame(rows, columns=["code", "check", "flags", "subjects"])


def parse_details(raw: Any) -> dict[str, Any]:
    """A provenance ``details`` value (JSON text or a dict) as a dict; empty for nothing or unreadable text."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return {}
    try:
        out = json.loads(str(raw))
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _not_measured(details: dict[str, Any]) -> set[str]:
    """Structure keys an import's mapping could not provide on some side ("sartorius right", ...)."""
    return {str(item).split(" ")[0] for item in details.get("not_measured") or []}


def quality_report(wide: pd.DataFrame, provenance: pd.DataFrame | None = None) -> QualityReport:
    """QC flags of every imaged participant of ``wide``.

    Parameters
    ----------
    wide
        The wide per-participant table (:meth:`store.reader.Reader.participants`) with ``eid``, ``sex``,
        ``age``, ``has_imaging`` and the structure volume columns; everyone in it is the reference.
    provenance
        ``eid``, ``instance``, ``details`` of each current metric set
        (:meth:`store.reader.Reader.imaging_provenance`); matched on ``imaging_instance`` when ``wide``
        has it. None: only the checks the volumes allow.
    """
    need = ["eid", "sex", "age", "has_imaging"]
    missing = [c for c in need if c not in wide.columns]
    if missing:
        raise ValueError(f"QC needs the wide-table columns {missing}")
    wide = wide.reset_index(drop=True)  # rows are addressed by position below
    imaged = wide[wide["has_imaging"].fillna(False).astype(bool)]
    details = _details_by_eid(imaged, provenance)
    present = [s for s in STRUCTURES if volume_column(s.key) in wide.columns]
    totals = [volume_column(s.key) for s in present]
    vol_all = wide[totals].apply(pd.to_numeric, errors="coerce")
    # a structure with no voxels is reported as missing, not as an outlier, and does not enter the reference
    z = band_z_scores(wide[["sex", "age"]].join(vol_all.where(vol_all > 0)), totals).loc[imaged.index].to_numpy()
    eids = imaged["eid"].astype("int64").to_numpy()
    vol = vol_all.loc[imaged.index].to_numpy(dtype=np.float64)

    def side(name: str) -> np.ndarray:
        cols = [volume_column(s.key, name) for s in present]
        frame = imaged.reindex(columns=cols).apply(pd.to_numeric, errors="coerce")
        return frame.to_numpy(dtype=np.float64)

    left, right = side("left"), side("right")
    # per subject, the index of its details among the distinct ones (the last index: none recorded), so
    # every per-details computation runs once per distinct details text, not once per subject
    pos = pd.Index(details.eids).get_indexer(eids)
    code = np.full(len(eids), len(details.uniques), dtype=np.int64)
    code[pos >= 0] = details.codes[pos[pos >= 0]]
    dets = [*details.uniques, {}]
    keys = [s.key for s in present]
    not_measured = np.array([[k in nm for k in keys] for nm in map(_not_measured, dets)],
                            dtype=bool).reshape(len(dets), len(present))[code]
    with np.errstate(invalid="ignore", divide="ignore"):
        asym = np.where(left + right > 0, np.abs(left - right) / ((left + right) / 2.0) * 100.0, np.nan)
    measured = vol > 0  # NaN compares False: a structure this source does not measure raises nothing
    miss = (vol <= 0) & ~not_measured
    outlier = measured & (np.abs(np.nan_to_num(z)) > VOLUME_Z_MAX)
    lopsided = measured & (np.nan_to_num(asym) > ASYMMETRY_PCT_MAX)
    flags: list[tuple[int, str, str, float, float, str]] = []
    for i, j in zip(*np.nonzero(miss), strict=True):
        flags.append((int(eids[i]), "structure_missing", present[j].key, 0.0, float("nan"),
                      f"{present[j].name}: no voxels (volume 0 cm³)"))
    for i, j in zip(*np.nonzero(outlier), strict=True):
        flags.append((int(eids[i]), "volume_outlier", present[j].key, float(z[i, j]), VOLUME_Z_MAX,
                      f"{present[j].name}: {vol[i, j]:,.1f} cm³ is z = {z[i, j]:+.1f} against same-sex "
                      f"participants of a similar age (|z| > {VOLUME_Z_MAX:g})"))
    for i, j in zip(*np.nonzero(lopsided), strict=True):
        flags.append((int(eids[i]), "asymmetry", present[j].key, float(asym[i, j]), ASYMMETRY_PCT_MAX,
                      f"{present[j].name}: left {left[i, j]:,.1f} cm³, right {right[i, j]:,.1f} cm³, asymmetry "
                      f"{asym[i, j]:.0f} % (> {ASYMMETRY_PCT_MAX:g} %)"))
    for u, d in enumerate(details.uniques):  # the same flags for every subject with these details
        template = _detail_flags(0, d)
        if template:
            flags.extend((int(e), *row[1:]) for e in details.eids[details.codes == u] for row in template)
    table = pd.DataFrame(flags, columns=FLAG_COLUMNS).astype({"eid": "int64"})
    order = {c: i for i, c in enumerate(BY_CODE)}
    table = table.sort_values(["eid", "code"], key=lambda c: c.map(order) if c.name == "code" else c,
                              kind="stable").reset_index(drop=True)
    text = _flag_text(table)
    count = table.groupby("eid").size() if len(table) else pd.Series(dtype="int64")
    max_z = _row_max(np.where(measured, np.abs(z), np.nan))
    max_a = _row_max(np.where(measured, asym, np.nan))
    share = np.array([_number(d.get("low_confidence_share")) for d in dets], dtype=np.float64)
    swapped = np.array([",".join(map(str, _stations(d))) for d in dets], dtype=object)
    mesh = np.array([str(d.get("mesh_error") or "") for d in dets], dtype=object)
    subjects = pd.DataFrame({
        "eid": eids,
        "qc_flag_count": pd.Series(eids).map(count).fillna(0).astype("int64").to_numpy(),
        "qc_flags": pd.Series(eids).map(text).fillna("").to_numpy(),
        "low_confidence_share": share[code],
        "max_abs_z": max_z,
        "max_asymmetry_pct": max_a,
        "missing_structures": miss.sum(axis=1).astype("int64"),
        "swapped_stations": swapped[code],
        "mesh_error": mesh[code],
    }, columns=SUBJECT_COLUMNS)
    subjects["low_confidence_share"] = subjects["low_confidence_share"].astype("float64")
    return QualityReport(table, subjects)


def _row_max(a: np.ndarray) -> np.ndarray:
    """Largest value per row ignoring NaN; NaN for a row with none (without nanmax's warning)."""
    empty = np.isnan(a).all(axis=1) if a.size else np.ones(a.shape[0], dtype=bool)
    filled = np.where(np.isnan(a), -np.inf, a)
    return np.where(empty, np.nan, filled.max(axis=1, initial=-np.inf))


def _stations(d: dict[str, Any]) -> list[int]:
    return [int(x) for x in d.get("swapped_stations") or [] if _number(x) is not None]


def _detail_flags(eid: int, d: dict[str, Any]) -> list[tuple[int, str, str, float, float, str]]:
    """The flags one subject's provenance details raise (confidence, scan-range edge, swaps, mesh)."""
    out: list[tuple[int, str, str, float, float, str]] = []
    share = _number(d.get("low_confidence_share"))
    if share is not None and share > LOW_CONFIDENCE_SHARE_MAX:
        out.append((eid, "low_confidence", "", share, LOW_CONFIDENCE_SHARE_MAX,
                    f"{share:.1%} of body voxels segmented with low confidence (> {LOW_CONFIDENCE_SHARE_MAX:.0%})"))
    for label, share in _edge_structures(d):
        s = BY_LABEL[label]
        if expected_inside(label):
            amount = "" if share is None else f" with {share:.0%} of its widest cross-section (>= {EDGE_MIN_SHARE:.0%})"
            out.append((eid, "touches_edge", s.key, float("nan") if share is None else share,
                        float("nan") if share is None else EDGE_MIN_SHARE,
                        f"{s.name} reaches the first or last slice of the scanned range{amount}, where it should "
                        "lie wholly inside: part of it may be missing"))
    swapped = _stations(d)
    if swapped:
        out.append((eid, "swap_corrected", "", float(len(swapped)), float("nan"),
                    f"fat-water swap corrected in station{'s' if len(swapped) > 1 else ''} "
                    f"{', '.join(map(str, swapped))}"))
    if d.get("mesh_error"):
        out.append((eid, "stage_degraded", "", float("nan"), float("nan"),
                    f"mesh stage failed ({str(d['mesh_error'])[:200]}); measurements kept, no 3-D view"))
    return out


def _edge_structures(d: dict[str, Any]) -> list[tuple[int, float | None]]:
    """The structures a subject's details say the scanned range cuts, with their edge share where recorded.

    ``edge_share`` (``{label: share of the widest cross-section in an end slice}``) is judged against
    :data:`EDGE_MIN_SHARE` here, so a stored subject follows the current threshold; details without it
    (processed before it was recorded) have only the engine's ``touches_edge`` list, taken as it is.
    """
    raw = d.get("edge_share")
    if isinstance(raw, dict):
        shares = {_label(k): _number(v) for k, v in raw.items()}  # an unknown label's key (None) is left out
        return sorted((k, v) for k, v in shares.items() if k is not None and v is not None and v >= EDGE_MIN_SHARE)
    return [(k, None) for k in sorted({_label(x) for x in d.get("touches_edge") or []} - {None})]


def _label(v: Any) -> int | None:
    """A structure label from stored JSON (``7`` or ``"7"``); None for anything else."""
    x = _number(v)
    return int(x) if x is not None and x == int(x) and int(x) in BY_LABEL else None


def _flag_text(table: pd.DataFrame) -> pd.Series:
    """Per eid of the sorted flag table, ``"asymmetry(piriformis); swap_corrected"``: each flag's code, with
    its structure key if any."""
    if not len(table):
        return pd.Series(dtype=str)
    code, key = table["code"].astype(str), table["structure"].astype(str)
    token = code.where(key == "", code + "(" + key + ")")
    return token.groupby(table["eid"], sort=True).agg("; ".join)


@dataclass(frozen=True)
class _Details:
    """Provenance details by eid, parsed once per distinct text: ``eids[i]``'s are ``uniques[codes[i]]``."""

    eids: np.ndarray
    codes: np.ndarray
    uniques: list[dict[str, Any]]


def _details_by_eid(imaged: pd.DataFrame, provenance: pd.DataFrame | None) -> _Details:
    """Each imaged eid's provenance details, of the visit the wide table shows (its ``imaging_instance``);
    an eid listed twice keeps its last."""
    if provenance is None or provenance.empty:
        return _Details(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [])
    prov = provenance
    if "imaging_instance" in imaged.columns and "instance" in prov.columns:
        shown = imaged[["eid", "imaging_instance"]].dropna()
        prov = prov.merge(shown.astype({"imaging_instance": "int64"}), left_on=["eid", "instance"],
                          right_on=["eid", "imaging_instance"])
    eid = prov["eid"].astype("int64")
    keep = ~eid.duplicated(keep="last").to_numpy()
    raw = prov["details"].to_numpy(dtype=object)[keep]
    try:
        codes, texts = pd.factorize(raw, use_na_sentinel=False)
        uniques = [parse_details(t) for t in texts]
    except TypeError:  # dicts (unhashable): parse each
        codes, uniques = np.arange(len(raw)), [parse_details(t) for t in raw]
    return _Details(eid.to_numpy()[keep], np.asarray(codes, dtype=np.int64), uniques)


def qc_columns(report: QualityReport, eids: pd.Series | np.ndarray | list[int]) -> pd.DataFrame:
    """``eid, qc_flag_count, qc_flags`` for ``eids`` (exports): 0 and "" for an imaged subject without
    flags, missing (NA) for a participant without imaging, whom QC cannot judge."""
    base = pd.DataFrame({"eid": pd.Series(eids, dtype="int64")})
    s = report.subjects[["eid", "qc_flag_count", "qc_flags"]].astype({"eid": "int64"})
    out = base.merge(s, on="eid", how="left")
    out["qc_flag_count"] = out["qc_flag_count"].astype("Int64")
    return out


def input_columns() -> list[str]:
    """The wide-table columns :func:`quality_report` reads."""
    vols = [volume_column(s.key, side) for s in STRUCTURES for side in (None, "left", "right")]
    return ["eid", "sex", "age", "has_imaging", "imaging_instance", *vols]


def stored_report(reader: Any) -> QualityReport:
    """:func:`quality_report` of everything in the snapshot ``reader`` (a :class:`store.reader.Reader`) holds."""
    return quality_report(reader.participants(columns=input_columns()), reader.imaging_provenance())
