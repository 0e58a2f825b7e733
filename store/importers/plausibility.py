"""Words for implausible phenotype values: the reason of one cell, the look of a rejected column."""

from __future__ import annotations

from store.fields import FieldSpec

# Unit slips that move a whole column by a power of ten, as (factor, what it suggests): a median
# that lands inside the plausible range once divided by the factor points at that slip.
_SCALE_SLIPS: tuple[tuple[float, str], ...] = (
    (1000.0, "grams read as kilograms?"),
    (0.001, "kilograms read as grams?"),
    (100.0, "centimetres read as metres, or a percentage?"),
    (0.01, "metres read as centimetres?"),
)


def range_reason(bounds: tuple[float, float] | None) -> str:
    """The error-report reason of an out-of-range cell, e.g. "outside plausible range [120, 220]"."""
    if bounds is None:
        raise ValueError("range_reason needs a (low, high) range, found None")
    return f"outside plausible range [{bounds[0]:g}, {bounds[1]:g}]"


def describe_rejected(median: float | None, spec: FieldSpec) -> str:
    """What a mostly out-of-range column looks like, e.g. "median 24,500: grams read as kilograms?"."""
    if median is None or spec.range is None:
        return "no plausible values"
    low, high = spec.range
    look = f"median {median:,.4g}" if abs(median) < 1000 else f"median {median:,.0f}"
    for factor, slip in _SCALE_SLIPS:
        if low <= median / factor <= high:
            return f"{look}: {slip}"
    return f"{look}: check that field {spec.field} is the right field for {spec.variable}"
