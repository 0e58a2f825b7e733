"""Per-structure measurements from a label map (docs/architecture.md, "Metric definitions").

Volume in cm³ = voxel count × voxel volume from the NRRD geometry; split left/right at the body's
mid-sagittal plane (LPS ``x`` grows towards the patient's left), estimated as the ``x`` midpoint of
the two femora (else the two iliac bones, else the body's centre). Fat fraction = mean voxel
fat / (fat + water) inside the structure mask eroded by one voxel (so partial-volume edges with
subcutaneous or intermuscular fat do not inflate it). Then TMV, the P/A ratio and MRI L/R asymmetry.

A structure is marked ``touches_edge`` when the scanned range cuts it: its cross-section in the first or
last slice along the body axis (``edge_share``, a share of its widest cross-section, counting only its
pieces of at least :data:`engine.quality.checks.EDGE_PIECE_MIN_SHARE` of the largest, so a stray fragment
is no edge) is at least :data:`engine.quality.checks.EDGE_MIN_SHARE`. It may continue beyond the range, so its volume is
"measured within the scanned range". A sliver in the end slice of a structure that ends just inside
(a network's one-slice overreach) stays below that share and is not an edge.
``expected_inside`` (from :func:`store.structures.expected_inside`) says whether a cut is a surprise
(a structure that should lie wholly inside the field) or the rule (core muscles, the femur, the
muscles crossing the knee).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from engine.imaging.volume import Volume
from engine.quality.checks import EDGE_MIN_SHARE, EDGE_PIECE_MIN_SHARE
from store.structures import BONE_LABELS, STRUCTURES, expected_inside, labels_in

MM3_PER_CM3 = 1000.0
FEMUR_LABEL = 27
ILIAC_LABEL = 26
EROSION_ITERATIONS = 1  # fat fraction is taken inside the mask eroded by this many voxels
PIECE_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)  # 26-connected, as stray removal counts pieces
PAIRED_MIN_FRACTION = 0.2  # the smaller of a bone's two largest components must hold this share of the larger


def world_x(volume: Volume) -> np.ndarray:
    """LPS ``x`` (mm) of every voxel centre, float32, built from three broadcast 1-D terms."""
    m = volume.direction * np.asarray(volume.spacing)
    nx, ny, nz = volume.shape
    x = (np.float32(volume.origin[0])
         + (m[0, 0] * np.arange(nx, dtype=np.float32))[:, None, None]
         + (m[0, 1] * np.arange(ny, dtype=np.float32))[None, :, None]
         + (m[0, 2] * np.arange(nz, dtype=np.float32))[None, None, :])
    return x.astype(np.float32, copy=False)


def _paired_midline(mask: np.ndarray, x: np.ndarray) -> float | None:
    """Midpoint in ``x`` of the centroids of the two largest components of ``mask``, if they pair up."""
    comps, n = ndimage.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(comps.ravel())[1:]
    a, b = np.argsort(sizes)[::-1][:2] + 1
    if sizes[b - 1] < PAIRED_MIN_FRACTION * sizes[a - 1]:
        return None
    xa = float(x[comps == a].mean())
    xb = float(x[comps == b].mean())
    return (xa + xb) / 2.0


def midline_x(labels: Volume, body: np.ndarray | None = None) -> tuple[float, str]:
    """Mid-sagittal plane ``x`` (LPS mm) and what it was estimated from."""
    x = world_x(labels)
    for label, source in ((FEMUR_LABEL, "femora"), (ILIAC_LABEL, "iliac bones")):
        mask = labels.data == label
        if mask.any():
            mid = _paired_midline(mask, x)
            if mid is not None:
                return mid, source
    mask = body if body is not None and body.any() else labels.data > 0
    if not mask.any():
        return float(x.mean()), "grid centre"
    return float((x[mask].min() + x[mask].max()) / 2.0), "body centre"


def fat_fraction(mask: np.ndarray, water: np.ndarray, fat: np.ndarray) -> float:
    """Mean voxel fat / (fat + water) inside ``mask`` eroded by :data:`EROSION_ITERATIONS`."""
    eroded = ndimage.binary_erosion(mask, iterations=EROSION_ITERATIONS)
    use = eroded if eroded.any() else mask
    w = water[use].astype(np.float64)
    f = fat[use].astype(np.float64)
    total = w + f
    ok = total > 0
    if not ok.any():
        return float("nan")
    return float(np.mean(f[ok] / total[ok]))


def _body_axis(volume: Volume) -> int:
    """The voxel axis that runs closest to the body's superior (LPS z) axis."""
    return int(np.argmax(np.abs(np.asarray(volume.direction)[2, :])))


