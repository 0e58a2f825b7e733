"""Quality control per subject: flags with a code, a reason and the numbers behind each.

:mod:`engine.quality.checks` declares every check and its threshold once, with the reason for it;
:mod:`engine.quality.flags` computes the flags from what the store already holds (the wide table and
the provenance details of each subject's metric set), so subjects processed before a check existed get
the flags their stored results allow; :mod:`engine.quality.confidence` is the segmentation-time
measurement (the share of body voxels the network labelled with low confidence).
"""

from engine.quality.checks import (
    ASYMMETRY_PCT_MAX,
    CHECKS,
    LOW_CONFIDENCE_SHARE_MAX,
    LOW_PROBABILITY,
    VOLUME_Z_MAX,
    Check,
)
from engine.quality.flags import QualityReport, qc_columns, quality_report, stored_report

__all__ = [
    "ASYMMETRY_PCT_MAX",
    "CHECKS",
    "LOW_CONFIDENCE_SHARE_MAX",
    "LOW_PROBABILITY",
    "VOLUME_Z_MAX",
    "Check",
    "QualityReport",
    "qc_columns",
    "quality_report",
    "stored_report",
]
