"""After the network: logit calibration before argmax, stray-component removal after it.

A checkpoint's sidecar says which steps inference applies (its ``calibration`` field, read by
:meth:`PostProcess.from_calibration`); a sidecar without one gets the plain argmax.

- **Logit offsets** shift a class's logit before argmax. A model that under-segments (recall below
  precision, volumes too small) gets a negative background offset: voxels whose decision was close go
  to the structure. Offsets are fitted on held-out phantoms (:mod:`engine.segmentation.calibrate`).
- **Largest component per structure and side** (nnU-Net's post-processing): a network's false positives
  are small fragments away from the structure (e.g. thigh muscle below the knee). Each structure is
  split at the mid-sagittal plane (as :mod:`engine.imaging.measure` splits volumes) so that the left and
  right muscles, two components by anatomy, are both kept; a given side map (a sided label map's own
  sides) replaces the plane. Removed voxels become background, and their volume is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.errors import CheckpointError
from engine.imaging.measure import MM3_PER_CM3, midline_x, world_x
from engine.imaging.volume import Volume
from engine.segmentation.kernels import clear_pieces, decide, piece_sizes, side_codes

# Full (26-)connectivity: parts of one muscle that touch only at an edge or corner after resampling stay
# one component, so only fragments separated by at least one background voxel are removed.
CONNECTIVITY = 26  # cc3d: faces, edges and corners


@dataclass(frozen=True)
class PostProcess:
    """What inference does between the network's logits and the label map it returns."""

    logit_offsets: dict[int, float] = field(default_factory=dict)  # class (0 = background) -> added logit
    # structures cleaned to their largest component per side: only those where it raised held-out Dice
    # (some structures are more than one piece per side by anatomy, e.g. a hip bone's ilium and pubis)
    largest_component: tuple[int, ...] = ()

    @classmethod
    def from_calibration(cls, calibration: Mapping[str, Any], n_classes: int) -> PostProcess:
        """Read a sidecar's ``calibration`` (``{"logit_offsets": {"1": 0.5, ...}, "largest_component": [3, 4]}``)."""
        raw = calibration.get("logit_offsets", {}) or {}
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"calibration.logit_offsets must map class to offset, found {type(raw).__name__}")
        try:
            offsets = {int(k): float(v) for k, v in raw.items()}
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"calibration.logit_offsets must map integer classes to numbers: {err}") from err
        bad = sorted(k for k in offsets if not 0 <= k < n_classes)
        if bad:
            raise CheckpointError(f"calibration.logit_offsets names classes {bad}; the network has 0..{n_classes - 1}")
        if not all(np.isfinite(v) for v in offsets.values()):
            raise CheckpointError("calibration.logit_offsets must be finite numbers")
        largest = calibration.get("largest_component", [])
        if not isinstance(largest, list) or not all(isinstance(k, int) and 0 < k < n_classes for k in largest):
            raise CheckpointError(f"calibration.largest_component must list structure labels 1..{n_classes - 1}, "
                                  f"found {largest!r}")
        return cls(logit_offsets=offsets, largest_component=tuple(sorted(largest)))

    def to_calibration(self) -> dict[str, Any]:
        """The sidecar form (JSON keys are strings)."""
        return {"logit_offsets": {str(k): float(v) for k, v in sorted(self.logit_offsets.items())},
                "largest_component": list(self.largest_component)}


def offset_vector(offsets: Mapping[int, float], n_classes: int) -> np.ndarray:
    """Per-class logit shift (float32, ``n_classes``); a class that ``offsets`` does not name adds 0."""
    shift = np.zeros(n_classes, dtype=np.float32)
    for k, v in offsets.items():
        shift[int(k)] = float(v)
    return shift


