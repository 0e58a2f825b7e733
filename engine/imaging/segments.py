"""Segment tables in label-map headers: 3D Slicer's ``Segment{i}_Name`` / ``_LabelValue`` / ``_Layer`` fields.

MSMV writes them into its own label maps (:func:`engine.segmentation.infer.write_labels`) and reads them
from any NRRD or ``.seg.nrrd`` a user brings (:mod:`engine.interop.read`). Light on purpose: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.errors import EngineError


class SegmentHeaderError(EngineError, ValueError):
    """A segment table that cannot describe one label map: a non-integer value or a segment in another layer."""


def segment_names(meta: Mapping[str, str]) -> dict[int, str]:
    """``{label value: segment name}`` from a Slicer-style header; ``{}`` when it names no segments.

    Segments are read in order ``Segment0_…``, ``Segment1_…`` until one is missing; a segment without
    ``_LabelValue`` has the value ``i + 1`` (Slicer's default). Every segment must lie in layer 0: a header
    with overlapping segments in several layers is not one label map (:class:`SegmentHeaderError`).
    """
    out: dict[int, str] = {}
    i = 0
    while f"Segment{i}_Name" in meta:
        name = str(meta[f"Segment{i}_Name"])
        value = str(meta.get(f"Segment{i}_LabelValue", i + 1))
        layer = str(meta.get(f"Segment{i}_Layer", "0")).strip()
        if layer not in ("0", ""):
            raise SegmentHeaderError(f"segment {name!r} is in layer {layer}; only single-layer segmentations "
                                     "(no overlapping segments) are one label map")
        try:
            out[int(value)] = name
        except ValueError as err:
            raise SegmentHeaderError(f"Segment{i}_LabelValue must be an integer, found {value!r}") from err
        i += 1
    return out
