"""SimulationEngine: effect-modifier edge cases, boundary conditions and the decision rules (SPEC §3)."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from scipy import stats

from tests.conftest import kernel_effects
from tests.naive import twin_modifiers
from twinkernel import (
    EffectModel,
    InterventionConfig,
    InterventionType,
    PopulationFilter,
    SimulationCache,
    SimulationEngine,
    SimulationRecommendation,
    SimulationStatus,
    TwinPopulation,
)
from twinkernel.effect_model import duration_factor
from twinkernel.kernels import effects as K

EMAIL = InterventionConfig(intervention_type="email_campaign", channel="email")
SIX_TYPES = tuple(t.value for t in InterventionType)


def _uniform_population(n: int, **columns) -> TwinPopulation:
    """``n`` identical twins with the given column values (defaults: a plain mid-range HCP)."""
    base = {
        "decile": 5,
        "digital_engagement_score": 0.5,
        "adoption_stage": "early_majority",
        "priority_tier": 3,
        "peer_influence_score": 0.9,
        "baseline_propensity": 0.5,
        "baseline_outcome": 0.3,
        "specialty": "oncology",
        "region": "south",
    }
    base.update(columns)
    frame = pl.DataFrame({k: [v] * n for k, v in base.items()})
    return TwinPopulation.from_frame(frame, model_id="m")


def _engine(pop: TwinPopulation, **kwargs) -> SimulationEngine:
    engine = SimulationEngine(pop, **kwargs)
    engine.cache = None
    return engine


def _noiseless(config, itype: str = "email_campaign", **override) -> EffectModel:
    return EffectModel(
        effects=config.simulation.intervention_effects,
        overrides={itype: {"noise_sd": 0.0, **override}},
        provenance="test: noise removed",
    )


class TestEffectModifierEdgeCases:
    def test_extreme_low_decile(self):
        engine = _engine(_uniform_population(200, decile=0))
        table = engine.modifier_table(EMAIL, seed=1)
        # Decile 0 is clamped to 1: the highest decile multiplier, 1.2 - 0.04 * 0.
        assert table["decile"].to_list() == [pytest.approx(1.2, abs=1e-15)] * 200
        result = engine.simulate(EMAIL, seed=1)
        assert result.data_quality["decile"]["clamped"] == 200

    def test_extreme_high_decile(self):
        engine = _engine(_uniform_population(200, decile=11))
        table = engine.modifier_table(EMAIL, seed=1)
        assert table["decile"].unique().to_list() == [pytest.approx(1.2 - 0.04 * 9, abs=1e-15)]
        assert engine.simulate(EMAIL, seed=1).data_quality["decile"]["clamped"] == 200

    def test_zero_engagement_score(self):
        table = _engine(_uniform_population(150, digital_engagement_score=0.0)).modifier_table(EMAIL, seed=2)
        assert set(table["engagement"].to_list()) == {0.8}

    def test_max_engagement_score(self):
        table = _engine(_uniform_population(150, digital_engagement_score=1.0)).modifier_table(EMAIL, seed=2)
        assert table["engagement"].unique().to_list() == [pytest.approx(1.2, abs=1e-15)]

    def test_negative_engagement(self):
        engine = _engine(_uniform_population(150, digital_engagement_score=-0.5))
        assert set(engine.modifier_table(EMAIL, seed=2)["engagement"].to_list()) == {0.8}
        assert engine.simulate(EMAIL, seed=2).data_quality["digital_engagement_score"]["clamped"] == 150

    def test_invalid_adoption_stage(self):
        engine = _engine(_uniform_population(150, adoption_stage="unknown"))
        assert engine.population.frame["adoption_stage"].unique().to_list() == ["other"]
        assert set(engine.modifier_table(EMAIL, seed=3)["adoption"].to_list()) == {1.0}
        result = engine.simulate(EMAIL, seed=3)
        assert result.data_quality["adoption_stage"]["unrecognised"] == 150

    def test_zero_intensity_multiplier(self, config):
        with pytest.raises(
            ValidationError, match=r"intensity_multiplier[\s\S]*greater than or equal to 0\.1"
        ):
            InterventionConfig(intervention_type="email_campaign", intensity_multiplier=0.0)
        # Below the API boundary the kernel still behaves: intensity 0 removes the systematic effect, so
        # what remains is noise only (exactly 0 without noise).
        pop = _uniform_population(500)
        for noise_sd, expected_sd in ((0.0, 0.0), (0.02, 0.02)):
            p = _noiseless(config, noise_sd=noise_sd).parameters(EMAIL)
            params = p.params.copy()
            params[K.P_INTENSITY] = 0.0
            out, _ = kernel_effects(pop, p, seed=5, params=params)
            if expected_sd == 0.0:
                assert np.all(out == 0.0)
            else:
                assert abs(out.mean()) < 4 * expected_sd / math.sqrt(pop.n)
                assert out.std() == pytest.approx(expected_sd, rel=0.1)

    def test_extreme_intensity(self, config):
        pop = _uniform_population(
            300,
            decile=1,
            digital_engagement_score=1.0,
            adoption_stage="laggard",
            priority_tier=1,
            baseline_propensity=1.0,
        )
        cfg = InterventionConfig(
            intervention_type="speaker_program_invitation", intensity_multiplier=10.0, duration_weeks=52
        )
        result = _engine(pop).simulate(cfg, seed=4)
        cap = config.simulation.intervention_effects.effect_cap
        # 0.12 * 1.2 * 1.2 * 1.4 * 10 * ln(53)/ln(9) * 1.5 * 1.2 is about 7.9, far above the cap.
        uncapped = 0.12 * 1.2 * 1.2 * 1.4 * 10 * duration_factor(52, 8) * 1.5 * 1.2
        assert uncapped > 5 * cap
        assert result.simulated_ate == cap
        assert result.simulated_std_error == 0.0
        assert result.data_quality["effect"]["capped"] == 300
        assert any("cap" in w for w in result.warnings)

    def test_zero_duration(self, config):
        with pytest.raises(ValidationError, match=r"duration_weeks[\s\S]*greater than or equal to 1"):
            InterventionConfig(intervention_type="email_campaign", duration_weeks=0)
        assert duration_factor(0, 8) == 0.0
        assert duration_factor(8, 8) == 1.0
        pop = _uniform_population(200)
        p = _noiseless(config).parameters(EMAIL)
        params = p.params.copy()
        params[K.P_DURATION] = duration_factor(0, 8)
        out, _ = kernel_effects(pop, p, seed=1, params=params)
        assert np.all(out == 0.0)

    def test_combined_extreme_modifiers(self, config):
        n = 400
        frame = pl.DataFrame(
            {
                "decile": [-100, 127, 0, 11] * (n // 4),
                "digital_engagement_score": [1e300, -1e300, np.inf, -np.inf] * (n // 4),
                "adoption_stage": ["???", "laggard", "", "innovator"] * (n // 4),
                "priority_tier": [-99, 99, 0, 6] * (n // 4),
                "peer_influence_score": [1e308, -1e308, 2.0, -2.0] * (n // 4),
                "baseline_propensity": [np.inf, -np.inf, 1e10, -1e10] * (n // 4),
            }
        )
        pop = TwinPopulation.from_frame(frame)
        cap = config.simulation.intervention_effects.effect_cap
        for itype in SIX_TYPES:
            ic = InterventionConfig(intervention_type=itype, intensity_multiplier=10.0, duration_weeks=52)
            result = _engine(pop).simulate(ic, seed=9)
            table = _engine(pop).modifier_table(ic, seed=9)
            values = table.drop("twin_id").to_numpy()
            assert np.isfinite(values).all(), itype
            assert (np.abs(table["effect"].to_numpy()) <= cap).all()
            assert math.isfinite(result.simulated_ate) and abs(result.simulated_ate) <= cap
            assert result.status is SimulationStatus.COMPLETED
            assert result.data_quality["decile"]["clamped"] == n
            assert result.data_quality["digital_engagement_score"]["clamped"] == n


class TestBoundaryConditions:
    def test_exactly_100_twins(self, make_engine):
        result = make_engine(100).simulate(EMAIL, seed=11)
        assert result.status is SimulationStatus.COMPLETED
        assert result.twin_count == 100
        # Below t_distribution_below_n the analytic interval uses Student t with n - 1 df.
        half = stats.t.ppf(0.975, df=99) * result.simulated_std_error
        assert result.simulated_ci_lower == pytest.approx(result.simulated_ate - half, rel=1e-12)
        assert result.simulated_ci_upper == pytest.approx(result.simulated_ate + half, rel=1e-12)

    def test_99_twins_fails(self, make_engine):
        result = make_engine(99).simulate(EMAIL, seed=11)
        assert result.status is SimulationStatus.FAILED
        assert result.twin_count == 0
        assert result.simulated_ate == 0.0
        assert "Insufficient twins: 99" in result.error_message
        # A failed simulation recommends nothing (it used to say SKIP, as if the effect had been judged).
        assert result.recommendation is None
        assert result.recommendation_rationale.startswith("no recommendation: the simulation failed")
        assert "Insufficient twins: 99" in result.recommendation_rationale

    def test_empty_population(self):
        pop = TwinPopulation.from_frame(pl.DataFrame({"decile": pl.Series([], dtype=pl.Int64)}))
        result = _engine(pop).simulate(EMAIL, seed=1)
        assert pop.n == 0
        assert result.status is SimulationStatus.FAILED
        assert "Insufficient twins: 0" in result.error_message
        assert (result.simulated_ci_lower, result.simulated_ci_upper) == (0.0, 0.0)

    def test_single_twin(self):
        result = _engine(_uniform_population(1)).simulate(EMAIL, seed=1)
        assert result.status is SimulationStatus.FAILED
        assert "Insufficient twins: 1" in result.error_message
        assert result.twin_count == 0

    def test_ci_bounds_equal(self, config):
        pop = _uniform_population(250, decile=2, digital_engagement_score=0.75)
        result = _engine(pop, effect_model=_noiseless(config)).simulate(EMAIL, seed=1)
        expected = 0.05 * (1.2 - 0.04) * (0.8 + 0.4 * 0.75) * 1.0 * 1.0 * 1.0 * 1.0 * (0.8 + 0.4 * 0.5)
        assert result.simulated_ate == pytest.approx(expected, rel=1e-14)
        assert result.simulated_std_error == 0.0
        assert result.simulated_ci_lower == result.simulated_ci_upper == result.simulated_ate
        assert result.recommendation is SimulationRecommendation.DEPLOY
        assert result.effect_provenance == "test: noise removed"

    def test_negative_ate(self, config, make_engine):
        harmful = EffectModel(
            effects=config.simulation.intervention_effects,
            overrides={"email_campaign": {"base_effect": -0.05}},
        )
        result = make_engine(3000, effect_model=harmful).simulate(EMAIL, seed=5)
        assert result.simulated_ate < 0
        assert result.simulated_ci_upper < 0
        assert result.recommendation is SimulationRecommendation.SKIP
        assert result.recommendation_rationale.startswith("skip (harmful)")
        # A large harmful effect is never DEPLOY (the original compared |ATE| with the threshold).
        strong = EffectModel(
            effects=config.simulation.intervention_effects,
            overrides={"email_campaign": {"base_effect": -0.5}},
        )
        assert make_engine(3000, effect_model=strong).simulate(EMAIL, seed=5).recommendation is (
            SimulationRecommendation.SKIP
        )

    def test_confidence_level_extremes(self, make_engine):
        engine = make_engine(5000)
        r80 = engine.simulate(EMAIL, confidence_level=0.80, seed=3)
        r99 = engine.simulate(EMAIL, confidence_level=0.99, seed=3)
        assert r80.simulated_ate == r99.simulated_ate
        w80 = r80.simulated_ci_upper - r80.simulated_ci_lower
        w99 = r99.simulated_ci_upper - r99.simulated_ci_lower
        assert w99 / w80 == pytest.approx(stats.norm.ppf(0.995) / stats.norm.ppf(0.90), rel=1e-12)
        assert r80.confidence_level == 0.80
        for bad in (0.0, 1.0, -0.5, 1.5):
            with pytest.raises(ValueError, match="confidence_level"):
                engine.simulate(EMAIL, confidence_level=bad, seed=3)


class TestRecommendation:
    @pytest.mark.parametrize(
        ("base_effect", "expected", "phrase"),
        [
            (-0.04, SimulationRecommendation.SKIP, "harmful"),
            (0.005, SimulationRecommendation.SKIP, "skip: P(effect >= 0.02)"),
            (0.035, SimulationRecommendation.REFINE, "refine: P(effect >= 0.02)"),
            (0.052, SimulationRecommendation.REFINE, "P(effect >= 0.05) = 0.5"),
            (0.09, SimulationRecommendation.DEPLOY, "deploy: P(effect >= 0.05)"),
        ],
    )
    def test_rules_in_order(self, make_engine, config, base_effect, expected, phrase):
        # uniform twins (modifier product 1.0), no noise: the ATE is the base effect exactly; with priors
        # sigma_delta = prior_relative_sd * |b| and the probabilities decide (SPEC).
        engine = _engine(
            _uniform_population(300, decile=6, digital_engagement_score=0.5, baseline_propensity=0.5),
            effect_model=_noiseless(config, base_effect=base_effect),
        )
        result = engine.simulate(EMAIL, seed=1)
        assert result.simulated_ate == pytest.approx(base_effect, rel=1e-12)
        sd = config.simulation.intervention_effects.prior_relative_sd * abs(base_effect)
        assert result.effect_uncertainty_sd == pytest.approx(sd, rel=1e-9)
        assert result.prob_above_deploy == pytest.approx(stats.norm.cdf((base_effect - 0.05) / sd), abs=1e-12)
        assert result.prob_harmful == pytest.approx(stats.norm.cdf(-base_effect / sd), abs=1e-12)
        assert result.recommendation is expected
        assert phrase in result.recommendation_rationale

    def test_engine_threshold_is_the_deploy_threshold(self, make_engine, config):
        engine = make_engine(100, min_effect_threshold=0.08)
        assert engine.min_effect_threshold == 0.08
        uniform = _uniform_population(300, decile=6, digital_engagement_score=0.5, baseline_propensity=0.5)
        model = _noiseless(config, base_effect=0.12)
        at_05 = _engine(uniform, effect_model=model).simulate(EMAIL, seed=1)
        at_11 = _engine(uniform, min_effect_threshold=0.11, effect_model=model).simulate(EMAIL, seed=1)
        assert at_05.recommendation is SimulationRecommendation.DEPLOY
        # sigma_delta = 0.25 * 0.12 = 0.03: P(effect >= 0.11) = 0.63 < 0.70 -> REFINE
        assert at_11.prob_above_deploy == pytest.approx(stats.norm.cdf(0.01 / 0.03), abs=1e-12)
        assert at_11.recommendation is SimulationRecommendation.REFINE
        with pytest.raises(ValueError, match="min_effect_threshold"):
            make_engine(100, min_effect_threshold=1.5)

    def test_thresholds_checked_against_each_other(self, make_engine, config):
        refine = config.simulation.recommendations.refine_threshold
        assert refine == 0.02
        # A deploy threshold below the refine threshold used to invert the bands silently.
        with pytest.raises(
            ValueError,
            match=r"`min_effect_threshold` \(deploy threshold, 0\.01\).*refine_threshold` \(0\.02\)",
        ):
            make_engine(100, min_effect_threshold=0.01)
        assert make_engine(100, min_effect_threshold=refine).min_effect_threshold == refine
        for bad in ("0.05", True):
            with pytest.raises(ValueError, match=r"`min_effect_threshold` must be a number"):
                make_engine(100, min_effect_threshold=bad)


class TestDecisionQuantities:
    def test_sample_size_power_and_cohens_d(self, make_engine, config):
        engine = make_engine(4000)
        result = engine.simulate(InterventionConfig(intervention_type="sample_distribution"), seed=2)
        rec = config.simulation.recommendations
        c = engine.population.kernel_columns
        effects = engine.modifier_table(InterventionConfig(intervention_type="sample_distribution"), seed=2)[
            "effect"
        ].to_numpy()
        sigma2 = np.var(c.baseline, ddof=1) + np.var(effects, ddof=1)
        z = stats.norm.ppf(1 - rec.alpha / 2) + stats.norm.ppf(rec.power)
        expected = math.ceil(2 * z**2 * sigma2 / result.simulated_ate**2)
        assert rec.min_sample_size < expected < rec.max_sample_size
        assert result.recommended_sample_size == expected
        assert result.outcome_std == pytest.approx(math.sqrt(sigma2), rel=1e-9)
        assert result.effect_size_cohens_d == pytest.approx(
            result.simulated_ate / math.sqrt(sigma2), rel=1e-9
        )
        # At the (unrounded) recommended size the power is the configured power; rounding up adds a little.
        assert rec.power <= result.statistical_power < rec.power + 0.01

    def test_sample_size_bounds(self, config, make_engine):
        rec = config.simulation.recommendations
        big = make_engine(500, effect_model=_noiseless(config, base_effect=0.5)).simulate(EMAIL, seed=1)
        assert big.recommended_sample_size == rec.min_sample_size
        tiny = make_engine(500, effect_model=_noiseless(config, base_effect=1e-4)).simulate(EMAIL, seed=1)
        assert tiny.recommended_sample_size == rec.max_sample_size

    def test_simulation_confidence_formula(self, make_engine):
        result = make_engine(2500).simulate(EMAIL, seed=4)
        ate, se = result.simulated_ate, result.simulated_std_error
        expected = 0.3 * min(1, 2500 / 10000) + 0.3 * max(0, 1 - se / (abs(ate) + 0.001)) + 0.4 * 0.7
        assert result.simulation_confidence == pytest.approx(expected, rel=1e-12)

    def test_fidelity_warning(self, make_engine):
        low = make_engine(500, model_fidelity_score=0.6).simulate(EMAIL, seed=1)
        assert low.fidelity_warning is True
        assert "0.600" in low.fidelity_warning_reason
        ok = make_engine(500, model_fidelity_score=0.7).simulate(EMAIL, seed=1)
        assert ok.fidelity_warning is False and ok.fidelity_warning_reason is None
        perfect = make_engine(500, model_fidelity_score=1.0).simulate(EMAIL, seed=1)
        assert perfect.simulation_confidence > ok.simulation_confidence


class TestInterventionTypes:
    def test_peer_influence_threshold_gates_effect(self, make_engine):
        engine = make_engine(3000)
        cfg = InterventionConfig(intervention_type="peer_influence_activation")
        table = engine.modifier_table(cfg, seed=8)
        peer = engine.population.frame["peer_influence_score"].to_numpy()
        effects = table["effect"].to_numpy()
        assert np.all(effects[peer < 0.7] == 0.0)
        assert np.all(effects[peer >= 0.7] != 0.0)
        result = engine.simulate(cfg, seed=8)
        assert result.simulated_ate == pytest.approx(effects.mean(), rel=1e-12)

    def test_additional_calls_raise_base_effect(self, config, make_engine):
        engine = make_engine(500, effect_model=_noiseless(config, "call_frequency_increase"))
        base = InterventionConfig(intervention_type="call_frequency_increase")
        more = InterventionConfig(
            intervention_type="call_frequency_increase", extra_params={"additional_calls": 3}
        )
        t0 = engine.modifier_table(base, seed=1)
        t3 = engine.modifier_table(more, seed=1)
        assert t0["base_effect"][0] == pytest.approx(0.08)
        assert t3["base_effect"][0] == pytest.approx(0.08 + 3 * 0.02)
        ratio = engine.simulate(more, seed=1).simulated_ate / engine.simulate(base, seed=1).simulated_ate
        assert ratio == pytest.approx(0.14 / 0.08, rel=1e-12)
        for bad in (-1, 11, 2.5, "3"):
            # Checked when the config is built (it used to pass validation and fail only at simulate).
            with pytest.raises(ValidationError, match=r"additional_calls.*from 0 to 10"):
                InterventionConfig(
                    intervention_type="call_frequency_increase", extra_params={"additional_calls": bad}
                )

    def test_priority_tier_only_for_speaker_programs(self, make_engine):
        engine = make_engine(1000)
        tiers = engine.population.frame["priority_tier"].to_numpy()
        speaker = engine.modifier_table(InterventionConfig(intervention_type="speaker_program_invitation"))
        expected = np.array([1.0, 1.5, 1.2, 1.0, 0.8, 0.6])[tiers]
        np.testing.assert_array_equal(speaker["tier"].to_numpy(), expected)
        email = engine.modifier_table(EMAIL)
        assert set(email["tier"].to_list()) == {1.0}

    def test_channel_multiplier(self, make_engine):
        engine = make_engine(200)
        digital = InterventionConfig(intervention_type="email_campaign", channel="digital")
        assert set(engine.modifier_table(digital)["channel"].to_list()) == {0.8}
        assert set(engine.modifier_table(EMAIL)["channel"].to_list()) == {1.0}
        other = InterventionConfig(intervention_type="sample_distribution", channel="digital")
        assert set(engine.modifier_table(other)["channel"].to_list()) == {1.0}

    def test_unknown_type_uses_default_and_warns(self, make_engine):
        engine = make_engine(500)
        result = engine.simulate(InterventionConfig(intervention_type="billboard"), seed=3)
        email = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=3)
        assert result.simulated_ate == email.simulated_ate  # same 0.05 / 0.02 default, same draws
        assert any("unknown intervention_type 'billboard'" in w for w in result.warnings)

    def test_six_types_match_reference(self, make_engine):
        engine = make_engine(300)
        c = engine.population.kernel_columns
        for itype in SIX_TYPES:
            ic = InterventionConfig(
                intervention_type=itype, channel="digital", duration_weeks=12, intensity_multiplier=1.5
            )
            p = engine.effect_model.parameters(ic)
            table = engine.modifier_table(ic, seed=21)
            for i in (0, 17, 299):
                ref = twin_modifiers(
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
                    21,
                )
                for name, value in ref.items():
                    assert table[name][i] == pytest.approx(value, rel=1e-12, abs=1e-15), (itype, i, name)


class TestSelectionAndResult:
    def test_filter_and_targets_intersect(self, make_engine):
        engine = make_engine(5000)
        frame = engine.population.frame
        cfg = InterventionConfig(
            intervention_type="email_campaign", target_deciles=[1, 2, 3], target_regions=["south"]
        )
        pf = PopulationFilter(specialties=["oncology", "cardiology"], min_baseline_outcome=0.0)
        result = engine.simulate(cfg, pf, seed=1)
        in_filter = frame.filter(
            pl.col("specialty").cast(pl.String).is_in(["oncology", "cardiology"])
            & (pl.col("baseline_outcome") >= 0.0)
        )
        targeted = in_filter.filter(
            pl.col("decile").is_in([1, 2, 3]) & (pl.col("region").cast(pl.String) == "south")
        )
        assert result.population_size == in_filter.height
        assert result.twin_count == result.targeted_count == targeted.height
        assert set(result.effect_heterogeneity.by_region) == {"south"}
        assert set(result.effect_heterogeneity.by_decile) <= {"1", "2", "3"}

    def test_zero_bound_is_a_bound(self, make_engine):
        engine = make_engine(3000)
        frame = engine.population.frame
        result = engine.simulate(EMAIL, PopulationFilter(max_baseline_outcome=0.0), seed=1)
        n_below = int((frame["baseline_outcome"] <= 0.0).sum())
        assert n_below < 100
        assert result.status is SimulationStatus.FAILED
        assert f"Insufficient twins: {n_below}" in result.error_message

    def test_small_segments_left_out(self, make_population):
        pop = make_population(500)
        frame = pop.frame.with_columns(
            pl.when(pl.int_range(pl.len()) < 9)
            .then(pl.lit("rare"))
            .otherwise(pl.col("specialty").cast(pl.String))
            .alias("specialty")
        )
        engine = _engine(TwinPopulation.from_frame(frame))
        het = engine.simulate(EMAIL, seed=1).effect_heterogeneity
        assert "rare" not in het.by_specialty
        assert sum(s["n"] for s in het.by_specialty.values()) == 500 - 9
        for segs in (het.by_decile, het.by_region, het.by_adoption_stage):
            assert sum(s["n"] for s in segs.values()) == 500

    def test_heterogeneity_values_and_top_segments(self, make_engine):
        engine = make_engine(4000)
        result = engine.simulate(EMAIL, seed=6)
        effects = engine.modifier_table(EMAIL, seed=6)["effect"].to_numpy()
        frame = engine.population.frame
        for label, seg in result.effect_heterogeneity.by_region.items():
            sel = effects[(frame["region"].cast(pl.String) == label).to_numpy()]
            assert seg["n"] == sel.size
            assert seg["ate"] == pytest.approx(sel.mean(), rel=1e-12)
            assert seg["std"] == pytest.approx(sel.std(ddof=1), rel=1e-9)
            n = seg["n"]
            crit = stats.t.ppf(0.975, df=n - 1) if n < 1000 else stats.norm.ppf(0.975)
            half = crit * seg["std"] / math.sqrt(n)
            assert seg["ci_upper"] == pytest.approx(seg["ate"] + half, rel=1e-9)
            assert seg["ci_lower"] == pytest.approx(seg["ate"] - half, rel=1e-9)
        top = result.effect_heterogeneity.get_top_segments(3)
        all_ates = sorted((abs(s["ate"]) for _, _, s in result.effect_heterogeneity.segments()), reverse=True)
        assert [abs(t["ate"]) for t in top] == all_ates[:3]
        assert {"dimension", "segment", "ate", "n"} <= set(top[0])

    def test_no_heterogeneity_when_not_asked(self, make_engine):
        result = make_engine(300).simulate(EMAIL, calculate_heterogeneity=False, seed=1)
        assert result.effect_heterogeneity.segments() == []
        assert "heterogeneity_ms" not in result.timings_ms

    def test_seed_recorded_and_reproducible(self, make_engine):
        engine = make_engine(1000)
        first = engine.simulate(EMAIL)
        assert isinstance(first.seed, int) and 0 <= first.seed < 2**63
        again = engine.simulate(EMAIL, seed=first.seed)
        assert again.simulated_ate == first.simulated_ate
        assert again.simulated_ci_lower == first.simulated_ci_lower
        assert again.effect_heterogeneity == first.effect_heterogeneity
        other = engine.simulate(EMAIL, seed=first.seed + 1)
        assert other.simulated_ate != first.simulated_ate
        with pytest.raises(ValueError, match="seed"):
            engine.simulate(EMAIL, seed=-1)

    def test_result_fields_and_json_round_trip(self, make_engine):
        result = make_engine(800).simulate(EMAIL, seed=1)
        assert result.status is SimulationStatus.COMPLETED
        assert result.completed_at >= result.created_at
        assert result.ci_method == "analytic" and result.n_resamples is None
        assert result.effect_provenance == "prior"
        assert result.model_id == "test-model" and result.brand == "Kisqali"
        assert result.memory_usage_mb > 0
        assert {"select_ms", "kernel_ms", "interval_ms", "heterogeneity_ms", "total_ms"} <= set(
            result.timings_ms
        )
        from twinkernel import SimulationResult

        assert SimulationResult.model_validate_json(result.model_dump_json()) == result

    def test_missing_values_get_defaults_and_are_counted(self):
        frame = pl.DataFrame(
            {
                "decile": [None, 3] * 100,
                "digital_engagement_score": [0.5, None] * 100,
                "baseline_outcome": [float("nan")] * 200,
            }
        )
        result = _engine(TwinPopulation.from_frame(frame)).simulate(EMAIL, seed=1)
        dq = result.data_quality
        assert dq["decile"]["defaulted"] == 100
        assert dq["digital_engagement_score"]["defaulted"] == 100
        assert dq["baseline_outcome"]["defaulted"] == 200
        assert dq["adoption_stage"]["defaulted"] == 200  # absent column: every twin took the default

    def test_bad_arguments(self, make_engine):
        engine = make_engine(200)
        with pytest.raises(TypeError, match="intervention_config"):
            engine.simulate({"intervention_type": "email_campaign"})
        with pytest.raises(ValueError, match="ci_method"):
            engine.simulate(EMAIL, ci_method="jackknife", seed=1)
        with pytest.raises(TypeError, match="population"):
            SimulationEngine(pl.DataFrame())


class TestHardening:
    """Issue 8 defects at the engine boundary."""

    def test_result_is_frozen(self, make_engine):
        result = make_engine(300).simulate(EMAIL, seed=1)
        with pytest.raises(ValidationError, match="frozen"):
            result.twin_count = 1
        with pytest.raises(TypeError, match="does not support item assignment"):
            result.effect_heterogeneity.by_region["south"] = result.effect_heterogeneity.by_region["west"]
        assert json.loads(json.dumps(result.to_dict()))["twin_count"] == 300

    def test_confidence_level_none_uses_the_config_default(self, make_engine, config):
        engine = make_engine(300)
        default = engine.simulate(EMAIL, seed=1)
        assert default.confidence_level == config.simulation.default_confidence_level
        explicit = engine.simulate(EMAIL, confidence_level=config.simulation.default_confidence_level, seed=1)
        assert explicit.simulated_ci_lower == default.simulated_ci_lower
        # Defect: None raised a bare TypeError; strings were compared as numbers.
        for bad in ("0.9", True, [0.9]):
            with pytest.raises(
                ValueError, match=r"`confidence_level` must be a number strictly between 0 and 1"
            ):
                engine.simulate(EMAIL, confidence_level=bad, seed=1)

    def test_no_cache_and_shared_cache(self, make_population, config):
        pop = make_population(400)
        assert SimulationEngine(pop).cache is not None  # default: the embedded cache from the config
        uncached = SimulationEngine(pop, cache=False)
        assert uncached.cache is None
        assert [uncached.simulate(EMAIL, seed=3).from_cache for _ in range(2)] == [False, False]
        shared = SimulationCache.from_config(config, backend="memory")
        first = SimulationEngine(pop, cache=shared).simulate(EMAIL, seed=3)
        second = SimulationEngine(pop, cache=shared).simulate(EMAIL, seed=3)
        assert (first.from_cache, second.from_cache) == (False, True)
        assert second.simulation_id == first.simulation_id

    def test_unmatched_filter_value_is_named(self, make_engine):
        engine = make_engine(500)
        result = engine.simulate(EMAIL, PopulationFilter(regions=["atlantis", "south"]), seed=1)
        frame = engine.population.frame
        n_south = int((frame["region"].cast(pl.String) == "south").sum())
        assert result.status is SimulationStatus.COMPLETED and result.twin_count == n_south
        failed = engine.simulate(EMAIL, PopulationFilter(regions=["atlantis", "South"]), seed=1)
        assert failed.status is SimulationStatus.FAILED
        assert "Insufficient twins: 0" in failed.error_message
        assert "regions=['South', 'atlantis']" in failed.error_message
        assert failed.recommendation is None

    def test_missing_baseline_outcome_uses_the_default_outcome_sd(self, config):
        rng = np.random.default_rng(12)
        n = 2000
        pop = TwinPopulation.from_frame(
            pl.DataFrame({"decile": rng.integers(1, 11, n), "digital_engagement_score": rng.random(n)})
        )
        engine = _engine(pop)
        result = engine.simulate(EMAIL, seed=4)
        effects = engine.modifier_table(EMAIL, seed=4)["effect"].to_numpy()
        default_sd = config.simulation.default_outcome_sd
        expected_sd = math.sqrt(default_sd**2 + np.var(effects, ddof=1))
        assert result.outcome_std == pytest.approx(expected_sd, rel=1e-9)
        # Defect: the effect spread alone gave power 1.00 and Cohen's d 2.4 at 100 twins per arm.
        assert result.effect_size_cohens_d == pytest.approx(result.simulated_ate / expected_sd, rel=1e-9)
        assert result.effect_size_cohens_d < 0.2
        assert result.recommended_sample_size > config.simulation.recommendations.min_sample_size
        assert any("default_outcome_sd" in w for w in result.warnings)

    def test_infinite_outcome_variance_is_reported_not_raised(self):
        values = np.full(300, 0.3)
        values[7] = 1e200  # its square overflows: the outcome variance is infinite
        rng = np.random.default_rng(3)
        pop = TwinPopulation.from_frame(
            pl.DataFrame({"decile": rng.integers(1, 11, 300), "baseline_outcome": values})
        )
        result = _engine(pop).simulate(EMAIL, seed=1)
        # 1e200 is beyond simulation.population_checks.max_abs_value: counted, defaulted and named, so the
        # outcome variance stays finite (it once crashed the sample size; decisions.sample_size also
        # guards a non-finite sd itself, see test_decisions.py)
        assert result.status is SimulationStatus.COMPLETED
        assert result.data_quality["baseline_outcome"]["defaulted"] == 1
        assert any("baseline_outcome" in w for w in result.warnings)
        assert result.outcome_std is not None and math.isfinite(result.outcome_std)
        assert result.statistical_power is not None and result.assurance is not None

    def test_power_at_zero_effect_is_alpha(self, config, make_engine):
        engine = make_engine(500, effect_model=_noiseless(config, base_effect=0.0))
        result = engine.simulate(EMAIL, seed=1)
        rec = config.simulation.recommendations
        assert result.simulated_ate == 0.0
        assert result.recommended_sample_size == rec.max_sample_size
        # Defect: reported as alpha / 2 = 0.025.
        assert result.statistical_power == pytest.approx(rec.alpha, rel=1e-12)

    def test_population_warnings_reach_every_result(self, make_population):
        class WarnedPopulation(TwinPopulation):
            warnings = ("column 'decile' is missing: every twin took the default 5",)

        frame = make_population(300).frame
        pop = WarnedPopulation.from_frame(frame)
        engine = _engine(pop)
        ok = engine.simulate(EMAIL, seed=1)
        failed = engine.simulate(EMAIL, PopulationFilter(deciles=[1]), seed=1)
        assert failed.status is SimulationStatus.FAILED
        for result in (ok, failed):
            assert result.warnings[0] == WarnedPopulation.warnings[0]
