"""EffectModel.calibrate on the synthetic world: experiments teach the effect model (SPEC "Calibration").

The world's true base effects differ from the priors by factors 0.3 .. 2 (sample distribution is harmful);
six experiments per type are the evidence, two more per type (later months) are held out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.experiment_world import CONFIGS, FACTORS
from twinkernel import (
    InterventionConfig,
    SimulationEngine,
    SimulationRecommendation,
    TwinPopulation,
    synthetic,
)
from twinkernel.effect_model import EffectModel
from twinkernel.kernels import effects as K


@pytest.fixture(scope="module")
def setting():
    world = synthetic.hcp_world(20_000, months=3, seed=3, true_effect_factors=FACTORS)
    pop = TwinPopulation.from_frame(world.hcps)
    train, held_out = [], []
    for t, cfg in CONFIGS.items():
        for j in range(8):
            _, exp = synthetic.run_experiment(world, cfg, n_per_arm=1500, month=j, seed=100 * j + len(t))
            (train if j < 6 else held_out).append(exp)
    return world, pop, train, held_out


def _predicted(pop: TwinPopulation, model: EffectModel, exp) -> float:
    engine = SimulationEngine(pop, cache=False, repository=False, effect_model=model)
    r = engine.simulate(exp.intervention, exp.population_filter, seed=0, calculate_heterogeneity=False)
    return r.simulated_ate


@pytest.mark.slow
def test_calibration_cuts_the_held_out_error_and_learns_harm(setting, tmp_path):
    _, pop, train, held_out = setting
    prior = EffectModel.from_config()
    calibrated = prior.calibrate(pop, train)
    assert set(calibrated.calibrations) == set(CONFIGS)
    for t in CONFIGS:
        assert f"{t}: calibrated from 6 experiments" in calibrated.provenance
    assert calibrated.model_id != prior.model_id

    err_prior = np.mean([abs(_predicted(pop, prior, e) - e.observed_ate) for e in held_out])
    err_cal = np.mean([abs(_predicted(pop, calibrated, e) - e.observed_ate) for e in held_out])
    assert err_cal * 3.0 <= err_prior, (err_prior, err_cal)

    harmful = SimulationEngine(pop, cache=False, repository=False, effect_model=calibrated).simulate(
        CONFIGS["sample_distribution"], seed=1
    )
    assert harmful.simulated_ate < 0
    assert harmful.recommendation is SimulationRecommendation.SKIP
    assert "harmful" in harmful.recommendation_rationale
    assert harmful.prediction_df == 5.0
    assert harmful.between_experiment_sd == calibrated.calibrations["sample_distribution"].tau
    assert "sample_distribution: calibrated from 6 experiments" in harmful.effect_provenance

    # the kernel's base effect is k_hat times the prior's; its SD |b(prior)| k_sd
    cal = calibrated.calibrations["call_frequency_increase"]
    p_prior = prior.parameters(CONFIGS["call_frequency_increase"])
    p_cal = calibrated.parameters(CONFIGS["call_frequency_increase"])
    assert p_cal.value(K.P_BASE) == pytest.approx(cal.k_hat * p_prior.value(K.P_BASE), rel=1e-15)
    assert p_cal.base_sd == pytest.approx(cal.k_sd * abs(p_prior.value(K.P_BASE)), rel=1e-15)

    # save / load reproduces the model (and its cache identity)
    path = calibrated.save(tmp_path / "effects.json")
    again = EffectModel.load(path)
    assert again.model_id == calibrated.model_id and again.provenance == calibrated.provenance
    assert json.loads(path.read_text())["format"] == "twinkernel.effect_model/1"
    report = calibrated.calibration_report()
    assert report.height == len(CONFIGS)


def test_priors_only_have_prior_uncertainty():
    model = EffectModel.from_config()
    p = model.parameters(InterventionConfig(intervention_type="email_campaign"))
    rel = model.effects.prior_relative_sd
    assert (p.base_sd, p.tau, p.df) == (pytest.approx(rel * p.value(K.P_BASE)), 0.0, None)
    assert model.with_calibrations({}) == model.prior()
    with pytest.raises(ValueError, match="not a saved effect model"):
        EffectModel.from_dict({"format": "other"})
