"""The QC checks, each declared once: its code, what it means, its threshold and why that threshold.

Light on purpose (no NumPy or pandas): the CLI's help and the data dictionary read it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A voxel is "low confidence" when the network's winning class has less than even odds: at 0.5 a
#: second class is as likely as the winner, which is where a boundary between structures is unsure.
LOW_PROBABILITY = 0.5
#: Flag a subject when more than this share of its body voxels are low confidence. On a clean random
#: synthetic phantom (seed 2024) the bundled checkpoint leaves 4.1 % of body voxels below even odds (the
#: boundaries of the 27 structures); twice that leaves room for real anatomy's variation, while a scan the
#: network does not recognise (another protocol, an uncorrected swap, heavy artefacts) spreads
#: uncertainty through whole muscles. Re-derive it from held-out scans when a checkpoint changes.
LOW_CONFIDENCE_SHARE_MAX = 0.08
#: |z| of a structure's volume against same-sex, ±5-year participants (engine.cohort.reference). Under a
#: normal spread |z| > 4 happens about 6 times in 100,000 volumes, i.e. a couple of subjects in
#: UK Biobank's 100,000 per structure: what is left is mostly a segmentation or import error.
VOLUME_Z_MAX = 4.0
#: Per-structure |L - R| / mean(L, R) x 100. Healthy thighs differ by a few per cent (the study's DEXA
#: leg asymmetry: median 3.1 %, IQR 1.4-4.9 %) and small muscles by some tens of per cent at most; above
#: 50 % one side is more than 5/3 of the other, which points at a misplaced midline or a one-sided
#: segmentation failure rather than anatomy.
ASYMMETRY_PCT_MAX = 50.0
#: A structure "touches the edge" of the scanned range when its cross-section in the first or last slice
#: along the body axis is at least this share of its widest cross-section (engine.imaging.measure). A
#: structure the range really cuts is still thick there: on the demo checkpoint's phantoms the structures
#: that leave the field show 28-99 % of their widest cross-section in the end slice (iliopsoas 28 %, the
#: multifidus and abdominal wall 90-99 %). A network that overreaches by one slice at a structure ending
#: just inside leaves a sliver: 26 voxels, 1.4 % of the gluteus medius' widest cross-section (phantom
#: 2024), which flagged a clean phantom when any voxel counted. 10 % sits between the two, and a range
#: that nicks a structure's tapering tip by less than a tenth of its width loses little of its volume.
EDGE_MIN_SHARE = 0.10
#: Only a structure's pieces (26-connected components) holding at least this share of its largest piece
#: count towards its edge share: smaller ones are the network's strays (a 237-voxel hip-bone fragment at
#: the knee end of phantom 4242, 2.3 % of the bone's largest piece), while a structure that is more than
#: one piece by anatomy has pieces of 19-100 % of the largest (hip bone, obturator internus on phantoms).
EDGE_PIECE_MIN_SHARE = 0.05


@dataclass(frozen=True)
class Check:
    """One QC check: ``code`` names its flags; ``threshold`` (with ``unit``) is None for yes/no checks."""

    code: str
    title: str
    threshold: float | None
    unit: str
    why: str


CHECKS: tuple[Check, ...] = (
    Check("low_confidence", "Low segmentation confidence", LOW_CONFIDENCE_SHARE_MAX, "share of body voxels",
          f"share of body voxels whose winning class probability is below {LOW_PROBABILITY:g}, above "
          f"{LOW_CONFIDENCE_SHARE_MAX:g}; only where a network made the labels (imported label maps have none)"),
    Check("volume_outlier", "Structure volume far from its reference", VOLUME_Z_MAX, "|z|",
          f"a structure's volume (left + right) more than {VOLUME_Z_MAX:g} SD from same-sex participants of "
          "a similar age"),
    Check("structure_missing", "Expected structure missing", None, "",
          "a structure the labels should hold has no voxels (volume 0)"),
    Check("asymmetry", "Extreme left/right asymmetry", ASYMMETRY_PCT_MAX, "%",
          f"|L - R| / mean(L, R) of a structure above {ASYMMETRY_PCT_MAX:g} %"),
    Check("touches_edge", "Structure cut by the scanned range", EDGE_MIN_SHARE, "of its widest cross-section",
          "a structure expected to lie wholly inside the scanned range has at least "
          f"{EDGE_MIN_SHARE:.0%} of its widest cross-section in the range's first or last slice, so part of it "
          "may be missing"),
    Check("swap_corrected", "Fat-water swap corrected", None, "",
          "a station had water and fat exchanged; MSMV exchanged them back before segmenting"),
    Check("stage_degraded", "A processing stage degraded", None, "",
          "an optional stage failed (the 3-D surfaces); the measurements were kept"),
)
BY_CODE: dict[str, Check] = {c.code: c for c in CHECKS}
