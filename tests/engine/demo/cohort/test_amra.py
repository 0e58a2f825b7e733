"""The demo's simulated AMRA fields: real field IDs, the documented assumptions, the shipped ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.demo.cohort import params as prm
from engine.demo.cohort.amra import AMRA_COLUMNS, simulate_amra
from engine.demo.cohort.draw import SimulatedCohort, simulate_cohort
from store.fields import load_mapping
from store.structures import STRUCTURES

N = 4000
# The showcase's field IDs, written out: the simulated columns must be the ones the mapping reads.
THIGH, ANT_R, POST_R, ANT_L, POST_L, MFI = "22409-2.0", "22403-2.0", "22404-2.0", "22405-2.0", "22406-2.0", "22435-2.0"
ANTERIOR = ("sartorius", "rectus_femoris", "vastus_lateralis", "vastus_medialis", "vastus_intermedius")
POSTERIOR = ("semimembranosus", "semitendinosus", "biceps_femoris")
MEDIAL = ("adductor_magnus", "adductor_longus", "adductor_brevis", "gracilis", "quadratus_femoris")


@pytest.fixture(scope="module")
def cohort() -> SimulatedCohort:
    return simulate_cohort(N, seed=3)


def _fat_free(metrics: pd.DataFrame, structures: tuple[str, ...], side: str | None = None) -> pd.Series:
    """Sum over ``structures`` (one side or both) of volume x (1 - fat fraction) per eid, in litres."""
    m = metrics[metrics["structure"].isin(structures)]
    if side is not None:
        m = m[m["side"] == side]
    return (m["volume_cm3"] * (1 - m["fat_fraction"])).groupby(m["eid"]).sum() / 1000.0


def test_amra_columns_carry_ukb_field_ids_and_miss_together(cohort: SimulatedCohort) -> None:
    ph = cohort.phenotypes
    assert set(AMRA_COLUMNS) == {THIGH, ANT_R, POST_R, ANT_L, POST_L, MFI}
    assert list(ph.columns[-6:]) == list(AMRA_COLUMNS)
    missing = ph[list(AMRA_COLUMNS)].isna()
    assert (missing.all(axis=1) | ~missing.any(axis=1)).all()  # an AMRA result is whole or absent
    assert missing[THIGH].mean() == pytest.approx(prm.AMRA_MISSING, abs=0.015)


def test_amra_volumes_follow_the_documented_fat_free_model(cohort: SimulatedCohort) -> None:
    ph = cohort.phenotypes.set_index("eid")
    me = cohort.metrics
    have = ph[THIGH].notna()
    for column, structures, side, sd in ((ANT_R, ANTERIOR, "right", prm.AMRA_COMPARTMENT_LOG_SD),
                                         (ANT_L, ANTERIOR, "left", prm.AMRA_COMPARTMENT_LOG_SD),
                                         (POST_R, POSTERIOR, "right", prm.AMRA_COMPARTMENT_LOG_SD),
                                         (POST_L, POSTERIOR, "left", prm.AMRA_COMPARTMENT_LOG_SD),
                                         (THIGH, ANTERIOR + MEDIAL + POSTERIOR, None, prm.AMRA_THIGH_LOG_SD)):
        log_ratio = np.log(ph.loc[have, column] / _fat_free(me, structures, side).loc[have[have].index])
        assert abs(log_ratio.mean()) < 4 * sd / np.sqrt(have.sum()) + 1e-3, column  # unbiased (4 SE, rounding)
        assert log_ratio.std() == pytest.approx(sd, rel=0.06), column
    # TMV also holds the gluteal and core muscles, and AMRA's volume is fat-free: AMRA's thigh is smaller
    tmv = me[me["structure"].isin([s.key for s in STRUCTURES if s.is_muscle])].groupby("eid")["volume_cm3"].sum()
    assert (ph.loc[have, THIGH] * 1000 < tmv.loc[have[have].index]).all()


def test_amra_values_pass_the_shipped_plausible_ranges(cohort: SimulatedCohort) -> None:
    mapping = load_mapping()
    spec_of = {f"{spec.field}-{spec.instance}.0": spec for spec in mapping.values()}
    for column in AMRA_COLUMNS:
        low, high = spec_of[column].range
        values = cohort.phenotypes[column].dropna()
        assert values.between(low, high).all(), (column, values.min(), values.max())


def test_amra_draws_are_seeded_and_refuse_a_partial_structure_table(cohort: SimulatedCohort) -> None:
    again = simulate_amra(cohort.metrics, 3)
    pd.testing.assert_frame_equal(again.drop(columns="eid"), cohort.phenotypes[list(AMRA_COLUMNS)])
    other = simulate_amra(cohort.metrics, 4)
    assert not np.allclose(other[THIGH].fillna(0), again[THIGH].fillna(0))
    with pytest.raises(ValueError, match="54 rows per participant, got 53 rows"):
        simulate_amra(cohort.metrics.iloc[:53], 3)
