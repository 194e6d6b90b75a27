"""The ``twinkernel demo`` step "effects from history": learn, then calibrate, against the world's truth.

The demo world is rebuilt with its past interventions (confounded: high-decile, engaged HCPs are treated
more often), on a sample of at most :data:`DEMO_MAX_HCPS` HCPs so the step takes seconds. For each tested
type the effect is learned from that history by double ML, then calibrated with a few synthetic
experiments, and the table prints the prior, the naive difference in means, the learned and the
calibrated base effect beside the world's true base effect (all in the effect model's parametrisation).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import TwinkernelConfig
from ..models import InterventionConfig
from .result import EffectLearningError
from .world import history_frame, true_base_effect

__all__ = ["DEMO_EXPERIMENTS_PER_TYPE", "DEMO_MAX_HCPS", "effects_from_history"]

DEMO_MAX_HCPS = 1500
"""HCPs of the demo world whose history the effects are learned from (a sample keeps the step short)."""
DEMO_EXPERIMENTS_PER_TYPE = 3
DEMO_N_PER_ARM = 600


def effects_from_history(
    *,
    history_hcps: int,
    months: int,
    seed: int,
    true_effect_factors: Mapping[str, float],
    tested_types: Sequence[str],
    config: TwinkernelConfig,
    progress: Any = None,
) -> str:
    """Run the step and return its printed table (a refusal is a row saying why, never a made-up effect)."""
    from .. import synthetic
    from ..effect_model import EffectModel
    from ..population import TwinPopulation

    n = min(history_hcps, DEMO_MAX_HCPS)
    if progress is not None:
        progress.start(f"learning effects from history (DML; {n:,} of {history_hcps:,} HCPs x {months} months)")
    started = time.perf_counter()
    world = synthetic.hcp_world(
        n, months=months, seed=seed, with_interventions=True, true_effect_factors=true_effect_factors, config=config
    )
    history = history_frame(world)
    mean_month = float(history["month_index"].mean())  # type: ignore[arg-type]
    model = EffectModel.from_config(config)
    refused: dict[str, str] = {}
    for t in tested_types:
        try:
            model = model.learn_from_history(
                history,
                intervention_type=t,
                treatment_col="treated",
                outcome_col=world.outcome_col,
                time_col="month",
                entity_col=world.entity_col,
                seed=seed % 2**63,
                config=config,
            )
        except EffectLearningError as exc:
            refused[t] = f"{exc.cause}: {exc}"
    learn_seconds = time.perf_counter() - started
    experiments = [
        synthetic.run_experiment(world, InterventionConfig(intervention_type=t), DEMO_N_PER_ARM, month=j,
                                 seed=seed % 2**32 + 101 * j + k, config=config)[1]  # fmt: skip
        for k, t in enumerate(tested_types)
        for j in range(min(DEMO_EXPERIMENTS_PER_TYPE, months))
    ]
    calibrated = model.calibrate(TwinPopulation.from_frame(world.hcps), experiments, config=config)
    if progress is not None:
        progress.done(f"(learning {learn_seconds:.2f} s)")

    eff = config.simulation.intervention_effects
    lines = [
        f"Effects from history: DML on {history.height:,} HCP-months of a {n:,}-HCP sample of the demo world "
        f"(treatment confounded with decile and engagement), then {DEMO_EXPERIMENTS_PER_TYPE} experiments "
        "per type; base effects (effect model's parametrisation), ± one standard error",
        f"{'intervention':<28}{'prior':>16}{'naive diff.':>16}{'learned':>18}{'+ calibrated':>18}{'truth':>9}",
    ]
    for t in tested_types:
        b0 = eff.types[t].base_effect
        prior = f"{b0:.3f} ± {eff.prior_relative_sd * abs(b0):.3f}"
        truth = f"{true_base_effect(world, t, mean_month, config):.3f}"
        if t in refused:
            lines.append(f"{t:<28}{prior:>16}   refused ({refused[t][:70]})")
            continue
        le = calibrated.learned[t]
        cal = calibrated.calibrations[t]
        naive = f"{le.diagnostics.naive_difference:.3f}"
        learned = f"{le.base_effect:.3f} ± {le.base_effect_sd:.3f}"
        after = f"{cal.base_effect(b0):.3f} ± {cal.base_effect_sd(b0):.3f}"
        lines.append(f"{t:<28}{prior:>16}{naive:>16}{learned:>18}{after:>18}{truth:>9}")
    lines.append(f"provenance: {calibrated.provenance}")
    return "\n".join(lines)
