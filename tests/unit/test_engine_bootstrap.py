"""Bootstrap intervals through the engine: the ATE and every segment by the chosen method."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from twinkernel import InterventionConfig, PopulationFilter, SimulationCache, bootstrap_ci

CFG = InterventionConfig(intervention_type="speaker_program_invitation")


@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_ate_and_segment_intervals_come_from_the_bootstrap(make_engine, config, method):
    engine = make_engine(3000, seed=21)
    result = engine.simulate(CFG, seed=5, ci_method=method, n_resamples=500)
    assert result.ci_method == method and result.n_resamples == 500
    effects = engine.modifier_table(CFG, seed=5)["effect"].to_numpy()
    direct = bootstrap_ci(effects, n_resamples=500, method=method, resampling="poisson", seed=5)
    assert (result.simulated_ci_lower, result.simulated_ci_upper) == direct.confidence_interval
    assert result.simulated_std_error == pytest.approx(direct.standard_error, rel=1e-12)
    frame = engine.population.frame
    regions = frame["region"].cast(pl.String).to_numpy()
    by_region = bootstrap_ci(effects, regions, n_resamples=500, method=method, resampling="poisson", seed=5)
    labels = list(by_region.group_labels) if hasattr(by_region, "group_labels") else sorted(set(regions))
    for i, label in enumerate(labels):
        seg = result.effect_heterogeneity.by_region[label]
        assert seg["ci_lower"] == by_region.group_ci_lower[i]
        assert seg["ci_upper"] == by_region.group_ci_upper[i]
        assert seg["ci_lower"] < seg["ate"] < seg["ci_upper"]
    assert not any("no values" in w for w in result.warnings)


def test_default_resamples_from_config_and_analytic_agreement(make_engine, config):
    engine = make_engine(5000, seed=3)
    boot = engine.simulate(CFG, seed=9, ci_method="percentile")
    analytic = engine.simulate(CFG, seed=9, ci_method="analytic")
    assert boot.n_resamples == config.simulation.n_resamples
    assert boot.simulated_ate == analytic.simulated_ate
    # For a mean of 5 000 draws the bootstrap and normal intervals agree to within Monte-Carlo error.
    width = analytic.simulated_ci_upper - analytic.simulated_ci_lower
    assert abs(boot.simulated_ci_lower - analytic.simulated_ci_lower) < 0.1 * width
    assert abs(boot.simulated_ci_upper - analytic.simulated_ci_upper) < 0.1 * width


def test_bootstrap_result_is_deterministic_and_filtered(make_engine):
    engine = make_engine(4000, seed=4)
    pf = PopulationFilter(deciles=[1, 2, 3, 4, 5])
    a = engine.simulate(CFG, pf, seed=11, ci_method="bca", n_resamples=300)
    b = engine.simulate(CFG, pf, seed=11, ci_method="bca", n_resamples=300)
    assert a.simulated_ci_lower == b.simulated_ci_lower and a.effect_heterogeneity == b.effect_heterogeneity
    assert set(a.effect_heterogeneity.by_decile) == {"1", "2", "3", "4", "5"}


def test_blb_above_the_configured_size(make_engine, config):
    engine = make_engine(3000, seed=5)
    small = config.model_copy(update={"simulation": config.simulation.model_copy(update={"blb_min_n": 1000})})
    engine.config = small
    result = engine.simulate(
        CFG, seed=2, ci_method="percentile", n_resamples=400, calculate_heterogeneity=False
    )
    effects = engine.modifier_table(CFG, seed=2)["effect"].to_numpy()
    direct = bootstrap_ci(effects, n_resamples=400, method="percentile", resampling="blb", seed=2)
    assert (result.simulated_ci_lower, result.simulated_ci_upper) == direct.confidence_interval
    exact = bootstrap_ci(effects, n_resamples=400, method="percentile", resampling="poisson", seed=2)
    assert direct.confidence_interval != exact.confidence_interval
    # The Bag of Little Bootstraps approximates the exact bootstrap to a fraction of a standard error.
    for blb_end, exact_end in zip(direct.confidence_interval, exact.confidence_interval, strict=True):
        assert abs(blb_end - exact_end) < 0.5 * exact.standard_error
    with_segments = engine.simulate(CFG, seed=2, ci_method="percentile", n_resamples=400)
    for seg in with_segments.effect_heterogeneity.by_region.values():
        assert seg["ci_lower"] < seg["ate"] < seg["ci_upper"]


def test_bad_resamples(make_engine):
    engine = make_engine(200)
    for bad in (5, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_resamples"):
            engine.simulate(CFG, seed=1, ci_method="bca", n_resamples=bad)


def test_cache_key_includes_method_and_resamples(make_engine):
    engine = make_engine(1500)
    cache = SimulationCache.from_config(engine.config, backend="memory")
    a = engine.simulate(CFG, seed=1, ci_method="bca", n_resamples=200, cache=cache)
    b = engine.simulate(CFG, seed=1, ci_method="bca", n_resamples=300, cache=cache)
    c = engine.simulate(CFG, seed=1, ci_method="percentile", n_resamples=200, cache=cache)
    d = engine.simulate(CFG, seed=1, ci_method="bca", n_resamples=200, cache=cache)
    assert not (a.from_cache or b.from_cache or c.from_cache)
    assert d.from_cache and d.simulation_id == a.simulation_id
    assert len({a.simulated_ci_lower, b.simulated_ci_lower, c.simulated_ci_lower}) == 3
    assert np.isfinite([a.simulated_ci_lower, a.simulated_ci_upper]).all()