def edge_share(mask: np.ndarray, body_axis: int, at_start: bool, at_stop: bool) -> float:
    """Cross-section of ``mask`` in its first (``at_start``) or last (``at_stop``) slice along ``body_axis``,
    whichever is larger, as a share of its widest cross-section; 0.0 when neither end is an edge.

    ``mask`` is the structure cropped to its bounding box, so those slices are the scanned range's ends
    only where the box reaches them (``at_start`` / ``at_stop``). Pieces smaller than
    :data:`~engine.quality.checks.EDGE_PIECE_MIN_SHARE` of the largest are strays and left out.
    """
    if not (at_start or at_stop) or not mask.any():
        return 0.0
    pieces, _ = ndimage.label(mask, structure=PIECE_CONNECTIVITY)
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    mask = (sizes >= EDGE_PIECE_MIN_SHARE * sizes.max())[pieces]  # strays do not make an edge
    other = tuple(a for a in range(mask.ndim) if a != body_axis)
    per_slice = np.count_nonzero(mask, axis=other)
    ends = [int(per_slice[0])] * at_start + [int(per_slice[-1])] * at_stop
    return max(ends) / int(per_slice.max())


def _pct_asymmetry(left: float, right: float) -> float:
    mean = (left + right) / 2.0
    return float(abs(left - right) / mean * 100.0) if mean > 0 else float("nan")


def measure(
    labels: Volume,
    *,
    water: Volume | None = None,
    fat: Volume | None = None,
    table: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Volumes (total, left, right, cm³), fat fractions and asymmetry per structure; TMV and P/A.

    Returns ``{"structures": {"<label>": {name, volume_cm3, left_cm3, right_cm3, fat_fraction,
    asymmetry_pct, edge_share, touches_edge, expected_inside}}, "tmv_cm3", "pa_ratio", "midline_x_mm",
    "midline_source"}``.
    """
    if (water is None) != (fat is None):
        raise ValueError("fat fraction needs both water and fat volumes; got only one")
    for name, v in (("water", water), ("fat", fat)):
        if v is not None and v.shape != labels.shape:
            raise ValueError(f"{name} shape {v.shape} differs from the label map's {labels.shape}")
    table = table or {s.label: s.name for s in STRUCTURES}
    data = np.asarray(labels.data)
    n = max(max(table), int(data.max(initial=0))) + 1
    body = None
    if water is not None and fat is not None:
        signal = np.asarray(water.data, dtype=np.float32) + np.asarray(fat.data, dtype=np.float32)
        body = signal > 0.1 * float(np.percentile(signal, 99))
    mid, source = midline_x(labels, body)
    left_side = world_x(labels) > mid
    flat = data.ravel().astype(np.int64)
    total = np.bincount(flat, minlength=n)
    left = np.bincount(flat[left_side.ravel()], minlength=n)
    cm3 = labels.voxel_volume_mm3 / MM3_PER_CM3
    objects = ndimage.find_objects(data.astype(np.int32), max_label=n - 1)
    body_axis = _body_axis(labels)
    structures: dict[str, dict[str, Any]] = {}
    for label, name in sorted(table.items()):
        ff = float("nan")
        sl = objects[label - 1] if label - 1 < len(objects) else None
        if water is not None and fat is not None and sl is not None:
            pad = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
            ff = fat_fraction(data[pad] == label, np.asarray(water.data)[pad], np.asarray(fat.data)[pad])
        lv, tv = float(left[label]) * cm3, float(total[label]) * cm3
        edge = 0.0
        if sl is not None:
            along = sl[body_axis]
            edge = edge_share(data[sl] == label, body_axis, along.start == 0, along.stop == data.shape[body_axis])
        structures[str(label)] = {
            "name": name,
            "volume_cm3": tv,
            "left_cm3": lv,
            "right_cm3": tv - lv,
            "fat_fraction": ff,
            "asymmetry_pct": _pct_asymmetry(lv, tv - lv),
            "edge_share": edge,
            "touches_edge": edge >= EDGE_MIN_SHARE,
            "expected_inside": expected_inside(label),
        }

    def vol(labs: tuple[int, ...]) -> float:
        return float(sum(structures[str(s)]["volume_cm3"] for s in labs if str(s) in structures))

    muscles = tuple(lab for lab in table if lab not in BONE_LABELS)
    anterior = vol(labels_in("anterior"))
    return {
        "structures": structures,
        "tmv_cm3": vol(muscles),
        "pa_ratio": vol(labels_in("posterior")) / anterior if anterior > 0 else float("nan"),
        "midline_x_mm": mid,
        "midline_source": source,
    }
