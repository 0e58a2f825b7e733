"""The data dictionary's source fields, derived from each metric's SQL and the field mapping used.

A metric's UK Biobank fields are those of the phenotype variables its expression reads, directly
(``p_<variable>``) or through earlier metrics, looked up in the mapping the import actually used
(recorded in the store's ``imports`` table). So correcting a field ID in ``fields.toml`` and
re-importing corrects the dictionary too, and no field ID is written twice. Metrics that read no
phenotype keep their own text (``MSMV`` for our measurements, ``eid``, or empty for bookkeeping).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from store.fields import VARIABLES, FieldSpec

if TYPE_CHECKING:
    from store.metrics import Metric

MSMV = "MSMV"  # the source text of a value MSMV measured itself
_TOKEN = re.compile(r"\b\w+\b")
# Base columns holding MSMV's own per-structure measurements or its metric-set bookkeeping.
_IMAGING = re.compile(r"^_[vf][lr]_\w+$|^m_source$")
_PHENOTYPE = frozenset(VARIABLES)


def field_text(spec: FieldSpec) -> str:
    """"50", or "22032 (instance 2, else 0)" when the mapping lets it fall back per participant."""
    if not spec.fallback:
        return str(spec.field)
    return f"{spec.field} (instance {spec.instance}, else {', '.join(map(str, spec.fallback))})"


def source_fields(metrics: Sequence[Metric], mapping: Mapping[str, FieldSpec]) -> dict[str, str]:
    """Source-field text of every metric under ``mapping`` (variables it lacks are left out)."""
    reads: dict[str, list[str]] = {}  # metric -> phenotype variables and MSMV, in order of first use
    out: dict[str, str] = {}
    for m in metrics:
        found: list[str] = []
        for token in _TOKEN.findall(m.sql):
            if token.startswith("p_") and token[2:] in _PHENOTYPE:
                found.append(token[2:])
            elif _IMAGING.match(token):
                found.append(MSMV)
            elif token in reads and token != m.name:
                found += reads[token]
        reads[m.name] = list(dict.fromkeys(found))
        if any(v in _PHENOTYPE for v in reads[m.name]):
            parts = [MSMV if v == MSMV else field_text(mapping[v]) for v in reads[m.name] if v == MSMV or v in mapping]
            out[m.name] = ", ".join(dict.fromkeys(parts))
        else:
            out[m.name] = m.source_field
    return out
