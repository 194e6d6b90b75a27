"""Random-effects calibration of one intervention type (twinkernel.calibration), checked against
the matrix-form reference in tests/naive_calibration.py."""

from __future__ import annotations

import doctest
import json
import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from tests import naive_calibration as naive
from twinkernel import calibration as C
from twinkernel import prediction as P
from twinkernel.config import get_config
from twinkernel.models.experiment import ExperimentResult

CFG = get_config()
CAL = CFG.calibration
PRIOR_RSD = CFG.simulation.intervention_effects.prior_relative_sd


def _data(seed: int, J: int, k: float, tau: float, ages: bool = False):
    """Seeded experiments from y_j = k mu_j + u_j + eps_j."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.02, 0.12, J)
    se = rng.uniform(0.003, 0.012, J)
    y = k * mu + tau * rng.standard_normal(J) + se * rng.standard_normal(J)
    w = C.recency_weights(rng.uniform(0, 400, J), CAL.half_life_days) if ages else np.ones(J)
    return mu, y, se, w


def _upper(y, se):
    return CAL.tau_upper_factor * (float(y.max() - y.min()) + float(se.max()))


def _tau(mu, y, se, w):
    return C.estimate_tau(
        mu,
        y,
        se,
        w,
        tau_upper_factor=CAL.tau_upper_factor,
        xatol=CAL.reml_xatol,
        max_iterations=CAL.reml_max_iterations,
        grid_points=CAL.reml_grid_points,
    )


def test_doctests_pass():
    result = doctest.testmod(C, raise_on_error=False)
    assert result.attempted >= 8 and result.failed == 0


# --- building blocks ----------------------------------------------------------------------------------------
def test_recency_weights_halve_every_half_life():
    np.testing.assert_allclose(
        C.recency_weights([0, 90, 180, 540], 180), [1.0, 2**-0.5, 0.5, 0.125], rtol=1e-15
    )


@pytest.mark.parametrize(
    ("ages", "half_life", "message"),
    [
        ([0, -3], 180, r"`ages_days` must be >= 0 .*; got -3.0"),
        ([0], 0, r"`half_life_days` must be a finite number > 0; got 0"),
        ([], 180, r"`ages_days` must hold at least one experiment; got an empty array"),
        ([np.nan], 180, r"`ages_days` must hold finite numbers; got nan"),
    ],
)
def test_recency_weights_reject_bad_input(ages, half_life, message):
    with pytest.raises(ValueError, match=message):
        C.recency_weights(ages, half_life)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reml_log_likelihood_equals_the_matrix_form(seed):
    mu, y, se, w = _data(seed, 7, 0.8, 0.006, ages=True)
    taus = np.array([0.0, 0.001, 0.004, 0.02, 0.3])
    ours = C.reml_log_likelihood(taus, mu, y, se, w)
    ref = [naive.restricted_loglik(t, mu, y, se, w) for t in taus]
    np.testing.assert_allclose(ours, ref, rtol=1e-11)
    assert C.reml_log_likelihood(0.004, mu, y, se, w) == pytest.approx(ref[2], rel=1e-11)


CASES = [
    # (seed, J, k, tau, recency weights)
    (10, 6, 0.7, 0.006, False),
    (11, 6, 1.3, 0.0, False),  # tau = 0 truth
    (12, 2, 0.5, 0.004, False),  # J = 2
    (13, 2, 1.0, 0.0, True),
    (14, 3, -1.0, 0.01, True),  # harmful type
    (15, 12, 0.3, 0.002, True),
    (16, 50, 2.0, 0.008, False),
    (17, 50, 0.9, 0.0, True),
    (18, 6, 1.0, 0.03, False),  # tau much larger than the SEs
]


@pytest.mark.parametrize(("seed", "J", "k", "tau", "ages"), CASES)
def test_tau_matches_the_dense_grid_reference(seed, J, k, tau, ages):
    mu, y, se, w = _data(seed, J, k, tau, ages)
    ours = _tau(mu, y, se, w)
    ref_tau, ref_ll = naive.tau_by_grid(mu, y, se, w, _upper(y, se))
    ours_ll = naive.restricted_loglik(ours, mu, y, se, w)
    assert ours_ll >= ref_ll - 1e-9  # never a worse optimum than brute force
    if ref_tau == 0.0:
        assert ours == 0.0  # the boundary is found exactly
    else:
        assert ours == pytest.approx(ref_tau, rel=1e-4, abs=1e-7)


def test_tau_zero_truth_often_lands_on_the_boundary():
    zeros = sum(_tau(*_data(100 + s, 6, 1.0, 0.0)) == 0.0 for s in range(40))
    assert zeros >= 10  # REML puts a point mass at 0 when the spread is within the SEs


def test_tau_with_one_experiment_is_zero_and_flagged():
    cal = C.calibrate_type("email_campaign", [0.05], [0.02], [0.01], [0])
    assert cal.tau == 0.0 and cal.tau_identified is False and cal.df == 0 and cal.prediction_df == 1.0
    # P = 1/0.25^2 + 0.05^2/0.01^2 = 16 + 25; mean = (16 + 0.05*0.02/1e-4) / 41
    assert cal.k_hat == pytest.approx(26 / 41, rel=1e-12)
    assert cal.k_sd == pytest.approx(41**-0.5, rel=1e-12)


@pytest.mark.parametrize(("seed", "J", "k", "tau", "ages"), CASES[:5])
def test_posterior_matches_the_loop_reference(seed, J, k, tau, ages):
    mu, y, se, w = _data(seed, J, k, tau, ages)
    t = _tau(mu, y, se, w)
    ours = C.posterior_k(mu, y, se, w, t, 1.0, PRIOR_RSD)
    ref = naive.posterior_k(mu, y, se, w, t, 1.0, PRIOR_RSD)
    assert ours == pytest.approx(ref, rel=1e-12)


def test_posterior_limits_flat_and_pinned_prior():
    mu, y, se, w = _data(5, 6, 0.6, 0.0)
    k_flat, sd_flat = C.posterior_k(mu, y, se, w, 0.0, 1.0, math.inf)
    wls = float((mu * y / se**2).sum() / (mu**2 / se**2).sum())
    assert k_flat == pytest.approx(wls, rel=1e-12)
    assert sd_flat == pytest.approx(float((mu**2 / se**2).sum()) ** -0.5, rel=1e-12)
    assert C.posterior_k(mu, y, se, w, 0.0, 1.0, 0.0) == (1.0, 0.0)


def test_a_harmful_true_effect_is_learned():
    mu, y, se, _ = _data(21, 6, -1.0, 0.003)
    cal = C.calibrate_type("sample_distribution", mu, y, se, np.zeros(6))
    assert cal.k_hat < -0.8 and cal.k_hat + 3 * cal.k_sd < 0
    # and the prediction says harmful
    assert P.prob_harmful(cal.k_hat * 0.03, 0.03 * cal.k_sd) > 0.99


def test_k_and_tau_are_recovered_with_many_experiments():
    mu, y, se, _ = _data(22, 50, 0.6, 0.005)
    cal = C.calibrate_type("email_campaign", mu, y, se, np.zeros(50))
    assert abs(cal.k_hat - 0.6) < 3 * cal.k_sd
    assert 0.0025 < cal.tau < 0.0075


def test_an_old_experiment_counts_less():
    mu, y, se = [0.05, 0.05], [0.02, 0.06], [0.005, 0.005]
    same = C.calibrate_type("email_campaign", mu, y, se, [0, 0], prior_sd=math.inf)
    old_low = C.calibrate_type("email_campaign", mu, y, se, [720, 0], prior_sd=math.inf)
    assert same.k_hat == pytest.approx(0.8, rel=1e-9)
    assert old_low.k_hat > same.k_hat  # the fresh, higher observation dominates
    assert old_low.weights == pytest.approx((2 ** (-720 / CAL.half_life_days), 1.0))


def test_every_mu_zero_keeps_the_prior_and_estimates_tau_by_ml():
    cal = C.calibrate_type(
        "peer_influence_activation", [0.0, 0.0, 0.0], [0.03, -0.02, 0.01], [0.01] * 3, [0, 0, 0]
    )
    assert cal.k_hat == 1.0 and cal.k_sd == pytest.approx(PRIOR_RSD)
    # ML of y ~ N(0, e^2 + tau^2): e^2 + tau^2 = mean(y^2)
    assert cal.tau == pytest.approx(math.sqrt(np.mean(np.square([0.03, -0.02, 0.01])) - 1e-4), rel=1e-5)


def test_standardised_residuals():
    mu, y, se, _ = _data(30, 6, 0.8, 0.004)
    cal = C.calibrate_type("email_campaign", mu, y, se, np.zeros(6))
    want = (y - cal.k_hat * mu) / np.sqrt(se**2 + cal.tau**2 + mu**2 * cal.k_sd**2)
    np.testing.assert_allclose(cal.residuals, want, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"se": [0.01, 0.0]}, r"`se` must be > 0 for every experiment; got 0.0"),
        ({"se": [0.01, -0.01]}, r"`se` must be > 0 for every experiment; got -0.01"),
        ({"y": [0.01]}, r"`y` must have one value per experiment \(2\); got 1"),
        ({"mu": [0.01, np.inf]}, r"`mu` must hold finite numbers; got inf"),
        ({"ages_days": [0, -1]}, r"`ages_days` must be >= 0"),
        ({"experiment_ids": ["a"]}, r"`experiment_ids` must have one id per experiment \(2\); got 1"),
        ({"prior_sd": -1.0}, r"`prior_sd` must be >= 0 \(inf: a flat prior\); got -1.0"),
    ],
)
def test_calibrate_type_rejects_bad_input(kwargs, message):
    args = {"mu": [0.05, 0.04], "y": [0.03, 0.02], "se": [0.01, 0.01], "ages_days": [0, 0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        C.calibrate_type("email_campaign", **args)


# --- many experiments, provenance, report, persistence ------------------------------------------------------
def _experiments():
    start = date(2026, 1, 10)
    rows = []
    rng = np.random.default_rng(40)
    for j in range(6):
        rows.append(
            ExperimentResult(
                experiment_id=f"em-{j}",
                intervention={"intervention_type": "email_campaign", "intensity_multiplier": 1.0 + 0.2 * j},
                observed_ate=0.6 * 0.05 * (1.0 + 0.2 * j) + 0.004 * rng.standard_normal(),
                std_error=0.004,
                n_treated=900,
                n_control=900,
                completion_date=start + timedelta(days=28 * j + (j == 5) * 3),
            )
        )
    rows.append(
        ExperimentResult(
            experiment_id="sd-0",
            intervention={"intervention_type": "sample_distribution"},
            observed_ate=-0.02,
            ci_lower=-0.03,
            ci_upper=-0.01,
            confidence_level=0.95,
            n_treated=500,
            n_control=500,
            completion_date=date(2026, 3, 1),
        )
    )
    return rows


def _simulated(e: ExperimentResult) -> float:
    base = {"email_campaign": 0.05, "sample_distribution": 0.03}[e.intervention_type]
    return base * e.intervention.intensity_multiplier


def test_calibrate_experiments_groups_by_type_and_dates_ages_from_the_latest():
    cals = C.calibrate_experiments(_experiments(), _simulated)
    assert list(cals) == ["email_campaign", "sample_distribution"]
    em = cals["email_campaign"]
    assert em.n_experiments == 6 and em.df == 5
    assert (em.first_date, em.last_date) == (date(2026, 1, 10), date(2026, 6, 2))
    assert em.experiment_ids == tuple(f"em-{j}" for j in range(6))
    assert em.weights[-1] == 1.0  # the latest experiment is age 0
    assert abs(em.k_hat - 0.6) < 0.1
    sd = cals["sample_distribution"]
    assert sd.n_experiments == 1 and sd.k_hat < 0  # one clear harmful result moves k below 0
    # the same experiments, calibrated later, weigh the old ones less but keep the ordering
    later = C.calibrate_experiments(_experiments(), _simulated, as_of=date(2026, 12, 1))
    assert later["email_campaign"].weights[0] < em.weights[0]


def test_calibrate_experiments_uses_given_priors():
    cals = C.calibrate_experiments(_experiments(), _simulated, priors={"sample_distribution": (-0.5, 0.1)})
    # P = 1/0.01 + w 0.03^2/se^2, mean = (-0.5/0.01 + w 0.03 (-0.02)/se^2) / P, aged 93 days at 2026-06-02
    se = 0.02 / (2 * stats.norm.ppf(0.975))
    w = 2 ** (-93 / CAL.half_life_days)
    precision = 100 + w * 0.03**2 / se**2
    want = (-50 + w * 0.03 * -0.02 / se**2) / precision
    assert cals["sample_distribution"].k_hat == pytest.approx(want, rel=1e-12)


def test_calibrate_experiments_rejects_repeated_ids():
    exps = _experiments()
    with pytest.raises(ValueError, match=r"unique experiment_id values; repeated: \['em-0'\]"):
        C.calibrate_experiments([*exps, exps[0]], _simulated)


def test_provenance_text_names_every_type():
    cals = C.calibrate_experiments(_experiments(), _simulated)
    text = C.provenance_text(cals, ["speaker_program_invitation"])
    em = cals["email_campaign"]
    assert text.startswith(
        f"email_campaign: calibrated from 6 experiments (2026-01-10..2026-06-02), τ={em.tau:.3g}; "
        "sample_distribution: calibrated from 1 experiment (2026-03-01..2026-03-01), τ=0; "
    )
    assert text.endswith("speaker_program_invitation: prior")


def test_calibration_report_frame():
    cals = C.calibrate_experiments(_experiments(), _simulated)
    rep = C.calibration_report(cals)
    assert rep.columns == [
        "type", "J", "k_hat", "k_sd", "tau", "df", "first_date", "last_date", "experiment_ids", "residuals",
        "provenance",
    ]  # fmt: skip
    assert rep["type"].to_list() == ["email_campaign", "sample_distribution"]
    assert rep["J"].to_list() == [6, 1]
    assert rep["k_hat"].to_list() == [cals["email_campaign"].k_hat, cals["sample_distribution"].k_hat]
    assert rep["residuals"].list.len().to_list() == [6, 1]
    assert rep.schema["first_date"] == pl.Date


def test_type_calibration_json_round_trip():
    cals = C.calibrate_experiments(_experiments(), _simulated)
    for cal in cals.values():
        text = json.dumps(cal.to_dict())
        assert C.TypeCalibration.from_dict(json.loads(text)) == cal
    flat = C.calibrate_type("x", [0.05, 0.04], [0.03, 0.02], [0.01, 0.01], [0, 0], prior_sd=math.inf)
    assert C.TypeCalibration.from_dict(json.loads(json.dumps(flat.to_dict()))).prior_sd == math.inf


def test_calibrated_base_effect_and_its_sd():
    cal = C.calibrate_type("email_campaign", [0.05], [0.02], [0.01], [0])
    assert cal.base_effect(0.05) == pytest.approx(0.05 * 26 / 41)
    assert cal.base_effect_sd(0.05) == pytest.approx(0.05 / math.sqrt(41))  # b(prior) / sqrt(P)


# --- the math end to end: prediction intervals of a calibrated type cover held-out experiments -------------
@pytest.mark.slow
def test_t_prediction_intervals_cover_held_out_experiments():
    """J = 6 experiments per type from y = k mu + u + eps; 90 % t intervals (J - 1 df) cover 85-95 %."""
    rng = np.random.default_rng(20261202)
    level, J, reps = 0.90, 6, 400
    outcome_var = 0.05  # sigma_y^2 of the outcome; experiment SE^2 = 2 sigma_y^2 / m
    hits = 0
    for _ in range(reps):
        k = rng.uniform(-1.0, 2.0)  # true factor, far from the prior for some types
        tau = rng.choice([0.0, 0.005, 0.01])
        mu = rng.uniform(0.02, 0.12, J + 1)
        m = rng.integers(1000, 20000, J + 1).astype(float)
        se = np.sqrt(2 * outcome_var / m)
        y = k * mu + tau * rng.standard_normal(J + 1) + se * rng.standard_normal(J + 1)
        cal = C.calibrate_type("t", mu[:J], y[:J], se[:J], np.zeros(J))
        # held-out experiment J: mu is the prior model's ATE, G * s_t = mu * k_sd (s_t = b * k_sd, G = mu / b)
        sigma_delta = P.effect_uncertainty_sd(mu[J], cal.k_sd, cal.tau)
        lo, hi = P.prediction_interval(
            cal.k_hat * mu[J], sigma_delta, outcome_var, m[J], level, df=cal.prediction_df
        )
        hits += lo <= y[J] <= hi
    coverage = hits / reps
    assert 0.85 <= coverage <= 0.95, coverage
