"""Compiled kernels against the plain-Python references, and determinism across threads and chunkings."""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import naive
from tests.conftest import KERNEL_ATOL, KERNEL_RTOL, fused_pass, kernel_effects, kernel_pass
from twinkernel import EffectModel, InterventionConfig, InterventionType, PopulationFilter, TwinPopulation
from twinkernel.kernels import _rng
from twinkernel.kernels import effects as K
from twinkernel.kernels.stats import combine_columns, combine_grouped, shifted_variance
from twinkernel.simulation_engine.fused import needs_effects, pass_bytes
from twinkernel.simulation_engine.options import resolve_call

SIX = tuple(t.value for t in InterventionType)
EMPTY = np.empty(0, dtype=np.int64)


@pytest.fixture
def threads():
    """Run a block at a given numba thread count, restoring the default afterwards."""
    default = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(default)


def _effects(pop, params, index=None, seed=7, chunk=64):
    return kernel_effects(pop, params, index, seed, chunk)


class TestRng:
    def test_matches_python_reference(self):
        out = np.empty(1000)
        _rng.fill_standard_normal(123, 1, 5, out)
        key = naive.key_for(123, 1)
        ref = np.array([naive.standard_normal(key, 5 + i) for i in range(1000)])
        np.testing.assert_allclose(out, ref, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        u = np.empty(1000)
        _rng.fill_uniform(123, 16, 0, u)
        ref_u = np.array([naive.uniform(naive.key_for(123, 16), i) for i in range(1000)])
        np.testing.assert_array_equal(u, ref_u)

    def test_distribution(self):
        from scipy import stats

        z = np.empty(200_000)
        _rng.fill_standard_normal(2024, 1, 0, z)
        assert stats.kstest(z, "norm").pvalue > 1e-3
        assert abs(z.mean()) < 5 / math.sqrt(z.size)
        u = np.empty(200_000)
        _rng.fill_uniform(2024, 1, 0, u)
        assert 0.0 < u.min() and u.max() < 1.0
        assert stats.kstest(u, "uniform").pvalue > 1e-3

    def test_streams_and_seeds_differ(self):
        a, b, c = np.empty(100), np.empty(100), np.empty(100)
        _rng.fill_standard_normal(1, 1, 0, a)
        _rng.fill_standard_normal(1, 2, 0, b)
        _rng.fill_standard_normal(2, 1, 0, c)
        assert not np.any(a == b) and not np.any(a == c)

    def test_any_start_offset_gives_the_same_draws(self):
        whole = np.empty(100)
        _rng.fill_standard_normal(9, 1, 0, whole)
        tail = np.empty(40)
        _rng.fill_standard_normal(9, 1, 60, tail)
        np.testing.assert_array_equal(whole[60:], tail)


class TestEffectKernel:
    @pytest.mark.parametrize("itype", SIX)
    def test_matches_reference(self, make_engine, itype):
        engine = make_engine(400, seed=3)
        ic = InterventionConfig(
            intervention_type=itype,
            channel="digital",
            duration_weeks=20,
            intensity_multiplier=2.0,
            extra_params={},
        )
        p = engine.effect_model.parameters(ic)
        out, _ = _effects(engine.population, p)
        ref = naive.individual_effects(
            engine.population.kernel_columns, None, p.params, p.adoption_multipliers, p.tier_multipliers, 7
        )
        np.testing.assert_allclose(out, ref, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)

    def test_matches_reference_on_a_subset(self, make_engine):
        engine = make_engine(500, seed=4)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="speaker_program_invitation"))
        index = np.array([499, 0, 3, 250, 17], dtype=np.int64)
        out, _ = _effects(engine.population, p, index)
        ref = naive.individual_effects(
            engine.population.kernel_columns, index, p.params, p.adoption_multipliers, p.tier_multipliers, 7
        )
        np.testing.assert_allclose(out, ref, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        whole, _ = _effects(engine.population, p)
        np.testing.assert_array_equal(out, whole[index])  # a twin's draw depends on its key only

    def test_trace_variant_fills_modifiers(self, make_engine):
        engine = make_engine(300, seed=5)
        ic = InterventionConfig(intervention_type="peer_influence_activation", intensity_multiplier=3.0)
        p = engine.effect_model.parameters(ic)
        c = engine.population.kernel_columns
        index = np.arange(300, dtype=np.int64)
        out = np.empty(300)
        trace = np.empty((300, K.N_MODIFIERS))
        K.individual_effects_traced(
            c.decile,
            c.engagement,
            c.adoption,
            c.tier,
            c.peer,
            c.propensity,
            c.twin_key,
            index,
            True,
            p.params,
            p.adoption_multipliers,
            p.tier_multipliers,
            np.uint64(7),
            32,
            out,
            trace,
        )
        plain, _ = _effects(engine.population, p)
        np.testing.assert_array_equal(out, plain)
        np.testing.assert_array_equal(trace[:, K.MODIFIER_NAMES.index("effect")], plain)
        for i in (0, 150, 299):
            ref = naive.twin_modifiers(
                int(c.twin_key[i]),
                c.decile[i],
                c.engagement[i],
                c.adoption[i],
                c.tier[i],
                c.peer[i],
                c.propensity[i],
                p.params,
                p.adoption_multipliers,
                p.tier_multipliers,
                7,
            )
            got = dict(zip(K.MODIFIER_NAMES, trace[i], strict=True))
            assert got == pytest.approx(ref, rel=KERNEL_RTOL, abs=KERNEL_ATOL)

    def test_counters(self, make_population, config):
        pop = make_population(256, decile=0, digital_engagement_score=2.0, priority_tier=9)
        p = EffectModel.from_config(config).parameters(
            InterventionConfig(intervention_type="speaker_program_invitation")
        )
        _, counts = _effects(pop, p, chunk=64)
        assert counts.shape == (math.ceil(256 / K.SUM_BLOCK), K.N_COUNTERS)  # one row per sum slot
        totals = counts.sum(axis=0)
        assert totals[K.C_DECILE_CLAMPED] == 256
        assert totals[K.C_ENGAGEMENT_CLAMPED] == 256
        assert totals[K.C_TIER_CLAMPED] == 256
        assert totals[K.C_ADOPTION_UNRECOGNISED] == 0


class TestReductions:
    def test_shifted_sums_keep_precision_with_a_large_offset(self, make_population, config):
        rng = np.random.default_rng(1)
        baseline = rng.normal(1e6, 3.0, 20_001)  # a large offset: the shifted sums must not cancel
        pop = make_population(20_001, baseline_outcome=baseline)
        p = EffectModel.from_config(config).parameters(InterventionConfig(intervention_type="email_campaign"))
        _, _, sums, _ = fused_pass(pop, p, chunk=1000, baseline_shift=pop.baseline_mean)
        totals = combine_columns(sums)
        n = baseline.size
        assert pop.baseline_mean + totals[K.S_BASELINE_SUM] / n == pytest.approx(baseline.mean(), rel=1e-14)
        variance = shifted_variance(totals[K.S_BASELINE_SUM], totals[K.S_BASELINE_SQ], n)
        assert variance == pytest.approx(baseline.var(ddof=1), rel=1e-9)
        assert shifted_variance(0.0, 0.0, 1) == 0.0 and shifted_variance(2.0, 3.0, 0) == 0.0

    def test_combine_columns_adds_in_order_and_keeps_extremes(self):
        partials = np.array([[1.0, 2.0, 3.0, 4.0, -1.0, 5.0], [0.5, 0.25, 0.0, 1.0, -3.0, 2.0]])
        np.testing.assert_array_equal(combine_columns(partials), [1.5, 2.25, 3.0, 5.0, -3.0, 5.0])


class TestDeterminism:
    def test_simulate_identical_on_one_and_two_threads(self, make_engine, threads):
        engine = make_engine(50_000, seed=9)
        ic = InterventionConfig(intervention_type="speaker_program_invitation")
        results = []
        for t in (1, 2, 1):
            threads(t)
            results.append(engine.simulate(ic, PopulationFilter(deciles=[1, 2, 3, 4, 5, 6]), seed=77))
        keys = (
            "simulated_ate",
            "simulated_ci_lower",
            "simulated_ci_upper",
            "simulated_std_error",
            "recommended_sample_size",
            "effect_heterogeneity",
        )
        for r in results[1:]:
            for k in keys:
                assert getattr(r, k) == getattr(results[0], k), k

    @pytest.mark.parametrize("chunk", [1, 7, 64, 4096, 1 << 20])
    def test_effects_independent_of_chunking(self, make_engine, chunk):
        engine = make_engine(5000, seed=10)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="digital_engagement"))
        reference, _ = _effects(engine.population, p, chunk=5000)
        got, _ = _effects(engine.population, p, chunk=chunk)
        np.testing.assert_array_equal(got, reference)

    def test_effects_computed_in_pieces_equal_one_call(self, make_engine):
        """Splitting the rows into arbitrary pieces (as a cluster would) changes no twin's effect."""
        engine = make_engine(3000, seed=11)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="email_campaign"))
        whole, _ = _effects(engine.population, p)
        bounds = [0, 1, 999, 1000, 2345, 3000]
        pieces = [
            _effects(engine.population, p, np.arange(a, b, dtype=np.int64))[0]
            for a, b in itertools.pairwise(bounds)
        ]
        np.testing.assert_array_equal(np.concatenate(pieces), whole)

    def test_reduction_partials_combine_exactly_across_pieces(self, make_engine):
        """Sum slots depend only on the position in the selection, so pieces aligned to slots give
        bit-identical per-slot sums, and so identical totals, whatever computes them."""
        engine = make_engine(10_000, seed=3)
        pop = engine.population
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="email_campaign"))
        whole = fused_pass(pop, p, chunk=256, with_groups=True, effect_shift=0.05, baseline_shift=0.3)
        step = K.SUM_BLOCK
        parts = [
            fused_pass(
                pop,
                p,
                np.arange(a, min(a + step, 10_000), dtype=np.int64),
                chunk=256,
                with_groups=True,
                effect_shift=0.05,
                baseline_shift=0.3,
            )
            for a in range(0, 10_000, step)
        ]
        np.testing.assert_array_equal(np.concatenate([part[0] for part in parts]), whole[0])
        np.testing.assert_array_equal(np.vstack([part[2] for part in parts]), whole[2])
        np.testing.assert_array_equal(np.concatenate([part[3] for part in parts]), whole[3])
        assert np.array_equal(
            combine_columns(np.vstack([part[2] for part in parts])), combine_columns(whole[2])
        )

    @pytest.mark.parametrize("chunk", [1, 64, 4096, 10_000, 1 << 20])
    def test_sums_bit_identical_for_every_chunk_size(self, make_engine, chunk):
        """Defect (issue 8): kernel_chunk_size changed the last bits of the ATE although it is not part of
        the cache key. Sums now go into fixed SUM_BLOCK slots, so every chunk size gives the same bits."""
        engine = make_engine(3 * K.SUM_BLOCK + 123, seed=12)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="speaker_program_invitation"))
        kwargs = {"with_groups": True, "effect_shift": 0.05, "baseline_shift": 0.3}
        reference = fused_pass(engine.population, p, chunk=K.SUM_BLOCK, **kwargs)
        got = fused_pass(engine.population, p, chunk=chunk, **kwargs)
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_array_equal(a, b)
        assert reference[2].shape[0] == 4  # slots: ceil(n / SUM_BLOCK), whatever the chunk

    def test_effects_follow_the_twin_through_any_row_order(self, make_engine):
        """Defect (issue 8): a twin's noise depended on its row. Shuffled rows carry their effects along."""
        engine = make_engine(3000, seed=14)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="email_campaign"))
        whole, _ = _effects(engine.population, p)
        perm = np.random.default_rng(5).permutation(3000).astype(np.int64)
        shuffled, _ = _effects(engine.population, p, perm)
        np.testing.assert_array_equal(shuffled, whole[perm])

    @settings(max_examples=25, deadline=None)
    @given(seed=st.integers(0, 2**63 - 1), start=st.integers(0, 2**40), n=st.integers(1, 64))
    def test_rng_is_a_pure_function_of_seed_and_index(self, seed, start, n):
        a = np.empty(n)
        _rng.fill_standard_normal(seed, 1, start, a)
        b = np.empty(1)
        _rng.fill_standard_normal(seed, 1, start + n - 1, b)
        assert a[-1] == b[0]
        assert np.isfinite(a).all()


