"""Per-structure volumes and fat fractions of the simulated cohort (27 structures x 2 sides).

The 25 muscles share out each participant's TMV exactly: structure shares follow typical relative
sizes (:data:`engine.demo.cohort.params.SIDE_VOLUME_CM3`) with person-to-person variation, the anterior
and posterior compartments are set so that posterior / anterior equals the participant's P/A ratio,
and each structure splits into left and right around one half. Bones are not part of TMV; they scale
with height cubed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from engine.demo.cohort import params as prm
from engine.demo.cohort import targets as cal
from engine.demo.cohort.solve import spread_within
from store.structures import SIDES, STRUCTURES, labels_in

_KEYS = [s.key for s in STRUCTURES]
_MUSCLE = np.array([s.is_muscle for s in STRUCTURES])
_ANTERIOR = np.array([s.label in labels_in("anterior") for s in STRUCTURES])
_POSTERIOR = np.array([s.label in labels_in("posterior") for s in STRUCTURES])
_OTHER_MUSCLE = _MUSCLE & ~_ANTERIOR & ~_POSTERIOR
_BASE = np.array([prm.SIDE_VOLUME_CM3[k] for k in _KEYS])
_FF_OFFSET = np.array([prm.FF_OFFSET.get(k, 0.0) for k in _KEYS])
FF_BOUNDS_MUSCLE = (0.01, 0.5)
FF_BOUNDS_BONE = (0.3, 0.95)
FF_BONE_SD = 0.05
# Bounds on the factor a participant's left-share deviations are scaled by when the MRI asymmetry is
# spread within cells; it is near 1 except where the drawn asymmetry is almost exactly 0.
SPREAD_FACTOR_BOUNDS = (0.1, 10.0)


def structure_table(
    *,
    eid: np.ndarray,
    male: np.ndarray,
    age: np.ndarray,
    height: np.ndarray,
    tmv: np.ndarray,
    pa: np.ndarray,
    rng: np.random.Generator,
    asym_cells: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long table ``eid, structure, side, volume_cm3, fat_fraction``: 54 rows per participant.

    Rows are ordered by eid (as given), then label, then left before right. For every participant the
    25 muscles sum to ``tmv`` and posterior / anterior volume equals ``pa`` (to rounding at 0.01 cm³).
    ``asym_cells`` (an integer cell per participant, e.g. outcomes x sex x age band): spread the MRI
    L/R asymmetry of TMV evenly within each cell (:func:`spread_mri_asymmetry`).
    """
    n = len(eid)
    n_struct = len(STRUCTURES)
    # Structure shares with per-person variation, renormalised inside each muscle group.
    raw = _BASE[None, :] * np.exp(prm.STRUCTURE_SHARE_LOG_SD * rng.standard_normal((n, n_struct)))
    ap_share = (_BASE[_ANTERIOR].sum() + _BASE[_POSTERIOR].sum()) / _BASE[_MUSCLE].sum()
    group_total = {
        "anterior": ap_share / (1.0 + pa),
        "posterior": ap_share * pa / (1.0 + pa),
        "other": np.full(n, 1.0 - ap_share),
    }
    share = np.zeros((n, n_struct))
    for name, mask in (("anterior", _ANTERIOR), ("posterior", _POSTERIOR), ("other", _OTHER_MUSCLE)):
        part = raw[:, mask]
        share[:, mask] = part / part.sum(axis=1, keepdims=True) * group_total[name][:, None]
    volume = share * tmv[:, None]

    ref_height = np.where(male, cal.HEIGHT_CM["male"], cal.HEIGHT_CM["female"])
    bone_scale = np.where(male, 1.0, prm.BONE_SCALE_FEMALE) * (height / ref_height) ** 3
    bones = ~_MUSCLE
    volume[:, bones] = (
        2.0 * _BASE[bones][None, :] * bone_scale[:, None]
        * np.exp(prm.BONE_LOG_SD * rng.standard_normal((n, int(bones.sum()))))
    )  # fmt: skip

    left_share = 0.5 + prm.SIDE_SPLIT_SD * rng.standard_normal((n, n_struct))
    if asym_cells is not None:
        left_share = spread_mri_asymmetry(left_share, volume, asym_cells, rng.random(n))
    sided = np.empty((n, n_struct, 2))
    sided[:, :, 0] = volume * left_share
    sided[:, :, 1] = volume - sided[:, :, 0]

    age_c = (age - (cal.AGE_MEAN + 0.5))[:, None, None]
    female = (~male).astype(float)[:, None, None]
    ff = (
        prm.FF_MUSCLE_BASE
        + _FF_OFFSET[None, :, None]
        + prm.FF_FEMALE * female
        + prm.FF_PER_YEAR * age_c
        + prm.FF_PERSON_SD * rng.standard_normal((n, 1, 1))
        + prm.FF_STRUCTURE_SD * rng.standard_normal((n, n_struct, 2))
    )
    ff = np.clip(ff, *FF_BOUNDS_MUSCLE)
    bone_ff = prm.FF_BONE_BASE + prm.FF_BONE_PER_YEAR * age_c + FF_BONE_SD * rng.standard_normal((n, 1, 2))
    ff[:, bones, :] = np.clip(bone_ff, *FF_BOUNDS_BONE)

    rows = n * n_struct * 2
    codes_struct = np.tile(np.repeat(np.arange(n_struct, dtype=np.int8), 2), n)
    codes_side = np.tile(np.array([0, 1], dtype=np.int8), n * n_struct)
    return pd.DataFrame(
        {
            "eid": np.repeat(np.asarray(eid, dtype=np.int64), n_struct * 2),
            "structure": pd.Categorical.from_codes(codes_struct, categories=_KEYS),
            "side": pd.Categorical.from_codes(codes_side, categories=list(SIDES)),
            "volume_cm3": np.round(sided.reshape(rows), 2),
            "fat_fraction": np.round(ff.reshape(rows), 4),
        }
    )


def spread_mri_asymmetry(
    left_share: np.ndarray, volume: np.ndarray, cells: np.ndarray, jitter: np.ndarray
) -> np.ndarray:
    """Left shares rescaled per participant so the TMV L/R asymmetry is spread evenly within ``cells``.

    The signed TMV asymmetry is linear in the muscles' left-share deviations, normal with SD
    ``2 sd sqrt(sum v^2) / TMV``. Its standardised size ``|z|`` becomes a uniform, the uniforms are
    spread evenly inside each cell keeping their order (:func:`engine.demo.cohort.solve.spread_within`),
    and scaling the deviations by ``z' / z`` gives each participant the new size with the same
    distribution: with the outcomes among the cell keys the MRI asymmetry's high-vs-low ORs sit at 1.
    """
    muscle_volume = volume[:, _MUSCLE]
    tmv = muscle_volume.sum(axis=1)
    deviation = left_share - 0.5
    signed = (muscle_volume * 2.0 * deviation[:, _MUSCLE]).sum(axis=1) / tmv
    sd = 2.0 * prm.SIDE_SPLIT_SD * np.sqrt((muscle_volume**2).sum(axis=1)) / tmv
    size = np.abs(signed / sd)
    u = spread_within(cells, 2.0 * stats.norm.cdf(size) - 1.0, jitter)
    factor = np.clip(stats.norm.ppf(0.5 + 0.5 * u) / np.maximum(size, 1e-12), *SPREAD_FACTOR_BOUNDS)
    out = left_share.copy()
    out[:, _MUSCLE] = 0.5 + deviation[:, _MUSCLE] * factor[:, None]
    return out
