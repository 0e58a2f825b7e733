"""The demo through the real path (simulate -> files -> store importers -> wide table) meets the study.

Tolerances, the demo's calibration bounds: means within 1 %, sarcopenia within 0.2 percentage points,
correlations within 0.01; tertile cuts within 0.01; TMV stratum medians within 2 %.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from engine.cli import main
from engine.cohort.tables import DEFAULT_COVARIATES, forest_table
from engine.demo import build as simulate_build
from engine.demo.build import StoreExistsError, build_demo
from engine.demo.cohort import draw as simulate
from engine.demo.cohort import targets as cal
from engine.demo.cohort.draw import simulate_cohort
from store.home import home
from store.reader import Reader
from store.structures import STRUCTURES, labels_in

SEX_CODE = {"male": 1, "female": 0}


@pytest.fixture(scope="module")
def study_sized(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    target = home(tmp_path_factory.mktemp("demo_home"))
    build_demo(target, cal.N_PARTICIPANTS, seed=0)
    with Reader(target) as reader:
        return reader.participants()


def _complete(df: pd.DataFrame) -> pd.DataFrame:
    return df.dropna(subset=["grip_max_kg", "almi", "legs_lean_kg", "tmv_cm3", "height_cm"])


@pytest.mark.slow
def test_every_row_is_flagged_simulated_and_counts_match(study_sized: pd.DataFrame) -> None:
    df = study_sized
    assert len(df) == cal.N_PARTICIPANTS
    assert df["simulated"].all()
    assert (df["sex"] == 1).sum() == cal.N_MEN and (df["sex"] == 0).sum() == cal.N_WOMEN
    assert df["age"].min() >= cal.AGE_MIN
    # Missingness exists, and only a little of it.
    assert 0.005 < df["almi"].isna().mean() < 0.03
    assert df["grip_max_kg"].isna().any()


@pytest.mark.slow
def test_table1_means_and_sarcopenia(study_sized: pd.DataFrame) -> None:
    df = _complete(study_sized)
    assert df["age"].mean() == pytest.approx(cal.AGE_MEAN, rel=0.01)
    assert df["age"].std() == pytest.approx(cal.AGE_SD, rel=0.01)
    for sex, code in SEX_CODE.items():
        part = df[df["sex"] == code]
        assert part["height_cm"].mean() == pytest.approx(cal.HEIGHT_CM[sex], rel=0.01)
        assert part["weight_kg"].mean() == pytest.approx(cal.WEIGHT_KG[sex], rel=0.01)
        assert part["grip_max_kg"].mean() == pytest.approx(cal.GRIP_MAX_KG[sex], rel=0.01)
        assert part["almi"].mean() == pytest.approx(cal.ALMI[sex], rel=0.01)
        assert part["sarcopenia"].mean() == pytest.approx(cal.SARCOPENIA_PREVALENCE_BY_SEX[sex], abs=0.002)
    assert df["sarcopenia"].mean() == pytest.approx(cal.SARCOPENIA_PREVALENCE, abs=0.002)
    # The store's sarcopenia is its own EWGSOP2 computation; check it against the cut-offs here.
    cut_grip = df["sex"].map({1: 27.0, 0: 16.0})
    cut_almi = df["sex"].map({1: 7.0, 0: 5.5})
    mine = ((df["grip_max_kg"] < cut_grip) & (df["almi"] < cut_almi)).astype(int)
    assert (mine == df["sarcopenia"]).all()


@pytest.mark.slow
def test_concordance_correlations(study_sized: pd.DataFrame) -> None:
    df = _complete(study_sized)
    r1 = np.corrcoef(df["tmv_cm3"], df["legs_lean_kg"])[0, 1]
    r2 = np.corrcoef(df["tmv_cm3"] / df["height_cm"] ** 2, df["almi"])[0, 1]
    assert r1 == pytest.approx(cal.R_TMV_LEGS_LEAN, abs=0.01)
    assert r2 == pytest.approx(cal.R_TVI_ALMI, abs=0.01)
    assert np.corrcoef(df["tvi"], df["almi"])[0, 1] == pytest.approx(r2, abs=1e-9)


@pytest.mark.slow
def test_tmv_medians_by_age_stratum(study_sized: pd.DataFrame) -> None:
    df = study_sized
    for sex, code in SEX_CODE.items():
        part = df[df["sex"] == code]
        young = part[(part["age"] >= 50) & (part["age"] < 60)]["tmv_cm3"].median()
        old = part[part["age"] >= 80]["tmv_cm3"].median()
        assert young == pytest.approx(cal.TMV_MEDIAN_YOUNGEST[sex], rel=0.02)
        assert old == pytest.approx(cal.TMV_MEDIAN_OLDEST[sex], rel=0.02)
        middle = part[(part["age"] >= 60) & (part["age"] < 80)]["tmv_cm3"].median()
        assert old < middle < young


@pytest.mark.slow
def test_pa_tertiles_and_dexa_asymmetry(study_sized: pd.DataFrame) -> None:
    df = _complete(study_sized)
    c1, c2 = np.quantile(df["pa_ratio"], [1 / 3, 2 / 3])
    assert c1 == pytest.approx(cal.PA_TERTILE_CUTS[0], abs=0.01)
    assert c2 == pytest.approx(cal.PA_TERTILE_CUTS[1], abs=0.01)
    q1, med, q3 = np.quantile(df["lr_asym_dexa_pct"], [0.25, 0.5, 0.75])
    assert med == pytest.approx(cal.LR_ASYM_MEDIAN_PCT, abs=0.15)
    assert q1 == pytest.approx(cal.LR_ASYM_IQR_PCT[0], abs=0.15)
    assert q3 == pytest.approx(cal.LR_ASYM_IQR_PCT[1], abs=0.2)


# The analyses' two standard adjustments: the minimal one (age and sex) and the study's default.
ADJUSTMENTS = {"age_sex": ["age", "sex"], "default": list(DEFAULT_COVARIATES)}
OR_OUTCOMES = ["weak_grip", "sarcopenia", "died", "falls", "low_muscle_mass"]
Z95 = 1.959964


def _forest(df: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    return {
        k: forest_table(df, metric, OR_OUTCOMES, cov, ci="profile").set_index("outcome")
        for k, cov in ADJUSTMENTS.items()
    }


@pytest.mark.slow
def test_pa_odds_ratios_in_the_sample_are_the_generating_ones(study_sized: pd.DataFrame) -> None:
    """The Associations page's P/A forest on the demo (n = 37,004, seed 0), through the store.

    The simulator solves each P/A effect on its own sample so that the mean of the two adjustments'
    log ORs is the target; each adjustment then differs from it only by chance imbalance (an extra
    covariate, rows with unknown activity dropped), a fraction of an SE: allowed 0.5 SE, with the SE
    read off the profile CI. Without the solve, sarcopenia came out at 1.89-1.95 (> 2 SE away).
    """
    tables = _forest(study_sized, "pa_ratio")
    for outcome in OR_OUTCOMES:
        target = cal.PA_HIGH_VS_LOW_OR[outcome]
        logs = []
        for name, table in tables.items():
            row = table.loc[outcome]
            assert row["error"] == ""
            assert row["ci_low"] < target < row["ci_high"], (outcome, name, row["odds_ratio"])
            se = (np.log(row["ci_high"]) - np.log(row["ci_low"])) / (2 * Z95)
            assert abs(np.log(row["odds_ratio"]) - np.log(target)) < 0.5 * se, (
                outcome,
                name,
                row["odds_ratio"],
            )
            logs.append(np.log(row["odds_ratio"]))
        # the solved quantity, to about one sarcopenia event (~1 / 130 on the log scale)
        assert np.mean(logs) == pytest.approx(np.log(target), abs=0.015), outcome


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["lr_asym_dexa_pct", "lr_asym_mri_pct"])
def test_lr_asymmetry_odds_ratios_in_the_sample_are_null(study_sized: pd.DataFrame, metric: str) -> None:
    for name, table in _forest(study_sized, metric).items():
        for outcome in OR_OUTCOMES:
            row = table.loc[outcome]
            assert row["ci_low"] < 1.0 < row["ci_high"], (metric, name, outcome, row["odds_ratio"])
            # spread evenly within outcome cells: far closer to 1 than the CI's half-width
            half_width = (np.log(row["ci_high"]) - np.log(row["ci_low"])) / 2
            assert abs(np.log(row["odds_ratio"])) < 0.5 * half_width, (metric, name, outcome)


def _derived(n: int, seed: int) -> pd.DataFrame:
    """Outcomes and exposures computed here from the raw frames (independent of the store)."""
    cohort = simulate_cohort(n, seed)
    ph = cohort.phenotypes.set_index("eid")
    vol = cohort.metrics.groupby(["eid", "structure"], observed=True)["volume_cm3"].sum().unstack()
    anterior = [s.key for s in STRUCTURES if s.label in labels_in("anterior")]
    posterior = [s.key for s in STRUCTURES if s.label in labels_in("posterior")]
    male = ph["31-0.0"] == 1
    grip = ph[["46-2.0", "47-2.0"]].astype(float).max(axis=1)
    alm_kg = (
        ph[["23250-2.0", "23254-2.0", "23267-2.0", "23271-2.0"]].astype(float).sum(axis=1, min_count=4) / 1000
    )
    almi = alm_kg / (ph["50-2.0"] / 100) ** 2
    legs = ph[["23267-2.0", "23271-2.0"]].astype(float)
    out = pd.DataFrame(
        {
            "age": ph["21003-2.0"].astype(float),
            "sex": male.astype(float),
            "pa": (vol[posterior].sum(axis=1) / vol[anterior].sum(axis=1)).reindex(ph.index),
            "asym": (legs.iloc[:, 0] - legs.iloc[:, 1]).abs() / legs.mean(axis=1) * 100,
            "weak_grip": (grip < np.where(male, 27.0, 16.0)).astype(float),
            "low_muscle_mass": (almi < np.where(male, 7.0, 5.5)).astype(float),
            "died": (ph["40000-0.0"] != "").astype(float),
            "falls": (ph["2296-2.0"] >= 2).astype(float),
        }
    )
    out.loc[grip.isna(), "weak_grip"] = np.nan
    out.loc[almi.isna(), "low_muscle_mass"] = np.nan
    out.loc[ph["2296-2.0"] < 0, "falls"] = np.nan
    out["sarcopenia"] = out["weak_grip"] * out["low_muscle_mass"]
    return out


def _high_vs_low(df: pd.DataFrame, exposure: str, outcome: str) -> tuple[float, float]:
    """log OR and its SE for the high vs low tertile of ``exposure``, adjusted for age and sex."""
    data = df.dropna(subset=[exposure, outcome, "weak_grip", "low_muscle_mass"])
    c1, c2 = np.quantile(data[exposure], [1 / 3, 2 / 3])
    data = data[(data[exposure] < c1) | (data[exposure] > c2)]
    x = sm.add_constant(
        pd.DataFrame({"high": (data[exposure] > c2).astype(float), "age": data["age"], "sex": data["sex"]})
    )
    fit = sm.Logit(data[outcome], x).fit(disp=0)
    return float(fit.params["high"]), float(fit.bse["high"])


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    return _derived(300_000, seed=21)


# The generating models were tuned (engine.demo.cohort.tune, 1M participants) to about 0.01 on the
# log-odds scale; at 300,000 participants the fit's own SE is 0.015 (weak grip) to 0.045 (sarcopenia).
# Allowed gap: 3 SE of this fit + 0.02 for the tuning; a wrong model (e.g. no P/A effect) misses by
# log(1.6) = 0.47, far outside.
TUNING_TOLERANCE = 0.02


@pytest.mark.slow
@pytest.mark.parametrize("outcome", ["weak_grip", "sarcopenia", "died", "falls", "low_muscle_mass"])
def test_pa_tertile_odds_ratios(large: pd.DataFrame, outcome: str) -> None:
    log_or, se = _high_vs_low(large, "pa", outcome)
    target = np.log(cal.PA_HIGH_VS_LOW_OR[outcome])
    assert abs(log_or - target) < 3 * se + TUNING_TOLERANCE, (np.exp(log_or), cal.PA_HIGH_VS_LOW_OR[outcome])


@pytest.mark.slow
@pytest.mark.parametrize("outcome", ["weak_grip", "sarcopenia", "died", "falls", "low_muscle_mass"])
def test_lr_asymmetry_has_no_association(large: pd.DataFrame, outcome: str) -> None:
    log_or, se = _high_vs_low(large, "asym", outcome)
    assert abs(log_or) < 3 * se, np.exp(log_or)


def test_cli_builds_refuses_then_forces(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path / "h")
    assert main(["--home", root, "demo", "--n", "300", "--seed", "4", "--phantoms", "1"]) == 0
    out = capsys.readouterr().out
    assert "300 simulated participants" in out and "16,200 structure x side rows" in out
    assert "1 phantom packages queued" in out
    with Reader(home(root)) as reader:
        df = reader.participants()
        metrics = reader.structure_metrics()
    assert len(df) == 300 and df["simulated"].all()
    # the phantom is the first woman of the cohort, sized from her simulated volumes
    (zip_path,) = home(root).inbox.glob("*_20201_2_0.zip")
    eid = int(zip_path.name.split("_")[0])
    assert eid == df.loc[df["sex"] == 0, "eid"].min()
    truth = json.loads((home(root).root / "phantoms" / str(eid) / "truth.json").read_text())
    sim_tmv = metrics[(metrics["eid"] == eid) & (metrics["label"] <= 25)]["volume_cm3"].sum()
    assert truth["tmv_cm3"] == pytest.approx(sim_tmv, rel=0.15)

    assert main(["--home", root, "demo", "--n", "200", "--phantoms", "0"]) == 2
    assert "already holds an MSMV store" in capsys.readouterr().err
    with Reader(home(root)) as reader:
        assert reader.count() == 300  # untouched

    assert main(["--home", root, "demo", "--n", "200", "--force", "--phantoms", "0"]) == 0
    with Reader(home(root)) as reader:
        assert reader.count() == 200


def test_build_demo_refuses_an_existing_store(tmp_path) -> None:
    target = home(tmp_path)
    build_demo(target, 150, seed=1)
    with pytest.raises(StoreExistsError, match="already holds an MSMV store.*--force"):
        build_demo(target, 150, seed=2)


def test_large_demos_import_metrics_in_whole_participant_chunks(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulate_build, "METRICS_CHUNK_PARTICIPANTS", 250)
    monkeypatch.setattr(simulate, "PARTICIPANTS_PER_ROW_GROUP", 100)
    target = home(tmp_path)
    build = build_demo(target, 620, seed=9)
    metric_reports = build.reports[1:]
    # 620 participants in row groups of 100, chunks of >= 250 participants: 300 + 300 + 20.
    assert [r.rows_imported for r in metric_reports] == [300 * 54, 300 * 54, 20 * 54]
    assert not (build.metrics_parquet.parent / simulate_build.CHUNK_FOLDER).exists()
    expected = pd.read_parquet(build.metrics_parquet)
    muscles = {s.key for s in STRUCTURES if s.is_muscle}
    tmv = expected[expected["structure"].isin(muscles)].groupby("eid")["volume_cm3"].sum()
    with Reader(target) as reader:
        df = reader.participants().set_index("eid")
    assert len(df) == 620
    np.testing.assert_allclose(df.loc[tmv.index, "tmv_cm3"], tmv, rtol=1e-9)
