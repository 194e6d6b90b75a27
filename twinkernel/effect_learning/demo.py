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

DEMO_MAX_HCPS = 1000
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
    from ..simulation_engine import SimulationEngine

    n = min(history_hcps, DEMO_MAX_HCPS)
    if progress is not None:
        progress.start(
            f"learning effects from history (DML; {n:,} of {history_hcps:,} HCPs x {months} months)"
        )
    started = time.perf_counter()
    world = synthetic.hcp_world(
        n,
        months=months,
        seed=seed,
        with_interventions=True,
        true_effect_factors=true_effect_factors,
        config=config,
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
    last = months - 1
    exp_months = range(max(0, months - DEMO_EXPERIMENTS_PER_TYPE), months)  # the latest months: "now"
    experiments = [
        synthetic.run_experiment(
            world,
            InterventionConfig(intervention_type=t),
            min(DEMO_N_PER_ARM, n // 2),
            month=j,
            seed=seed % 2**32 + 101 * j + k,
            config=config,
        )[1]
        for k, t in enumerate(tested_types)
        for j in exp_months
    ]
    population = TwinPopulation.from_frame(world.hcps)
    calibrated = model.calibrate(population, experiments, config=config)
    if progress is not None:
        progress.done(f"(learning {learn_seconds:.2f} s)")

    def ate(m: EffectModel, t: str) -> tuple[float, float]:
        engine = SimulationEngine(population, cache=False, repository=False, effect_model=m, config=config)
        r = engine.simulate(InterventionConfig(intervention_type=t), seed=seed, calculate_heterogeneity=False)
        return r.simulated_ate, float(r.effect_uncertainty_sd or 0.0)

    eff = config.simulation.intervention_effects
    lines = [
        f"Effects from history: DML on {history.height:,} HCP-months of a {n:,}-HCP sample of the demo world "
        "(treatment confounded with decile and engagement), then calibrated with "
        f"{len(exp_months)} experiments per type in months {exp_months[0] + 1}..{last + 1}.",
        "Base effect b (the effect model's parametrisation) ± SE, and the ATE on these HCPs in the last "
        "month ± the model's uncertainty σ_δ:",
        f"{'intervention':<28}{'b prior':>15}{'naive diff.':>12}{'b learned':>16}{'b true':>8}"
        f"{'ATE prior':>16}{'learned':>16}{'+ calibrated':>16}{'true':>8}",
    ]
    for t in tested_types:
        b0 = eff.types[t].base_effect
        prior = f"{b0:.3f} ± {eff.prior_relative_sd * abs(b0):.3f}"
        truth_b = f"{true_base_effect(world, t, mean_month, config):.3f}"
        truth_ate = (
            f"{synthetic.true_ate(world, InterventionConfig(intervention_type=t), last, config=config):.3f}"
        )
        ate_prior = "{:.3f} ± {:.3f}".format(*ate(EffectModel.from_config(config), t))
        if t in refused:
            lines.append(f"{t:<28}{prior:>15}  refused: {refused[t][:60]}")
            continue
        le = calibrated.learned[t]
        naive = f"{le.diagnostics.naive_difference:.3f}"
        learned = f"{le.base_effect:.3f} ± {le.base_effect_sd:.3f}"
        ate_learned = "{:.3f} ± {:.3f}".format(*ate(model, t))
        ate_cal = "{:.3f} ± {:.3f}".format(*ate(calibrated, t))
        lines.append(
            f"{t:<28}{prior:>15}{naive:>12}{learned:>16}{truth_b:>8}{ate_prior:>16}{ate_learned:>16}"
            f"{ate_cal:>16}{truth_ate:>8}"
        )
    lines.append(f"provenance: {calibrated.provenance}")
    return "\n".join(lines)
