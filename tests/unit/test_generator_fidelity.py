"""The fidelity report (issue 12 item 2): shapes, every pair, Cramér's V, conditional means, detection AUC,
privacy, cross-checked against scipy and (when installed) sdmetrics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats.contingency import association

from twinkernel.config import get_config
from twinkernel.twin_generator.fidelity import FidelityReport, cramers_v, fidelity_report

FC = get_config().twin_generation.fidelity
REGIONS = ["midwest", "northeast", "south", "west"]


def world(n: int, seed: int) -> pl.DataFrame:
    """Region depends on decile (northeast only at deciles 1-3), spend is lognormal with a step in decile."""
    rng = np.random.default_rng(seed)
    decile = rng.integers(1, 11, n)
    other = rng.choice([0, 2, 3], n)
    region_code = np.where(decile <= 3, 1, other)
    spend = np.exp(rng.normal(0.0, 1.5, n)) * np.where(decile <= 5, 1.0, 3.0)
    score = np.clip(0.1 * decile + rng.normal(0, 0.1, n), 0, 1.5)
    return pl.DataFrame(
        {
            "decile": decile.astype(np.int64),
            "region": pl.Series([REGIONS[k] for k in region_code], dtype=pl.Enum(REGIONS)),
            "spend": spend,
            "score": score,
        }
    )


COLS = ("decile", "region", "spend", "score")


@pytest.fixture(scope="module")
def real() -> pl.DataFrame:
    return world(6000, seed=1)


@pytest.fixture(scope="module")
def fresh() -> pl.DataFrame:
    return world(6000, seed=2)


@pytest.fixture(scope="module")
def broken(fresh) -> pl.DataFrame:
    """Fresh rows with region shuffled: marginals intact, region's dependence on decile gone."""
    perm = np.random.default_rng(3).permutation(fresh.height)
    return fresh.with_columns(fresh["region"][perm])


@pytest.fixture(scope="module")
def good_report(real, fresh) -> FidelityReport:
    return fidelity_report(real, fresh, COLS, FC, seed=0, holdout=world(3000, seed=4), threads=1)


@pytest.fixture(scope="module")
def broken_report(real, broken) -> FidelityReport:
    return fidelity_report(real, broken, COLS, FC, seed=0, holdout=world(3000, seed=4), threads=1)


def test_every_pair_is_scored(good_report):
    assert good_report.categorical == ("decile", "region")
    assert len(good_report.pair_scores) == 6
    assert good_report.pair_metrics["spend ~ score"] == "correlation"
    assert good_report.pair_metrics["decile ~ region"] == "contingency"
    assert good_report.pair_metrics["region ~ spend"] == "contingency"
    assert set(good_report.conditional_mean_difference) == {
        "spend | decile",
        "spend | region",
        "score | decile",
        "score | region",
    }


def test_fresh_data_scores_high_and_is_not_detected(good_report):
    assert min(good_report.column_shapes.values()) > 0.97
    assert min(good_report.pair_scores.values()) > 0.9  # 100-cell tables of 6000 rows: sampling noise
    assert 0.45 < good_report.detection_auc < 0.55
    assert good_report.max_cramers_v_difference < 0.03
    assert good_report.exact_copy_rate == 0.0 and good_report.holdout_exact_copy_rate == 0.0
    assert good_report.dcr_ratio == pytest.approx(1.0, abs=0.15)


def test_lost_dependence_is_caught_and_named(good_report, broken_report):
    r = broken_report
    # marginals are intact: column shapes do not see it
    assert min(r.column_shapes.values()) > 0.97
    # the pair does, the worst pair is named, Cramér's V collapses and a classifier tells them apart
    assert r.worst_pairs[0][0] == "decile ~ region" and r.worst_pairs[0][1] < 0.8
    v_real, v_twin = r.cramers_v_real["decile ~ region"], r.cramers_v_twins["decile ~ region"]
    assert v_real > 0.5 and v_twin < 0.05 and r.max_cramers_v_difference > 0.45
    assert r.detection_auc > 0.7 > good_report.detection_auc
    assert r.worst_conditional_means[0][0] in {"spend | region", "score | region"}
    assert r.conditional_mean_difference_sd["score | region"] > 0.5
    assert len(r.detection_auc_folds) == FC.detection.folds


def test_cramers_v_matches_scipy(real):
    d = real["decile"].to_numpy()
    g = real["region"].to_physical().to_numpy()
    table = np.zeros((10, 4), dtype=np.int64)
    np.add.at(table, (d - 1, g), 1)
    assert cramers_v(d, g) == pytest.approx(association(table, method="cramer"), abs=1e-12)


def test_conditional_mean_values(real, fresh, good_report):
    diffs = []
    for lev in REGIONS:
        a = real.filter(pl.col("region") == lev)["score"].mean()
        b = fresh.filter(pl.col("region") == lev)["score"].mean()
        diffs.append(abs(a - b))
    assert good_report.conditional_mean_difference["score | region"] == pytest.approx(max(diffs), abs=1e-12)
    sd = float(np.std(real["score"].to_numpy()))
    assert good_report.conditional_mean_difference_sd["score | region"] == pytest.approx(max(diffs) / sd)


def test_privacy_sees_copies(real):
    copies = real[:3000]
    rep = fidelity_report(real, copies, COLS, FC, seed=0, holdout=world(3000, seed=4), threads=1)
    assert rep.exact_copy_rate == 1.0 and rep.median_dcr == 0.0
    assert rep.holdout_exact_copy_rate == 0.0 and rep.holdout_median_dcr > 0.0 and rep.dcr_ratio == 0.0


def test_report_is_seeded_and_json_safe(real, broken, broken_report):
    again = fidelity_report(real, broken, COLS, FC, seed=0, holdout=world(3000, seed=4), threads=1)
    assert again == broken_report
    d = broken_report.to_dict()
    assert d["worst_pairs"][0][0] == "decile ~ region" and "dcr_ratio" in d


# --- sdmetrics as an independent judge ----------------------------------------------------------------------
def test_agrees_with_sdmetrics(real, broken, broken_report):
    sd = pytest.importorskip("sdmetrics", reason="sdmetrics (dev extra) is not installed")
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
    from sdmetrics.single_column import KSComplement, TVComplement

    r, s = real.to_pandas(), broken.to_pandas()
    assert sd is not None
    for c in ("spend", "score"):
        assert broken_report.column_shapes[c] == pytest.approx(
            KSComplement.compute(real_data=r[c], synthetic_data=s[c]), abs=1e-9
        )
    for c in ("decile", "region"):
        assert broken_report.column_shapes[c] == pytest.approx(
            TVComplement.compute(real_data=r[c], synthetic_data=s[c]), abs=1e-9
        )
    corr = CorrelationSimilarity.compute(
        real_data=r[["spend", "score"]], synthetic_data=s[["spend", "score"]]
    )
    assert broken_report.pair_scores["spend ~ score"] == pytest.approx(corr, abs=1e-9)
    pair = ["decile", "region"]
    cont = ContingencySimilarity.compute(real_data=r[pair].astype(str), synthetic_data=s[pair].astype(str))
    assert broken_report.pair_scores["decile ~ region"] == pytest.approx(cont, abs=1e-9)
