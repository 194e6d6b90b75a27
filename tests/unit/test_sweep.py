"""Scenario sweeps: the kernel against its references, and every sweep row against ``simulate``."""

from __future__ import annotations

import numba
import numpy as np
import polars as pl
import pytest

from tests import naive_sweep
from tests.conftest import KERNEL_ATOL, KERNEL_RTOL, kernel_pass
from twinkernel import EffectModel, InterventionConfig, PopulationFilter, SimulationStatus
from twinkernel.kernels import effects as K
from twinkernel.kernels.stats import combine_columns
from twinkernel.kernels.sweep import MIN_ROW, sweep_pass
from twinkernel.simulation_engine.sweep import sweep_results

EMPTY = np.empty(0, dtype=np.int64)
# Per-twin libm differences (at most KERNEL_RTOL x |effect|, |effect| <= cap = 1) add up over a block.
SUM_ATOL = KERNEL_ATOL + KERNEL_RTOL * K.SUM_BLOCK

# Types (tier and peer paths differ), intensities, durations, channels and targets, mixed.
MIXED = (
    InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8),
    InterventionConfig(intervention_type="email_campaign", channel="digital", duration_weeks=3),
    InterventionConfig(
        intervention_type="speaker_program_invitation", duration_weeks=4, intensity_multiplier=2.5
    ),
    InterventionConfig(intervention_type="peer_influence_activation", duration_weeks=16),
    InterventionConfig(
        intervention_type="call_frequency_increase",
        duration_weeks=12,
        extra_params={"additional_calls": 3},
        target_deciles=[1, 2, 3],
    ),
    InterventionConfig(
        intervention_type="digital_engagement",
        channel="digital",
        duration_weeks=6,
        target_regions=["west", "midwest"],
        target_specialties=["oncology", "cardiology"],
    ),
    InterventionConfig(
        intervention_type="sample_distribution", intensity_multiplier=0.4, target_deciles=[1, 2, 3]
    ),
    InterventionConfig(intervention_type="unlisted_type", duration_weeks=20),
)
RUN_STATS = {
    "simulation_id",
    "execution_time_ms",
    "timings_ms",
    "created_at",
    "completed_at",
    "memory_usage_mb",
}


@pytest.fixture
def threads():
    default = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(default)


def _params(configs, cap=None):
    model = EffectModel.from_config()
    ps = [model.parameters(ic) for ic in configs]
    stacked = np.stack([p.params for p in ps])
    if cap is not None:
        stacked[:, K.P_CAP] = cap
    return ps[0], np.ascontiguousarray(stacked)


def _shifts(stacked):
    return np.array([0.5 * row[K.P_BASE] for row in stacked])


def _sweep(pop, stacked, p0, index=None, seed=11, chunk=64, with_groups=True, shifts=None, noise=None):
    c = pop.kernel_columns
    offsets = pop.segment_offsets
    n = pop.n if index is None else index.shape[0]
    return sweep_pass(
        c.decile,
        c.engagement,
        c.adoption,
        c.tier,
        c.peer,
        c.propensity,
        c.baseline,
        c.twin_key,
        EMPTY if index is None else index,
        index is not None,
        n,
        stacked,
        p0.adoption_multipliers,
        p0.tier_multipliers,
        np.uint64(seed),
        chunk,
        c.segment_codes,
        offsets,
        int(offsets[-1]),
        with_groups,
        _shifts(stacked) if shifts is None else shifts,
        0.25,
        np.empty(0) if noise is None else noise,
    )


