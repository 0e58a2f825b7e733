"""UK Biobank assessment centres (field 54), decoded with UK Biobank data coding 10.

The store and exports keep the code (what UK Biobank sends, stable across releases); screens show
the name. Source: UK Biobank showcase, data coding 10 (biobank.ndph.ox.ac.uk/showcase/coding.cgi?id=10).
"""

from __future__ import annotations

from types import MappingProxyType

CENTRE_CODING = 10
CENTRE_NAMES: MappingProxyType[int, str] = MappingProxyType({
    10003: "Stockport (pilot)",
    11001: "Manchester",
    11002: "Oxford",
    11003: "Cardiff",
    11004: "Glasgow",
    11005: "Edinburgh",
    11006: "Stoke",
    11007: "Reading",
    11008: "Bury",
    11009: "Newcastle",
    11010: "Leeds",
    11011: "Bristol",
    11012: "Barts",
    11013: "Nottingham",
    11014: "Sheffield",
    11016: "Liverpool",
    11017: "Middlesborough",  # UK Biobank's spelling
    11018: "Hounslow",
    11020: "Croydon",
    11021: "Birmingham",
    11022: "Swansea",
    11023: "Wrexham",
    11024: "Cheadle (revisit)",
    11025: "Cheadle (imaging)",
    11026: "Reading (imaging)",
    11027: "Newcastle (imaging)",
    11028: "Bristol (imaging)",
})  # fmt: skip


def centre_name(code: str | int | None) -> str:
    """Display name of a centre code ("11025" -> "Cheadle (imaging)"); an unknown code says so."""
    if code is None or str(code).strip() == "":
        return "unknown centre"
    text = str(code).strip()
    try:
        return CENTRE_NAMES[int(float(text))]
    except (ValueError, KeyError):
        return f"centre {text} (not in UK Biobank coding {CENTRE_CODING})"
