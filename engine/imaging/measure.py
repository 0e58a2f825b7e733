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
PIECE_CONNECTIVITY = 26  # faces, edges and corners (cc3d's connectivity), as stray removal counts pieces
PAIRED_MIN_FRACTION = 0.2  # the smaller of a bone's two largest components must hold this share of the larger


def _x_terms(volume: Volume) -> np.ndarray:
    """LPS ``x`` (mm) of every voxel centre as a float32 array that broadcasts to the volume's shape.

    Axes along which ``x`` does not change (a zero direction term: the UKB case, where ``x`` depends
    on the column index only) keep length 1, so nothing volume-sized is built; the values equal
    :func:`world_x` bit for bit (a zero term adds nothing).
    """
    m = volume.direction * np.asarray(volume.spacing)
    x: Any = np.float32(volume.origin[0])
    for axis, n in enumerate(volume.shape):
        term = m[0, axis] * np.arange(n, dtype=np.float32)  # float64, as world_x has always summed
        if axis == 0 or np.any(term != 0):
            x = x + term.reshape([n if a == axis else 1 for a in range(3)])
    return np.asarray(x).astype(np.float32, copy=False)


def world_x(volume: Volume) -> np.ndarray:
    """LPS ``x`` (mm) of every voxel centre, float32, built from three broadcast 1-D terms."""
    return np.broadcast_to(_x_terms(volume), volume.shape).copy()


def _paired_midline(mask: np.ndarray, x: np.ndarray) -> float | None:
    """Midpoint in ``x`` of the centroids of the two largest components of ``mask``, if they pair up.

    ``x`` broadcasts to ``mask``'s shape (a crop of the volume holding every voxel of the mask gives
    the same components, numbered alike, and the same centroids).
    """
    comps, n = ndimage.label(mask)
    if n < 2:
        return None
    sizes = np.bincount(comps.ravel())[1:]
    a, b = np.argsort(sizes)[::-1][:2] + 1
    if sizes[b - 1] < PAIRED_MIN_FRACTION * sizes[a - 1]:
        return None
    x = np.broadcast_to(x, mask.shape)
    xa = float(x[comps == a].mean())
    xb = float(x[comps == b].mean())
    return (xa + xb) / 2.0


def _bone_midline(data: np.ndarray, x: np.ndarray, objects: list[tuple[slice, ...] | None]
                  ) -> tuple[float, str] | None:
    """The femora's (else the iliac bones') midline, each bone searched within its bounding box only."""
    for label, source in ((FEMUR_LABEL, "femora"), (ILIAC_LABEL, "iliac bones")):
        box = objects[label - 1] if label - 1 < len(objects) else None
        if box is None:
            continue
        xs = np.broadcast_to(x, data.shape)[box]
        mid = _paired_midline(data[box] == label, xs)
        if mid is not None:
            return mid, source
    return None


def _centre_midline(data: np.ndarray, x: np.ndarray, body: np.ndarray | None) -> tuple[float, str]:
    """The fallbacks of :func:`midline_x`: the body's (else the labels') ``x`` centre, else the grid's."""
    mask = body if body is not None and body.any() else data > 0
    full = np.broadcast_to(x, data.shape)
    if not mask.any():
        return float(np.ascontiguousarray(full).mean()), "grid centre"
    inside = full[mask]
    return float((inside.min() + inside.max()) / 2.0), "body centre"


def _objects(data: np.ndarray, n: int) -> list[tuple[slice, ...] | None]:
    """Bounding box of every label 1 … ``n - 1`` (None for an absent one; higher labels are not searched)."""
    ints = data if data.dtype.kind in "iu" and data.dtype.itemsize <= 4 else data.astype(np.int32)
    if ints.flags.f_contiguous and not ints.flags.c_contiguous:  # walked in memory order, ~3x faster
        return [None if box is None else box[::-1] for box in ndimage.find_objects(ints.T, max_label=n - 1)]
    return ndimage.find_objects(ints, max_label=n - 1)


def midline_x(labels: Volume, body: np.ndarray | None = None) -> tuple[float, str]:
    """Mid-sagittal plane ``x`` (LPS mm) and what it was estimated from."""
    data = np.asarray(labels.data)
    x = _x_terms(labels)
    found = _bone_midline(data, x, _objects(data, max(FEMUR_LABEL, ILIAC_LABEL) + 1))
    return found if found is not None else _centre_midline(data, x, body)


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``ndimage.binary_erosion(mask, iterations=iterations)`` (6-connected, outside counts as background)
    as ANDs of shifted views of a C-ordered copy: the same voxels, ~4x faster on the masks measured here."""
    out = np.ascontiguousarray(mask, dtype=bool)
    inner = (slice(1, -1),) * out.ndim
    for _ in range(iterations):
        prev, out = out, np.zeros(out.shape, dtype=bool)
        core = out[inner]
        np.copyto(core, prev[inner])
        for axis in range(out.ndim):
            for shifted in (slice(None, -2), slice(2, None)):
                core &= prev[tuple(shifted if a == axis else slice(1, -1) for a in range(out.ndim))]
    return out


def fat_fraction(mask: np.ndarray, water: np.ndarray, fat: np.ndarray) -> float:
    """Mean voxel fat / (fat + water) inside ``mask`` eroded by :data:`EROSION_ITERATIONS`."""
    eroded = _erode(mask, EROSION_ITERATIONS)
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
    import cc3d  # the same pieces as ndimage.label with a full 3x3x3 structure, ~9x faster (numbered
    # differently: only their sizes matter here)

    pieces = cc3d.connected_components(mask, connectivity=PIECE_CONNECTIVITY)
    sizes = np.bincount(pieces.ravel(order="K"))
    sizes[0] = 0
    keep = sizes >= EDGE_PIECE_MIN_SHARE * sizes.max()
    if not keep[1:].all():
        mask = keep[pieces]  # strays do not make an edge
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
    x = _x_terms(labels)
    objects = _objects(data, n)
    found = _bone_midline(data, x, objects)
    if found is None:  # the body mask only serves this fallback: most scans never need it
        body = None
        if water is not None and fat is not None:
            signal = np.asarray(water.data, dtype=np.float32) + np.asarray(fat.data, dtype=np.float32)
            body = signal > 0.1 * float(np.percentile(signal, 99))
        found = _centre_midline(data, x, body)
    mid, source = found
    left_side = np.broadcast_to(x > mid, data.shape)
    cm3 = labels.voxel_volume_mm3 / MM3_PER_CM3
    body_axis = _body_axis(labels)
    structures: dict[str, dict[str, Any]] = {}
    for label, name in sorted(table.items()):
        ff, edge, voxels, on_left = float("nan"), 0.0, 0, 0
        sl = objects[label - 1] if label - 1 < len(objects) else None
        if sl is not None:  # everything below looks at the structure's bounding box only
            pad = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
            padded = data[pad] == label
            mask = padded[tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(sl, pad, strict=True))]
            voxels, on_left = np.count_nonzero(mask), np.count_nonzero(mask & left_side[sl])
            if water is not None and fat is not None:
                ff = fat_fraction(padded, np.asarray(water.data)[pad], np.asarray(fat.data)[pad])
            along = sl[body_axis]
            edge = edge_share(mask, body_axis, along.start == 0, along.stop == data.shape[body_axis])
        lv, tv = float(on_left) * cm3, float(voxels) * cm3
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