def logits_array(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """``logits`` as a C-contiguous float32 array (no copy when it is one already)."""
    data = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits
    return np.ascontiguousarray(data, dtype=np.float32)


def calibrated_argmax(logits: torch.Tensor | np.ndarray, offsets: Mapping[int, float]) -> np.ndarray:
    """``argmax`` over classes (axis 0) of ``logits + offsets`` as uint8; ``offsets`` missing a class add 0.

    The float32 sum and the first maximum on ties, as ``torch.argmax`` (one numba pass,
    :func:`engine.segmentation.kernels.decide`, over ``(K, X, Y, Z)``: other shapes go through it as one row).
    """
    scores = logits_array(logits)
    grid = scores.shape[1:]
    rows = scores if scores.ndim == 4 else scores.reshape(scores.shape[0], 1, 1, -1)
    labels, _ = decide(rows, offset_vector(offsets, scores.shape[0]))
    return labels.reshape(grid)


def keep_largest_components(
    labels: Volume, *, left: np.ndarray | None = None, structures: Iterable[int] | None = None
) -> tuple[Volume, dict[int, float]]:
    """Keep only the largest connected component of each structure on each side.

    Parameters
    ----------
    labels
        Label map (0 = background).
    left
        Boolean map, True on the patient's left: the sides of a sided label map. Default: the
        mid-sagittal plane of :func:`engine.imaging.measure.midline_x`, estimated before cleaning.
    structures
        Labels to clean (default: every label present); others are left as they are.

    Returns
    -------
    The cleaned label map (same grid and metadata) and ``{label: removed cm³}`` for every cleaned label
    (0.0 where nothing was removed).
    """
    data = np.asarray(labels.data)
    pieces = _Pieces.of(data, _side_map(labels, left), structures)
    cm3 = labels.voxel_volume_mm3 / MM3_PER_CM3
    drop = np.zeros(pieces.sizes.size, dtype=bool)  # per component id: a stray to clear
    removed: dict[int, float] = {}
    for label in pieces.todo:
        removed.setdefault(label, 0.0)
        for ids in pieces.sides(label):
            if not ids.size:
                continue  # absent, or nothing on this side
            strays = ids[ids != ids[np.argmax(pieces.sizes[ids])]]  # all but the largest (the first on ties)
            drop[strays] = True
            removed[label] += int(pieces.sizes[strays].sum()) * cm3
    return labels.with_data(clear_pieces(data, pieces.comps, drop)), removed


def second_piece_share(
    labels: Volume, *, left: np.ndarray | None = None, structures: Iterable[int] | None = None
) -> dict[int, float]:
    """Per structure, the largest over both sides of (second-largest component / largest component), in voxels.

    On a true label map this says whether a structure is one piece per side by anatomy (near 0) or more
    (e.g. the hip bone, whose ilium and pubis can meet only outside the grid's resolution): keeping only
    the largest component would delete real anatomy there. Sides and defaults as in
    :func:`keep_largest_components`; 0.0 for a structure in one piece (or absent) on both sides.
    """
    pieces = _Pieces.of(np.asarray(labels.data), _side_map(labels, left), structures)
    share: dict[int, float] = {}
    for label in pieces.todo:
        for ids in pieces.sides(label):
            top = np.sort(pieces.sizes[ids])[::-1]
            share[label] = max(share.get(label, 0.0), float(top[1] / top[0]) if len(top) > 1 and top[0] else 0.0)
    return share


def _side_map(labels: Volume, left: np.ndarray | None) -> np.ndarray:
    """``left`` checked against the grid, or the mid-sagittal plane's sides when None."""
    if left is None:
        mid, _ = midline_x(labels)
        return world_x(labels) > mid
    if left.shape != labels.shape:
        raise ValueError(f"side map shape {left.shape} differs from the label map's {labels.shape}")
    return left


@dataclass(frozen=True)
class _Pieces:
    """The connected components of every requested structure and side, from one pass of ``cc3d``.

    Each side of a label gets its own code (``2 * label - 1`` left, ``2 * label`` right) before
    ``cc3d`` (26-connected, multi-label) labels them, so components never join across the plane or
    between structures. Component ids are global, numbered by ``cc3d``; id 0 is background (and every
    structure not asked for).
    """

    todo: list[int]  # requested labels (default: every label present), in the order asked
    comps: np.ndarray  # component id per voxel
    sizes: np.ndarray  # voxels per component id (0 for id 0)
    code_of: np.ndarray  # side code per component id

    @classmethod
    def of(cls, data: np.ndarray, left: np.ndarray, structures: Iterable[int] | None) -> _Pieces:
        import cc3d

        if data.dtype.kind not in "iu":
            raise ValueError(f"a label map holds integers, found {data.dtype}")
        counts = np.bincount(data.reshape(-1)) if data.size else np.zeros(1, np.int64)
        present = [int(v) for v in np.flatnonzero(counts) if v != 0]
        todo = present if structures is None else [int(s) for s in structures]
        wanted = np.array([label for label in todo if 0 < label < counts.size and counts[label]], dtype=np.int64)
        top = 2 * int(wanted.max(initial=0))
        code = np.zeros(counts.size, dtype=np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32)
        code[wanted] = 2 * wanted
        codes = side_codes(data, code, left)
        comps, n = cc3d.connected_components(codes, connectivity=CONNECTIVITY, return_N=True)
        sizes, code_of = piece_sizes(comps, codes, n)
        return cls(todo, comps, sizes, code_of)

    def sides(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """Component ids of ``label`` on the left and on the right (ascending; empty where absent)."""
        if label <= 0:  # not a structure (its codes would name the background)
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.flatnonzero(self.code_of == 2 * label - 1), np.flatnonzero(self.code_of == 2 * label)
