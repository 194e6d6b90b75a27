"""Statistical check: the learned base effect's 95 % interval covers the truth in 90–98 % of 100 worlds.

Each replicate is a seeded small HCP world (800 HCPs × 12 months, confounded past treatments); the effect of
``call_frequency_increase`` (true base effect 0.09 × the world's modifiers, no drift) is learned from its
history with entity-grouped cross-fitting and clustered standard errors. Light nuisance models (ridge /
logistic regression: the treatment model is logistic in the features, so the orthogonal score stays
unbiased while the outcome model is only approximate) keep the test within CI's budget; every category
level with at least 3 treated rows is learned so the world's adoption multipliers are not forced to the
priors'. Seeded, so the result is fixed; measured while writing it: 94 of 100 covered (z-scores: mean 0.10,
SD 1.00); with gradient-boosting nuisance models on 1 500-HCP worlds, 39 of 40 (SD 0.92).
"""

from __future__ import annotations

import pytest
from scipy import stats

from twinkernel import get_config, synthetic
from twinkernel.effect_learning import learn_effect
from twinkernel.effect_learning.world import history_frame, true_base_effect

pytestmark = pytest.mark.slow

REPLICATES = 100
ITYPE = "call_frequency_increase"
ARGS = {"treatment_col": "treated", "outcome_col": "brand_share", "time_col": "month", "entity_col": "hcp_id"}


def test_learned_interval_covers_the_truth():
    cfg = get_config()
    el = cfg.effect_learning.model_copy(
        update={
            "min_level_treated": 3,
            "nuisance": cfg.effect_learning.nuisance.model_copy(update={"algorithm": "linear"}),
        }
    )
    cfg = cfg.model_copy(update={"effect_learning": el})
    covered = 0
    z = []
    for s in range(REPLICATES):
        world = synthetic.hcp_world(800, months=12, seed=1000 + s, with_interventions=True)
        history = history_frame(world)
        le = learn_effect(history, intervention_type=ITYPE, seed=s, config=cfg, **ARGS)
        truth = true_base_effect(world, ITYPE, float(history["month_index"].mean()), cfg)
        lo, hi = le.confidence_interval(0.95)
        covered += lo <= truth <= hi
        z.append((le.base_effect - truth) / le.base_effect_sd)
    rate = covered / REPLICATES
    print(f"covered {covered} of {REPLICATES}; z mean {sum(z) / len(z):.3f}")
    assert 0.90 <= rate <= 0.98, rate
    # and the z-scores look standard normal (a two-sided KS test at 1 %)
    assert stats.kstest(z, "norm").pvalue > 0.01