class TestSweepKernel:
    CONFIGS = (
        InterventionConfig(intervention_type="email_campaign", channel="digital"),
        InterventionConfig(intervention_type="speaker_program_invitation", intensity_multiplier=3.0),
        InterventionConfig(intervention_type="peer_influence_activation", duration_weeks=30),
        InterventionConfig(intervention_type="call_frequency_increase", extra_params={"additional_calls": 2}),
        InterventionConfig(intervention_type="no_prior_type", duration_weeks=2),
    )

    @pytest.mark.parametrize("cap", [None, 0.08])
    def test_matches_naive_reference(self, make_population, cap):
        pop = make_population(5000, seed=3, decile=np.r_[np.full(50, 14), np.arange(4950) % 10 + 1])
        index = np.flatnonzero(np.arange(pop.n) % 7 != 3).astype(np.int64)
        p0, stacked = _params(self.CONFIGS, cap)
        counts, sums, groups = _sweep(pop, stacked, p0, index, seed=5)
        assert counts.shape == (5, 2, K.N_COUNTERS) and groups.shape[:2] == (5, 2)
        c = pop.kernel_columns
        for k in range(len(self.CONFIGS)):
            ref_counts, ref_sums, ref_groups = naive_sweep.config_slots(
                c, index, stacked[k], p0.adoption_multipliers, p0.tier_multipliers, 5,
                c.segment_codes, pop.segment_offsets, True, _shifts(stacked)[k], 0.25,
            )  # fmt: skip
            np.testing.assert_array_equal(counts[k], ref_counts)
            np.testing.assert_allclose(sums[k], ref_sums, rtol=KERNEL_RTOL, atol=SUM_ATOL)
            np.testing.assert_allclose(groups[k], ref_groups, rtol=KERNEL_RTOL, atol=SUM_ATOL)
        total = counts.sum(axis=1)
        assert total[0, K.C_DECILE_CLAMPED] == np.count_nonzero(index < 50)
        assert total[2, K.C_PEER_GATED] > 0 and total[0, K.C_PEER_GATED] == 0
        if cap is not None:  # a binding cap clamps some effects of every config
            assert (total[:, K.C_EFFECT_CAPPED] > 0).all()

    @pytest.mark.parametrize("n_configs", [5, MIN_ROW + 3])
    def test_bit_identical_to_single_config_passes(self, make_population, n_configs):
        """A loop of the engine's own one-config pass gives the very same slots, with fewer configs than
        the kernel's least loop length (zero lanes pad the loops) and with more."""
        pop = make_population(9000, seed=4)
        index = np.flatnonzero(np.arange(pop.n) % 5 != 0).astype(np.int64)
        p0, stacked = _params(self.CONFIGS)
        stacked = np.ascontiguousarray(np.resize(stacked, (n_configs, stacked.shape[1])))
        stacked[:, K.P_INTENSITY] *= 1.0 + np.arange(n_configs) / 10.0  # each config its own effects
        shifts = _shifts(stacked)
        counts, sums, groups = _sweep(pop, stacked, p0, index, seed=9, chunk=8192, shifts=shifts)
        assert counts.shape[0] == n_configs and np.unique(sums[:, 0, K.S_EFFECT_SUM]).size == n_configs
        c = pop.kernel_columns
        offsets = pop.segment_offsets
        for k in range(n_configs):
            _, ref_counts, ref_sums, ref_groups = kernel_pass(
                c, stacked[k], p0.adoption_multipliers, p0.tier_multipliers, codes=c.segment_codes,
                offsets=offsets, index=index, seed=9, chunk=8192, with_groups=True,
                effect_shift=float(shifts[k]), baseline_shift=0.25,
            )  # fmt: skip
            np.testing.assert_array_equal(counts[k], ref_counts)
            np.testing.assert_array_equal(sums[k], ref_sums)
            np.testing.assert_array_equal(groups[k], ref_groups)
            assert combine_columns(sums[k])[0] == combine_columns(ref_sums)[0]

    def test_same_bits_for_any_thread_count_and_chunk(self, make_population, threads):
        pop = make_population(20000, seed=5)
        p0, stacked = _params(self.CONFIGS)
        threads(1)
        one = _sweep(pop, stacked, p0, chunk=4096)
        threads(numba.config.NUMBA_NUM_THREADS)
        for chunk in (64, 8192, 1 << 20):
            other = _sweep(pop, stacked, p0, chunk=chunk)
            for a, b in zip(one, other, strict=True):
                np.testing.assert_array_equal(a, b)
        # noise shared between passes (a sweep of several selections): drawn and stored, then read back
        noise = np.full(pop.n, np.nan)
        index = np.flatnonzero(np.arange(pop.n) % 3 != 1).astype(np.int64)
        drawn = _sweep(pop, stacked, p0, index)
        for a, b in zip(drawn, _sweep(pop, stacked, p0, index, noise=noise), strict=True):
            np.testing.assert_array_equal(a, b)
        assert np.isfinite(noise[index]).all() and np.isnan(np.delete(noise, index)).all()
        stored = noise.copy()
        for a, b in zip(drawn, _sweep(pop, stacked, p0, index, noise=noise), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(noise, stored)
        assert one[0].shape[:2] == (5, 5) and np.isfinite(one[1]).all()

    def test_without_groups_same_sums(self, make_population):
        pop = make_population(3000, seed=6)
        p0, stacked = _params(self.CONFIGS)
        with_g = _sweep(pop, stacked, p0, with_groups=True)
        without = _sweep(pop, stacked, p0, with_groups=False)
        np.testing.assert_array_equal(with_g[1], without[1])
        np.testing.assert_array_equal(with_g[0], without[0])
        assert without[2].shape == (5, 1, 0, 3)
        # every segment dimension's counts add up to the twins of the block
        assert with_g[2][0, 0, :, 0].sum() == 4 * 3000


def _compare(row_result, simulated):
    a = row_result.model_dump(exclude=RUN_STATS)
    b = simulated.model_dump(exclude=RUN_STATS)
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


class TestSweepEqualsSimulate:
    @pytest.mark.parametrize("seed", [0, 2026])
    def test_every_row_equals_simulate(self, make_engine, seed):
        engine = make_engine(12000, seed=1)
        pf = PopulationFilter(regions=["west", "midwest", "south"], deciles=[1, 2, 3, 4, 5, 6, 7])
        frame = engine.sweep(list(MIXED), pf, seed=seed)
        results = sweep_results(engine, list(MIXED), pf, seed=seed)
        assert frame.height == len(MIXED)
        assert frame["config_index"].to_list() == list(range(len(MIXED)))
        for k, ic in enumerate(MIXED):
            sim = engine.simulate(ic, pf, seed=seed)
            assert sim.status == SimulationStatus.COMPLETED
            row = frame.row(k, named=True)
            assert row["intervention_type"] == ic.intervention_type
            assert row["ate"] == sim.simulated_ate
            assert (row["ci_lower"], row["ci_upper"]) == (sim.simulated_ci_lower, sim.simulated_ci_upper)
            assert row["std_error"] == sim.simulated_std_error
            assert row["recommendation"] == sim.recommendation.value
            assert row["prob_harmful"] == sim.prob_harmful
            assert row["prob_above_deploy"] == sim.prob_above_deploy
            assert row["prob_above_refine"] == sim.prob_above_refine
            assert row["recommended_sample_size"] == sim.recommended_sample_size
            assert row["statistical_power"] == sim.statistical_power
            assert row["assurance"] == sim.assurance
            assert row["twin_count"] == sim.twin_count
            assert row["request_digest"] == sim.request_digest
            assert row["warnings"] == list(sim.warnings)
            segments = sim.effect_heterogeneity.segments()
            assert len(segments) > 10
            for dim, label, seg in segments:
                assert row[f"ate_{dim}_{label}"] == seg.ate
            assert _compare(results[k], sim) == {}

    def test_rows_same_for_any_thread_count(self, make_engine, threads):
        engine = make_engine(9000, seed=7)
        threads(1)
        one = engine.sweep(list(MIXED), seed=4)
        threads(numba.config.NUMBA_NUM_THREADS)
        many = engine.sweep(list(MIXED), seed=4)
        assert one.equals(many)
        assert one["ate"].to_list() == [engine.simulate(ic, seed=4).simulated_ate for ic in MIXED]

    def test_failed_row_equals_simulate(self, make_engine):
        engine = make_engine(3000, seed=2)
        configs = [
            InterventionConfig(intervention_type="email_campaign"),
            InterventionConfig(intervention_type="email_campaign", target_regions=["atlantis"]),
        ]
        results = sweep_results(engine, configs, seed=3)
        frame = engine.sweep(configs, seed=3)
        failed = engine.simulate(configs[1], seed=3)
        assert failed.status == SimulationStatus.FAILED
        assert _compare(results[1], failed) == {}
        assert frame["status"].to_list() == ["completed", "failed"]
        assert frame["recommendation"][1] is None and frame["twin_count"][1] == 0
        assert _compare(results[0], engine.simulate(configs[0], seed=3)) == {}

    def test_batched_passes_give_the_same_rows(self, make_engine, config):
        tiny = config.simulation.sweep.model_copy(update={"max_partial_sums_mb": 1e-6})
        small_budget = config.model_copy(
            update={"simulation": config.simulation.model_copy(update={"sweep": tiny})}
        )
        configs = list(MIXED[:4])
        one_pass = make_engine(6000, seed=3).sweep(configs, seed=8)
        batched = make_engine(6000, seed=3, config=small_budget).sweep(configs, seed=8)
        assert one_pass.drop("warnings").equals(batched.drop("warnings"))
        assert batched["ate"].n_unique() == 4

    def test_bootstrap_rows_equal_simulate(self, make_engine):
        engine = make_engine(2000, seed=4)
        configs = [InterventionConfig(intervention_type="email_campaign"), MIXED[2]]
        results = sweep_results(engine, configs, seed=5, ci_method="percentile", n_resamples=200)
        for ic, r in zip(configs, results, strict=True):
            sim = engine.simulate(ic, seed=5, ci_method="percentile", n_resamples=200)
            assert r.ci_method == "percentile"
            assert (r.simulated_ci_lower, r.simulated_ci_upper) == (
                sim.simulated_ci_lower,
                sim.simulated_ci_upper,
            )
            assert r.recommendation == sim.recommendation

    def test_unseeded_sweep_records_one_seed(self, make_engine):
        engine = make_engine(2000, seed=5)
        configs = [
            InterventionConfig(intervention_type="email_campaign", duration_weeks=w) for w in (2, 8, 20)
        ]
        frame = engine.sweep(configs)
        assert frame["seed"].n_unique() == 1
        seed = int(frame["seed"][0])
        again = engine.sweep(configs, seed=seed)
        assert again["ate"].to_list() == frame["ate"].to_list()
        assert frame["ate"][2] == engine.simulate(configs[2], seed=seed).simulated_ate

    def test_without_heterogeneity_no_segment_columns(self, make_engine):
        engine = make_engine(2000, seed=6)
        frame = engine.sweep([MIXED[0], MIXED[3]], seed=1, calculate_heterogeneity=False)
        assert not [c for c in frame.columns if c.startswith("ate_")]
        sim = engine.simulate(MIXED[3], seed=1, calculate_heterogeneity=False)
        assert frame["ate"][1] == sim.simulated_ate
        assert frame.schema["recommended_sample_size"] == pl.Int64


class TestSweepValidation:
    def test_empty(self, make_engine):
        with pytest.raises(ValueError, match="`configs` must hold at least one InterventionConfig"):
            make_engine(500).sweep([], seed=1)

    def test_not_a_sequence(self, make_engine):
        with pytest.raises(TypeError, match="`configs` must be a list or tuple of InterventionConfig; got"):
            make_engine(500).sweep(MIXED[0], seed=1)

    def test_item_type(self, make_engine):
        with pytest.raises(TypeError, match=r"`configs\[1\]` must be an InterventionConfig; got dict"):
            make_engine(500).sweep([MIXED[0], {"intervention_type": "email_campaign"}], seed=1)

    def test_duplicates(self, make_engine):
        twin = InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8)
        with pytest.raises(ValueError, match=r"`configs\[2\]` duplicates `configs\[0\]`"):
            make_engine(500).sweep([MIXED[0], MIXED[1], twin], seed=1)

    def test_too_many(self, make_engine, config):
        capped = config.simulation.sweep.model_copy(update={"max_configs": 2})
        cfg = config.model_copy(update={"simulation": config.simulation.model_copy(update={"sweep": capped})})
        with pytest.raises(ValueError, match=r"at most 2 configs \(simulation.sweep.max_configs\); got 3"):
            make_engine(500, config=cfg).sweep(list(MIXED[:3]), seed=1)

    def test_bad_filter(self, make_engine):
        with pytest.raises(TypeError, match="`population_filter` must be a PopulationFilter or None"):
            make_engine(500).sweep(list(MIXED[:2]), {"regions": ["west"]}, seed=1)

    def test_bad_seed_and_method(self, make_engine):
        engine = make_engine(500)
        with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2\*\*64\)"):
            engine.sweep(list(MIXED[:2]), seed=-1)
        with pytest.raises(ValueError, match="`ci_method` must be one of"):
            engine.sweep(list(MIXED[:2]), seed=1, ci_method="jackknife")
