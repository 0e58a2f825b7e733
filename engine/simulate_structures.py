"""Per-structure volumes and fat fractions of the simulated cohort (27 structures x 2 sides).

The 25 muscles share out each participant's TMV exactly: structure shares follow typical relative
sizes (:data:`engine.simulate_params.SIDE_VOLUME_CM3`) with person-to-person variation, the anterior
and posterior compartments are set so that posterior / anterior equals the participant's P/A ratio,
and each structure splits into left and right around one half. Bones are not part of TMV; they scale
with height cubed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine import calibration as cal
from engine import simulate_params as prm
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


def structure_table(
    *,
    eid: np.ndarray,
    male: np.ndarray,
    age: np.ndarray,
    height: np.ndarray,
    tmv: np.ndarray,
    pa: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Long table ``eid, structure, side, volume_cm3, fat_fraction``: 54 rows per participant.

    Rows are ordered by eid (as given), then label, then left before right. For every participant the
    25 muscles sum to ``tmv`` and posterior / anterior volume equals ``pa`` (to rounding at 0.01 cm³).
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