class TestFusedPass:
    @pytest.mark.parametrize("with_index", [False, True])
    def test_matches_separate_kernels_and_reference(self, make_engine, with_index):
        engine = make_engine(2500, seed=13)
        pop = engine.population
        c = pop.kernel_columns
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="speaker_program_invitation"))
        rng = np.random.default_rng(4)
        index = np.sort(rng.choice(2500, 1300, replace=False)).astype(np.int64) if with_index else None
        offsets = pop.segment_offsets
        out, counts, sums, groups = fused_pass(
            pop, p, index, seed=7, chunk=256, with_groups=True, effect_shift=0.1, baseline_shift=0.3
        )
        plain = naive.individual_effects(c, index, p.params, p.adoption_multipliers, p.tier_multipliers, 7)
        np.testing.assert_allclose(out, plain, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        assert counts.shape == ((out.size + K.SUM_BLOCK - 1) // K.SUM_BLOCK, K.N_COUNTERS)
        rows = np.arange(2500) if index is None else index
        assert sums[:, K.S_EFFECT_SUM].sum() == pytest.approx((plain - 0.1).sum(), rel=1e-12)
        assert sums[:, K.S_EFFECT_SQ].sum() == pytest.approx(((plain - 0.1) ** 2).sum(), rel=1e-12)
        assert sums[:, K.S_BASELINE_SUM].sum() == pytest.approx((c.baseline[rows] - 0.3).sum(), rel=1e-10)
        assert sums[:, K.S_EFFECT_MIN].min() == plain.min() and sums[:, K.S_EFFECT_MAX].max() == plain.max()
        gn, gmean, gvar = combine_grouped(groups, 0.1)
        ref = naive.grouped_moments(out, c.segment_codes, [len(x) for x in c.segment_labels], index)
        for k, (rn, rm, rv) in enumerate(ref):
            a, b = offsets[k], offsets[k + 1]
            np.testing.assert_array_equal(gn[a:b], rn)
            np.testing.assert_allclose(gmean[a:b], rm, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(gvar[a:b], rv, rtol=1e-8, atol=1e-15)

    def test_groups_skipped_when_not_asked(self, make_engine):
        engine = make_engine(300)
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="email_campaign"))
        _, _, _, groups = fused_pass(engine.population, p, seed=1, chunk=128)
        assert groups.shape == (1, 0, 3)

    @pytest.mark.parametrize("with_index", [False, True])
    def test_empty_out_skips_the_stores_and_changes_no_bit(self, make_engine, with_index):
        """An analytic interval needs no per-twin effect: the kernel then stores none, same tables."""
        engine = make_engine(3 * K.SUM_BLOCK + 77, seed=21)
        pop = engine.population
        c = pop.kernel_columns
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="peer_influence_activation"))
        index = np.arange(pop.n - 1, -1, -2, dtype=np.int64) if with_index else None
        opts = {"chunk": 256, "with_groups": True, "effect_shift": 0.05, "baseline_shift": 0.3}
        stored = fused_pass(pop, p, index, **opts)
        _, *skipped = fused_pass(pop, p, index, store_effects=False, **opts)
        for got, want in zip(skipped, stored[1:], strict=True):
            np.testing.assert_array_equal(got, want)
        plain = naive.individual_effects(c, index, p.params, p.adoption_multipliers, p.tier_multipliers, 7)
        np.testing.assert_allclose(stored[0], plain, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        assert skipped[1][:, K.S_EFFECT_SUM].sum() == pytest.approx((plain - 0.05).sum(), rel=1e-12)
        gated = skipped[0][:, K.C_PEER_GATED].sum()
        assert gated == np.count_nonzero(plain == 0.0) and 0 < gated < plain.size

    @pytest.mark.parametrize("n_dims", [1, 4, 5, 9])
    def test_segment_sums_for_any_number_of_dimensions(self, make_engine, n_dims):
        """Segments go up to four dimensions per sweep of a block; any count matches the reference."""
        engine = make_engine(2 * K.SUM_BLOCK + 5, seed=22)
        pop = engine.population
        c = pop.kernel_columns
        p = engine.effect_model.parameters(InterventionConfig(intervention_type="email_campaign"))
        rng = np.random.default_rng(23)
        sizes = [int(s) for s in rng.integers(1, 12, n_dims)]
        codes = tuple(rng.integers(0, s, pop.n).astype(np.uint8) for s in sizes)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        out, _, _, groups = kernel_pass(
            c,
            p.params,
            p.adoption_multipliers,
            p.tier_multipliers,
            codes=codes,
            offsets=offsets,
            seed=3,
            chunk=K.SUM_BLOCK,
            with_groups=True,
        )
        gn, gmean, gvar = combine_grouped(groups, 0.0)
        for k, (rn, rm, rv) in enumerate(naive.grouped_moments(out, codes, sizes)):
            a, b = offsets[k], offsets[k + 1]
            np.testing.assert_array_equal(gn[a:b], rn)
            np.testing.assert_allclose(gmean[a:b], rm, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(gvar[a:b], rv, rtol=1e-8, atol=1e-15)
        assert gn.sum() == n_dims * pop.n

    def test_engine_keeps_effects_only_for_a_bootstrap(self, make_engine):
        engine = make_engine(1500, seed=24)
        ic = InterventionConfig(intervention_type="speaker_program_invitation")
        sel = engine._select(ic, PopulationFilter())
        analytic = resolve_call(engine.config, engine.effect_model, ic, None, None, True, 5, None, None)
        boot = resolve_call(engine.config, engine.effect_model, ic, None, None, True, 5, "bca", 50)
        assert not needs_effects(analytic) and needs_effects(boot)
        kept = engine._fused_pass(sel, analytic)
        lean = engine._fused_pass(sel, analytic, keep_effects=False)
        assert lean.effects.shape == kept.effects.shape == (1500,)
        assert np.isnan(lean.effects).all() and not lean.effects.flags.owndata
        assert pass_bytes(kept) - pass_bytes(lean) == 1500 * 8
        np.testing.assert_array_equal(lean.counts, kept.counts)
        np.testing.assert_array_equal(lean.totals, kept.totals)
        np.testing.assert_array_equal(lean.groups, kept.groups)
        plain = naive.individual_effects(
            engine.population.kernel_columns,
            None,
            analytic.params.params,
            analytic.params.adoption_multipliers,
            analytic.params.tier_multipliers,
            5,
        )
        np.testing.assert_allclose(kept.effects, plain, rtol=KERNEL_RTOL, atol=KERNEL_ATOL)
        result = engine.simulate(ic, seed=5)
        assert result.simulated_ate == pytest.approx(plain.mean(), rel=1e-12)
        assert result.memory_usage_mb * 2**20 == pass_bytes(lean)


class TestBareEffectsPass:
    """The benchmarks' same-run reference of ``simulate`` computes the same effects (SPEC §3)."""

    @pytest.mark.parametrize("itype", SIX)
    def test_sums_the_reference_effects(self, make_engine, itype):
        from benchmarks.bench_simulation import bare_pass_call

        engine = make_engine(3000, seed=25)
        extra = {"additional_calls": 2} if itype == "call_frequency_increase" else {}
        ic = InterventionConfig(intervention_type=itype, extra_params=extra)
        p = engine.effect_model.parameters(ic)
        c = engine.population.kernel_columns
        plain = naive.individual_effects(c, None, p.params, p.adoption_multipliers, p.tier_multipliers, 9)
        got = bare_pass_call(engine.population, ic, seed=9)()
        assert got == pytest.approx(plain.sum(), rel=1e-12)
        assert got == pytest.approx(engine.simulate(ic, seed=9).simulated_ate * 3000, rel=1e-12)


class TestSelectionInvariants:
    """A pass over every twin keeps what does not depend on the intervention; later passes reuse it."""

    def test_kernel_skips_only_the_invariant_tables(self, make_population, config):
        frame = make_population(3 * K.SUM_BLOCK + 9, seed=26).frame.with_columns(
            (pl.col("digital_engagement_score") * 1.4 - 0.2).alias("digital_engagement_score"),
            (pl.col("baseline_propensity") * 1.4 - 0.2).alias("baseline_propensity"),
        )
        pop = TwinPopulation.from_frame(frame, config=config)
        p = EffectModel.from_config(config).parameters(InterventionConfig(intervention_type="email_campaign"))
        c = pop.kernel_columns
        opts = {"seed": 4, "chunk": 512, "with_groups": True, "effect_shift": 0.05, "baseline_shift": 0.3}
        _, *full = fused_pass(pop, p, store_effects=False, **opts)
        _, *lean = fused_pass(pop, p, store_effects=False, invariants=False, **opts)
        inv = K.INVARIANT_COUNTERS
        other = np.setdiff1d(np.arange(K.N_COUNTERS), inv)
        assert full[0][:, inv].sum() > 0 and not lean[0][:, inv].any()
        np.testing.assert_array_equal(lean[0][:, other], full[0][:, other])
        baseline = [K.S_BASELINE_SUM, K.S_BASELINE_SQ]
        assert not lean[1][:, baseline].any()
        np.testing.assert_array_equal(
            np.delete(lean[1], baseline, axis=1), np.delete(full[1], baseline, axis=1)
        )
        assert not lean[2][:, :, 0].any()
        np.testing.assert_array_equal(lean[2][:, :, 1:], full[2][:, :, 1:])
        assert full[2][:, :, 0].sum() == len(c.segment_codes) * pop.n

    def test_engine_reuses_them_bit_for_bit(self, make_engine):
        engine = make_engine(2 * K.SUM_BLOCK + 11, seed=27)
        ic = InterventionConfig(intervention_type="speaker_program_invitation")
        other = InterventionConfig(intervention_type="peer_influence_activation")
        sel = engine._select(ic, PopulationFilter())
        call = resolve_call(engine.config, engine.effect_model, ic, None, None, True, 8, None, None)
        fresh = fused_pass(
            engine.population,
            call.params,
            seed=8,
            chunk=engine.config.simulation.kernel_chunk_size,
            with_groups=True,
            effect_shift=engine._fused_pass(sel, call).effect_shift,
            baseline_shift=engine.population.baseline_mean,
        )
        assert [key[0] for key in engine._invariants] == [True]
        reused = engine._fused_pass(sel, call)
        np.testing.assert_array_equal(reused.effects, fresh[0])
        np.testing.assert_array_equal(reused.counts, fresh[1].sum(axis=0))
        np.testing.assert_array_equal(reused.totals, combine_columns(fresh[2]))
        np.testing.assert_array_equal(reused.groups, fresh[3])
        first = engine.simulate(other, seed=8)
        again = engine.simulate(other, seed=8)
        assert first.simulated_ate == again.simulated_ate and first.outcome_std == again.outcome_std
        assert first.effect_heterogeneity == again.effect_heterogeneity
        assert first.data_quality == again.data_quality
        plain = naive.individual_effects(
            engine.population.kernel_columns,
            None,
            engine.effect_model.parameters(other).params,
            engine.effect_model.parameters(other).adoption_multipliers,
            engine.effect_model.parameters(other).tier_multipliers,
            8,
        )
        assert again.simulated_ate == pytest.approx(plain.mean(), rel=1e-12)
