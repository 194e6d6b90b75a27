"""The engine's decision rules, called directly (pure functions in simulation_engine.decisions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from twinkernel.models import SimulationRecommendation
from twinkernel.simulation_engine.decisions import (
    check_thresholds,
    critical_value,
    critical_values,
    mean_modifier,
    predict,
    prob_at_least_many,
    sample_size,
    simulation_confidence,
    two_sided_power,
)

SIZE = dict(alpha=0.05, power=0.80, min_size=100, max_size=50_000)
RULE = dict(deploy_threshold=0.05, refine_threshold=0.02, min_probability=0.70)


class TestPower:
    def test_power_at_zero_effect_is_alpha(self):
        # Defect: the one-tailed formula reported alpha / 2 (0.025) for a null effect.
        for alpha in (0.01, 0.05, 0.2):
            assert two_sided_power(0.0, 0.3, 1000, alpha) == pytest.approx(alpha, rel=1e-12)
        s = sample_size(0.0, 0.3, **SIZE)
        assert s.per_arm == SIZE["max_size"]
        assert s.power == pytest.approx(0.05, rel=1e-12)
        assert s.cohens_d == 0.0

    def test_power_matches_both_tails(self):
        ate, sd, m, alpha = 0.02, 0.25, 800, 0.05
        shift = ate / (sd * math.sqrt(2 / m))
        z = stats.norm.ppf(1 - alpha / 2)
        expected = stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z)
        assert two_sided_power(ate, sd, m, alpha) == pytest.approx(expected, rel=1e-14)
        assert two_sided_power(-ate, sd, m, alpha) == two_sided_power(ate, sd, m, alpha)


class TestSampleSize:
    def test_formula_and_bounds(self):
        z = stats.norm.ppf(0.975) + stats.norm.ppf(0.80)
        s = sample_size(0.03, 0.4, **SIZE)
        assert s.per_arm == math.ceil(2 * z**2 * 0.4**2 / 0.03**2)
        assert s.cohens_d == pytest.approx(0.03 / 0.4, rel=1e-15)
        assert 0.80 <= s.power < 0.801
        assert sample_size(0.5, 0.1, **SIZE).per_arm == SIZE["min_size"]
        assert sample_size(1e-5, 0.4, **SIZE).per_arm == SIZE["max_size"]
        assert sample_size(-0.03, 0.4, **SIZE).per_arm == s.per_arm

    def test_zero_outcome_sd(self):
        s = sample_size(0.03, 0.0, **SIZE)
        assert (s.per_arm, s.power, s.cohens_d) == (SIZE["min_size"], 1.0, None)
        z = sample_size(0.0, 0.0, **SIZE)
        assert (z.per_arm, z.power, z.cohens_d) == (SIZE["max_size"], 0.05, None)

    @pytest.mark.parametrize("sd", [math.inf, math.nan])
    def test_non_finite_outcome_sd_never_crashes(self, sd):
        # Defect: an infinite outcome variance raised "cannot convert float NaN to integer".
        s = sample_size(0.03, sd, **SIZE)
        assert (s.per_arm, s.power, s.cohens_d) == (SIZE["max_size"], None, None)

    def test_huge_ratio_is_bounded(self):
        assert sample_size(1e-300, 1e10, **SIZE).per_arm == SIZE["max_size"]


class TestCriticalValues:
    def test_t_below_threshold_z_above(self):
        n = np.array([2, 100, 999, 1000, 10**6])
        crit = critical_values(n, 0.90, 1000)
        expected = [stats.t.ppf(0.95, df=k - 1) for k in (2, 100, 999)] + [stats.norm.ppf(0.95)] * 2
        np.testing.assert_allclose(crit, expected, rtol=1e-14)
        assert critical_value(1, 0.95, 1000) == pytest.approx(stats.norm.ppf(0.975))


class TestConfidence:
    def test_formula_and_clamp(self):
        kw = dict(weight_n=0.3, weight_se=0.3, weight_fidelity=0.4, n_reference=10_000, ate_epsilon=0.001)
        value = simulation_confidence(2500, 0.002, 0.04, 0.7, **kw)
        assert value == pytest.approx(0.3 * 0.25 + 0.3 * (1 - 0.002 / 0.041) + 0.4 * 0.7, rel=1e-15)
        assert simulation_confidence(10**6, 0.0, 0.04, 1.0, **kw) == 1.0
        heavy = dict(kw, weight_n=1.0, weight_se=1.0, weight_fidelity=1.0)
        assert simulation_confidence(10**6, 0.0, 0.04, 1.0, **heavy) == 1.0
        assert simulation_confidence(0, 1.0, 0.0, 0.0, **kw) == 0.0


class TestThresholdsAndRecommendation:
    def test_thresholds_checked_against_each_other(self):
        with pytest.raises(ValueError, match=r"deploy threshold, 0\.01.*refine_threshold` \(0\.02\)"):
            check_thresholds(0.01, 0.02)
        with pytest.raises(ValueError, match=r"`min_effect_threshold` must be between 0 and 1; got 1\.5"):
            check_thresholds(1.5, 0.02)
        check_thresholds(0.02, 0.02)  # equal thresholds: an empty REFINE band is allowed

    def test_harmful_is_skip_whatever_its_size(self):
        p = predict(-0.5, 1.0, 0.1, 0.0, None, **RULE)
        assert p.recommendation is SimulationRecommendation.SKIP and "harmful" in p.rationale
        assert p.prob_harmful == pytest.approx(1.0)

    def test_deploy_threshold_is_the_argument(self):
        # a sure effect of 0.06 (sigma 0): DEPLOY against 0.05, REFINE against 0.08
        assert predict(0.06, 1.0, 0.0, 0.0, None, **RULE).recommendation is SimulationRecommendation.DEPLOY
        p = predict(0.06, 1.0, 0.0, 0.0, None, **{**RULE, "deploy_threshold": 0.08})
        assert p.recommendation is SimulationRecommendation.REFINE
        assert "P(effect >= 0.08) = 0.00" in p.rationale


class TestPredictiveRecommendation:
    """SPEC: the recommendation comes from P(true effect ...) against `min_probability`, not the point ATE."""

    def test_just_above_the_deploy_threshold_with_priors_is_refine(self):
        # priors: s_t = 0.25 b_t, tau 0; ATE 0.052 with G = 1.04 -> sigma 0.013, P(>= 0.05) = 0.56 < 0.70
        p = predict(0.052, 1.04, 0.25 * 0.05, 0.0, None, **RULE)
        assert p.sigma_delta == pytest.approx(1.04 * 0.0125)
        assert p.prob_above_deploy == pytest.approx(stats.norm.cdf(0.002 / p.sigma_delta))
        assert p.recommendation is SimulationRecommendation.REFINE
        assert "P(effect >= 0.05) = 0.56" in p.rationale

    def test_a_large_effect_is_deploy_and_a_middling_one_refine(self):
        assert predict(0.12, 1.0, 0.03, 0.0, None, **RULE).recommendation is SimulationRecommendation.DEPLOY
        # realistic: ATE 0.04 with sd 0.01 is worth refining, not deploying
        p = predict(0.04, 1.0, 0.01, 0.0, None, **RULE)
        assert p.recommendation is SimulationRecommendation.REFINE
        assert p.prob_above_refine == pytest.approx(stats.norm.cdf(2.0))

    def test_student_t_when_calibrated(self):
        p = predict(0.06, 1.0, 0.005, 0.004, 5.0, **RULE)
        sigma = math.hypot(0.005, 0.004)
        assert p.sigma_delta == pytest.approx(sigma)
        assert p.prob_above_deploy == pytest.approx(stats.t.cdf(0.01 / sigma, 5.0))

    def test_mean_modifier_and_vectorised_segments_agree(self):
        assert mean_modifier(0.06, 0.05, 9.0) == pytest.approx(1.2)
        assert mean_modifier(0.0, 0.0, 1.3) == 1.3
        ates = np.array([0.01, 0.05, 0.07, -0.02])
        many = prob_at_least_many(ates, 0.05, 1.0, 0.0125, 0.003, 0.05, 4.0)
        one = [predict(a, a / 0.05, 0.0125, 0.003, 4.0, **RULE).prob_above_deploy for a in ates]
        np.testing.assert_allclose(many, one, rtol=1e-12)
        # sigma 0: a step function, ties count as reached
        steps = prob_at_least_many(ates, 0.05, 1.0, 0.0, 0.0, 0.05, None)
        np.testing.assert_array_equal(steps, [0, 1, 1, 0])
