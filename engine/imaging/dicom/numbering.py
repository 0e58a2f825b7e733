"""Station numbers from the stations' positions along the body, so a missing station leaves its number free.

UK Biobank's neighbouring stations always overlap a little. A gap between two present stations'
z ranges therefore means stations are missing there, and how many follows from the gap's size: with
stations of typical extent ``L`` overlapping by ``o``, ``k`` missing stations leave a gap of
``k·L − (k + 1)·o``, so ``k = round((gap + o) / (L − o))`` (a small gap rounds to none).

What gaps cannot tell is a station missing at either end of the package. The numbering is then
anchored at the knee end: the most inferior present station is taken to be station 6 (the knee end
is the end the study's field needs), so a package of the leg stations alone still numbers them 3-6.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

from engine.errors import PackageError
from store.vocabulary import UKB_STATION_COUNT


def missing_between(ranges: Sequence[tuple[float, float]]) -> list[int]:
    """Stations missing between each pair of neighbours of ``ranges`` ((z_low, z_high), superior first)."""
    if len(ranges) < 2:
        return []
    extent = median(hi - lo for lo, hi in ranges)
    overlaps = [low[1] - up[0] for up, low in zip(ranges, ranges[1:], strict=False) if low[1] > up[0]]
    overlap = median(overlaps) if overlaps else 0.0
    step = max(extent - overlap, 1e-6)
    out = []
    for up, low in zip(ranges, ranges[1:], strict=False):
        gap = up[0] - low[1]
        out.append(max(0, round((gap + overlap) / step)) if gap > 0 else 0)
    return out


def number_stations(ranges: Sequence[tuple[float, float]], *, label: str = "the package",
                    count: int = UKB_STATION_COUNT) -> list[int]:
    """Station numbers (1 = most superior) of slabs given superior first as (z_low, z_high) in mm.

    Raises PackageError when the slabs and the gaps between them span more than ``count`` stations.
    """
    if not ranges:
        return []
    relative = [0]
    for missing in missing_between(ranges):
        relative.append(relative[-1] + 1 + missing)
    span = relative[-1] + 1
    if span > count:
        where = ", ".join(f"z {lo:+.1f}..{hi:+.1f} mm" for lo, hi in ranges)
        raise PackageError(f"{label}: {len(ranges)} station positions ({where}) and the gaps between them span "
                           f"{span} stations; expected at most {count}")
    first = count - span + 1
    return [first + r for r in relative]
