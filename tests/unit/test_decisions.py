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
    recommend,
    sample_size,
    simulation_confidence,
    two_sided_power,
)

SIZE = dict(alpha=0.05, power=0.80, min_size=100, max_size=50_000)


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
        rec, why = recommend(-0.5, -0.6, -0.4, 0.95, deploy_threshold=0.05, refine_threshold=0.02)
        assert rec is SimulationRecommendation.SKIP and why.startswith("harmful")

    def test_deploy_threshold_is_the_argument(self):
        args = (0.06, 0.05, 0.07, 0.95)
        assert recommend(*args, deploy_threshold=0.05, refine_threshold=0.02)[0] is (
            SimulationRecommendation.DEPLOY
        )
        rec, why = recommend(*args, deploy_threshold=0.08, refine_threshold=0.02)
        assert rec is SimulationRecommendation.REFINE
        assert "deploy threshold 0.0800" in why
