"""Prediction intervals, probabilities, assurance and the recommendation (twinkernel.prediction)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from tests import naive_calibration
from twinkernel import prediction as P
from twinkernel.config import get_config

REC = get_config().simulation.recommendations
MIN_P = get_config().simulation.recommendations.min_probability
PRIOR_RSD = get_config().simulation.intervention_effects.prior_relative_sd


def test_doctests_pass():
    result = doctest.testmod(P, raise_on_error=False, verbose=False)
    assert result.attempted >= 10 and result.failed == 0


# --- sigma_delta --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("G", "s", "tau", "expected"),
    [
        (1.0, 0.0, 0.0, 0.0),
        (2.0, 0.01, 0.0, 0.02),
        (0.5, 0.0, 0.004, 0.004),
        (3.0, 0.004, 0.009, 0.015),  # 0.012 and 0.009: a 3-4-5 triangle
        (-3.0, 0.004, 0.009, 0.015),  # G enters squared
    ],
)
def test_effect_uncertainty_sd_hand_values(G, s, tau, expected):
    assert P.effect_uncertainty_sd(G, s, tau) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_effect_uncertainty_sd_rejects_negative_sd():
    with pytest.raises(ValueError, match=r"`s_t` must be a finite number >= 0; got -0.1"):
        P.effect_uncertainty_sd(1.0, -0.1, 0.0)
    with pytest.raises(ValueError, match=r"`tau_t` must be a finite number >= 0; got -1"):
        P.effect_uncertainty_sd(1.0, 0.1, -1)
    with pytest.raises(ValueError, match=r"`G` must be a finite number; got nan"):
        P.effect_uncertainty_sd(math.nan, 0.1, 0.0)


# --- prediction interval ------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("df", [None, 1, 5, 30])
def test_prediction_interval_matches_scipy(level, df):
    """Normal: scipy's normal on the total SD. Student's t: scipy's t for δ itself (m = ∞), and for a finite
    test the t-normal convolution, checked against adaptive quadrature (tests/naive_calibration.py)."""
    mu, sd, var, m = 0.043, 0.011, 0.05, 750
    s_m = math.sqrt(2 * var / m)
    lo, hi = P.prediction_interval(mu, sd, var, m, level, df)
    if df is None:
        want_lo, want_hi = stats.norm(mu, math.hypot(sd, s_m)).interval(level)
        assert (lo, hi) == pytest.approx((want_lo, want_hi), rel=1e-12)
        return
    half = naive_calibration.predictive_quantile(0.5 + level / 2, sd, s_m, df)
    assert (lo, hi) == pytest.approx((mu - half, mu + half), abs=1e-10)
    lo_inf, hi_inf = P.prediction_interval(mu, sd, var, math.inf, level, df)
    assert (lo_inf, hi_inf) == pytest.approx(stats.t(df, mu, sd).interval(level), rel=1e-12)


@pytest.mark.parametrize("df", [1, 2.5, 5, 30])
@pytest.mark.parametrize(("sd", "s_m"), [(0.011, 0.0115), (0.002, 0.02), (0.03, 0.001)])
@pytest.mark.parametrize("x", [-0.05, -0.01, 0.0, 0.004, 0.03])
def test_predictive_cdf_matches_the_convolution_integral(df, sd, s_m, x):
    var = s_m**2 * 1000 / 2  # outcome variance giving s_m at 1000 per arm
    got = P.predictive_cdf(0.04 + x, 0.04, sd, var, 1000, df)
    assert got == pytest.approx(naive_calibration.predictive_cdf(x, sd, s_m, df), abs=1e-9)


def test_calibrated_interval_lies_between_the_normal_and_t_on_the_whole_sd():
    """SPEC's small-sample t applies to what calibration estimated (σ_δ), not to the test's known sampling
    error: the interval is wider than the normal one and narrower than t on √(σ_δ² + s_m²), and tends to
    each in its limit."""
    mu, sd, var, m, level, df = 0.05, 0.0125, 0.04, 1000, 0.9, 5
    total = math.sqrt(sd**2 + 2 * var / m)
    half = P.prediction_interval(mu, sd, var, m, level, df)[1] - mu
    assert stats.norm.ppf(0.95) * total < half < stats.t(df).ppf(0.95) * total
    # the test's sampling error vanishes: t on σ_δ; σ_δ vanishes: the normal on s_m
    tiny = P.prediction_interval(mu, sd, 1e-12, m, level, df)[1] - mu
    assert tiny == pytest.approx(stats.t(df).ppf(0.95) * sd, rel=1e-6)
    none = P.prediction_interval(mu, 0.0, var, m, level, df)[1] - mu
    assert none == pytest.approx(stats.norm.ppf(0.95) * math.sqrt(2 * var / m), rel=1e-12)
    # many degrees of freedom: the normal
    wide = P.prediction_interval(mu, sd, var, m, level, 1e7)[1] - mu
    assert wide == pytest.approx(stats.norm.ppf(0.95) * total, rel=1e-6)
    # the interval's ends are the predictive distribution's quantiles
    lo, hi = P.prediction_interval(mu, sd, var, m, level, df)
    assert P.predictive_cdf(hi, mu, sd, var, m, df) == pytest.approx(0.95, abs=1e-9)
    assert P.predictive_cdf(lo, mu, sd, var, m, df) == pytest.approx(0.05, abs=1e-9)


def test_prediction_interval_hand_value_and_infinite_arm():
    # s_m^2 = 2 * 0.04 / 1000 = 8e-5; sigma_delta^2 = 1.5625e-4; total sd = sqrt(2.3625e-4)
    lo, hi = P.prediction_interval(0.05, 0.0125, 0.04, 1000, 0.90)
    half = 1.6448536269514722 * math.sqrt(2.3625e-4)
    assert (lo, hi) == pytest.approx((0.05 - half, 0.05 + half), rel=1e-12)
    # m = inf: the interval for delta itself, mu +- z * sigma_delta
    lo, hi = P.prediction_interval(0.05, 0.0125, 0.04, math.inf, 0.90)
    assert (lo, hi) == pytest.approx((0.05 - 1.6448536269514722 * 0.0125, 0.05 + 1.6448536269514722 * 0.0125))
    # no effect uncertainty and an infinite test: a point
    assert P.prediction_interval(0.05, 0.0, 0.04, math.inf, 0.9) == (0.05, 0.05)


def test_prediction_interval_shrinks_to_the_effect_interval_not_to_zero():
    widths = [np.subtract(*P.prediction_interval(0.05, 0.01, 0.04, m, 0.9)[::-1]) for m in (100, 10_000, 1e8)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] == pytest.approx(2 * 1.6448536269514722 * 0.01, rel=1e-4)


def test_prediction_interval_t_is_wider_than_normal():
    z = P.prediction_interval(0.05, 0.01, 0.04, 500, 0.9)
    t5 = P.prediction_interval(0.05, 0.01, 0.04, 500, 0.9, df=5)
    assert t5[0] < z[0] and t5[1] > z[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n_per_arm": 0},
            r"`n_per_arm` must be > 0 \(math.inf for the interval of the effect itself\); got 0",
        ),
        ({"n_per_arm": -5}, r"`n_per_arm` must be > 0 .*; got -5"),
        ({"confidence_level": 1.0}, r"`confidence_level` must lie strictly between 0 and 1; got 1.0"),
        ({"outcome_var": -0.1}, r"`outcome_var` must be a finite number >= 0; got -0.1"),
        ({"sigma_delta": -0.01}, r"`sigma_delta` must be a finite number >= 0; got -0.01"),
        ({"mu": math.inf}, r"`mu` must be a finite number; got inf"),
        ({"df": 0}, r"`df` must be None or a number of degrees of freedom >= 1; got 0"),
    ],
)
def test_prediction_interval_rejects_bad_input(kwargs, message):
    args = {"mu": 0.05, "sigma_delta": 0.01, "outcome_var": 0.04, "n_per_arm": 100, "confidence_level": 0.9}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        P.prediction_interval(**args)


# --- probabilities ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("df", [None, 2, 5])
@pytest.mark.parametrize("x", [-0.02, 0.0, 0.02, 0.05, 0.09])
def test_prob_at_least_matches_scipy(x, df):
    mu, sd = 0.047, 0.013
    dist = stats.norm(mu, sd) if df is None else stats.t(df, mu, sd)
    assert P.prob_at_least(mu, sd, x, df) == pytest.approx(dist.sf(x), rel=1e-12, abs=1e-300)
    assert P.prob_harmful(mu, sd, df) == pytest.approx(dist.cdf(0.0), rel=1e-10)


def test_prob_at_least_hand_value():
    # (0.06 - 0.05) / 0.015 = 2/3; Phi(2/3) = 0.7475074624530771
    assert P.prob_at_least(0.06, 0.015, 0.05) == pytest.approx(0.7475074624530771, rel=1e-12)


def test_probabilities_are_a_step_when_sigma_is_zero_and_ties_count_as_reached():
    assert P.prob_at_least(0.05, 0.0, 0.05) == 1.0
    assert P.prob_at_least(0.05, 0.0, 0.0500001) == 0.0
    assert P.prob_at_least(0.05, 0.0, 0.02) == 1.0
    assert P.prob_harmful(0.0, 0.0) == 0.0  # delta = 0 is not harmful
    assert P.prob_harmful(-1e-12, 0.0) == 1.0


# --- assurance ----------------------------------------------------------------------------------------------
def test_assurance_hand_value():
    # s_m = sqrt(8e-5); (0.05 - 1.959964 * s_m) / sqrt(0.0125^2 + 8e-5)
    s_m = math.sqrt(8e-5)
    want = stats.norm.cdf((0.05 - stats.norm.ppf(0.975) * s_m) / math.sqrt(0.0125**2 + s_m**2))
    assert P.assurance(0.05, 0.0125, 0.04, 1000, 0.05) == pytest.approx(want, rel=1e-12)
    assert P.assurance(0.05, 0.0125, 0.04, 1000, 0.05) == pytest.approx(0.98267, abs=5e-5)


def test_assurance_without_effect_uncertainty_is_the_conventional_power():
    s_m = math.sqrt(2 * 0.04 / 400)
    power = stats.norm.cdf(0.03 / s_m - stats.norm.ppf(0.975))
    assert P.assurance(0.03, 0.0, 0.04, 400, 0.05) == pytest.approx(power, rel=1e-12)


def test_assurance_is_below_power_when_the_effect_is_uncertain():
    assert P.assurance(0.03, 0.02, 0.04, 400, 0.05) < P.assurance(0.03, 0.0, 0.04, 400, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("mu", "sd", "m"), [(0.05, 0.0125, 1000), (0.02, 0.03, 300), (-0.01, 0.01, 2000)])
def test_assurance_matches_monte_carlo(mu, sd, m):
    rng = np.random.default_rng(20261202)
    n = 400_000
    var, alpha = 0.04, 0.05
    delta = mu + sd * rng.standard_normal(n)  # the true effect of this deployment
    s_m = math.sqrt(2 * var / m)
    observed = delta + s_m * rng.standard_normal(n)  # what the real test measures
    success = observed / s_m > stats.norm.ppf(1 - alpha / 2)  # significant and positive
    mc = success.mean()
    se = math.sqrt(mc * (1 - mc) / n)
    assert abs(P.assurance(mu, sd, var, m, alpha) - mc) < 4 * se + 1e-9


# --- recommendation -----------------------------------------------------------------------------------------
def _decide(mu: float, sd: float, df: float | None = None) -> tuple[str, str]:
    return P.recommend(
        P.prob_harmful(mu, sd, df),
        P.prob_at_least(mu, sd, REC.deploy_threshold, df),
        P.prob_at_least(mu, sd, REC.refine_threshold, df),
        MIN_P,
        REC.deploy_threshold,
        REC.refine_threshold,
    )


def test_with_priors_an_ate_just_above_the_deploy_threshold_is_refine():
    mu = REC.deploy_threshold * 1.02
    # with priors s_t = rsd * b and G = mu / b, so sigma_delta = rsd * mu; tau = 0
    sd = P.effect_uncertainty_sd(mu / 0.05, PRIOR_RSD * 0.05, 0.0)
    assert sd == pytest.approx(PRIOR_RSD * mu)
    rec, why = _decide(mu, sd)
    assert rec == "refine"
    p_deploy = P.prob_at_least(mu, sd, REC.deploy_threshold)
    assert 0.5 < p_deploy < MIN_P
    assert f"P(effect >= 0.05) = {p_deploy:.2f}" in why and "P(effect >= 0.02) = 0.99" in why


def test_with_priors_a_large_effect_is_deploy():
    mu = 0.12
    rec, why = _decide(mu, PRIOR_RSD * mu)
    assert rec == "deploy"
    assert why == "deploy: P(effect >= 0.05) = 0.99 >= 0.70; P(effect < 0) = 0.00"


def test_refine_happens_in_a_realistic_setting():
    rec, why = _decide(0.04, 0.01)  # P(>= 0.05) = 0.16, P(>= 0.02) = 0.98
    assert rec == "refine"
    assert "P(effect >= 0.02) = 0.98" in why and "P(effect >= 0.05) = 0.16" in why


def test_a_probably_harmful_effect_is_skip_harmful():
    rec, why = _decide(-0.01, 0.01)  # P(< 0) = 0.84
    assert rec == "skip"
    assert why.startswith("skip (harmful): P(effect < 0) = 0.84 >= 0.70")


def test_small_uncertain_effect_is_plain_skip():
    rec, why = _decide(0.015, 0.02)
    assert rec == "skip" and "harmful" not in why
    assert why == "skip: P(effect >= 0.02) = 0.40 < 0.70 and P(effect < 0) = 0.23 < 0.70"


def test_recommend_order_harm_wins_then_deploy_then_refine():
    args = (MIN_P, 0.05, 0.02)
    assert P.recommend(0.7, 0.7, 0.7, *args)[0] == "skip"
    assert P.recommend(0.69, 0.7, 0.7, *args)[0] == "deploy"
    assert P.recommend(0.0, 0.69, 0.7, *args)[0] == "refine"
    assert P.recommend(0.0, 0.69, 0.69, *args)[0] == "skip"
    assert {P.recommend(h, d, r, *args)[0] for h, d, r in [(0, 1, 1), (0, 0, 1), (0, 0, 0)]} == set(
        P.RECOMMENDATIONS
    )


def test_a_harmful_effect_is_never_deploy_even_when_large_in_magnitude():
    # the original compared |ATE| with the threshold: -0.08 deployed
    rec, _ = _decide(-0.08, PRIOR_RSD * 0.08)
    assert rec == "skip"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.5, 0.5, 0.5, 0.7, 0.05, 0.02), r"`prob_harmful` must be a probability in \[0, 1\]; got 1.5"),
        (
            (0.0, -0.1, 0.5, 0.7, 0.05, 0.02),
            r"`prob_above_deploy` must be a probability in \[0, 1\]; got -0.1",
        ),
        ((0.0, 0.1, 2.0, 0.7, 0.05, 0.02), r"`prob_above_refine` must be a probability in \[0, 1\]; got 2.0"),
        ((0.0, 0.1, 0.5, 1.0, 0.05, 0.02), r"`min_probability` must lie strictly between 0 and 1; got 1.0"),
        ((0.0, 0.1, 0.5, 0.7, 0.02, 0.05), r"`refine_threshold` must not exceed `deploy_threshold` \(0.02\)"),
    ],
)
def test_recommend_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        P.recommend(*args)
