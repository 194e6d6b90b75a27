"""Effects learned from the synthetic world's confounded history, against the world's truth.

The world treats high-decile, engaged HCPs more often, and they also have a higher brand share: the naive
difference in means is biased. Double ML with the effect model's own parametrisation recovers the true
base effect (expressed in the model's terms: :func:`~twinkernel.effect_learning.world.true_base_effect`).
A learned model then calibrated with a few experiments names both sources and predicts with a narrower
interval than priors alone, still covering the truth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.experiment_world import CONFIGS, FACTORS
from twinkernel import EffectModel, SimulationEngine, TwinPopulation, synthetic
from twinkernel.effect_learning.world import history_frame, true_base_effect
from twinkernel.kernels import effects as K

pytestmark = pytest.mark.slow
ARGS = {"treatment_col": "treated", "outcome_col": "brand_share", "time_col": "month", "entity_col": "hcp_id"}


@pytest.fixture(scope="module")
def confounded():
    world = synthetic.hcp_world(3000, months=12, seed=1, with_interventions=True)
    history = history_frame(world)
    model = EffectModel.from_config()
    for t in synthetic.INTERVENTION_TYPES:
        model = model.learn_from_history(history, intervention_type=t, seed=1, **ARGS)
    return world, history, model


@pytest.mark.parametrize("itype", synthetic.INTERVENTION_TYPES)
def test_naive_difference_is_biased_and_dml_recovers_the_base_effect(confounded, itype):
    world, history, model = confounded
    le = model.learned[itype]
    truth = true_base_effect(world, itype, float(history["month_index"].mean()))
    d = le.diagnostics
    # the learned base effect is within 2 of its standard errors of the truth ...
    assert abs(le.base_effect - truth) < 2.0 * le.base_effect_sd, (le.base_effect, truth, le.base_effect_sd)
    # ... the naive difference in means misses it by more than 3 of its own
    assert abs(d.naive_difference - truth) > 3.0 * d.naive_std_error, (d.naive_difference, truth)
    # and misses the true mean effect on the treated rows too (what it would estimate without confounding)
    rows = np.flatnonzero(
        (history["treated"] & (history["intervention_type"].cast(str) == itype)).fill_null(False).to_numpy()
    )
    att = float(world.truth.realised_effects[rows].mean())
    assert abs(d.naive_difference - att) > 3.0 * d.naive_std_error, (d.naive_difference, att)
    assert d.folds == 3 and d.fold_scheme == "group_kfold" and d.n_clusters > 2000
    assert 0.0 <= d.share_outside <= 0.1 and d.treatment_oof_score > 0.6


def test_learned_then_calibrated_model(tmp_path):
    itype = "speaker_program_invitation"
    cfg = CONFIGS[itype]
    world = synthetic.hcp_world(3000, months=12, seed=5, with_interventions=True, true_effect_factors=FACTORS)
    learned = EffectModel.from_config().learn_from_history(
        history_frame(world), intervention_type=itype, seed=2, **ARGS
    )
    experiments = [
        synthetic.run_experiment(world, cfg, n_per_arm=800, month=m, seed=40 + m)[1] for m in range(3)
    ]
    pop = TwinPopulation.from_frame(world.hcps)
    both = learned.calibrate(pop, experiments)
    priors_only = EffectModel.from_config().calibrate(pop, experiments)

    text = both.provenance
    assert (
        f"{itype}: learned from " in text
        and "(DML, 2025-01..2025-12) + calibrated from 3 experiments" in text
    )
    assert both.summary().filter(intervention_type=itype, parameter="base_effect")["source"].item() == (
        "learned (DML) + calibrated"
    )
    cal = both.calibrations[itype]
    le = learned.learned[itype]
    b0 = both.effects.types[itype].base_effect
    assert cal.prior_mean == pytest.approx(le.base_effect / b0) and cal.prior_sd == pytest.approx(
        le.base_effect_sd / b0
    )

    # the kernel's base effect is k_hat times the prior's (k's prior was centred on the learned effect)
    assert both.parameters(cfg).value(K.P_BASE) == pytest.approx(cal.k_hat * b0, rel=1e-15)
    truth = synthetic.true_ate(world, cfg, month=3)

    def interval(model: EffectModel) -> tuple[float, float]:
        r = SimulationEngine(pop, cache=False, repository=False, effect_model=model).simulate(cfg, seed=1)
        return r.prediction_interval(math.inf)

    lo_both, hi_both = interval(both)
    lo_cal, hi_cal = interval(priors_only)
    lo_prior, hi_prior = interval(EffectModel.from_config())
    assert hi_both - lo_both < hi_cal - lo_cal < hi_prior - lo_prior
    assert lo_both <= truth <= hi_both, (lo_both, truth, hi_both)
    # the learned model alone (no experiments) carries its SE as s_t
    r = SimulationEngine(pop, cache=False, repository=False, effect_model=learned).simulate(cfg, seed=1)
    assert "learned from" in r.effect_provenance
    again = EffectModel.load(both.save(tmp_path / "both.json"))
    assert again.provenance == both.provenance and again.model_id == both.model_id


def test_demo_step_prints_priors_learned_calibrated_and_truth():
    from twinkernel import get_config
    from twinkernel.cli import DEMO_TRUE_EFFECT_FACTORS
    from twinkernel.effect_learning.demo import effects_from_history

    text = effects_from_history(
        history_hcps=20_000,
        months=6,
        seed=3,
        true_effect_factors=DEMO_TRUE_EFFECT_FACTORS,
        tested_types=("speaker_program_invitation",),
        config=get_config(),
    )
    lines = text.splitlines()
    assert "DML on 6,000 HCP-months of a 1,000-HCP sample" in lines[0]
    row = next(line for line in lines if line.startswith("speaker_program_invitation"))
    cells = row.split()
    assert cells[1:4] == ["0.120", "±", "0.030"]  # the prior b and its SD
    learned, true_b = float(cells[5]), float(cells[8])
    assert abs(learned - true_b) < 3 * float(cells[7])
    calibrated, true_ate = float(cells[15]), float(cells[18])
    assert abs(calibrated - true_ate) < abs(float(cells[9]) - true_ate)  # closer than the prior model's ATE
    assert (
        "speaker_program_invitation: learned from" in lines[-1]
        and "+ calibrated from 3 experiments" in lines[-1]
    )
