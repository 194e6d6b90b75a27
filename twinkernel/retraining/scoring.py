"""Leave-one-experiment-out scoring of an effect model on validated experiments.

Each experiment j is predicted by a model calibrated without it, and the predictions are scored with the
one fidelity score (:func:`twinkernel.fidelity_tracker.fidelity_score`). The simulated ATE is linear in a
type's base effect, so a calibration with factor k̂ (SD k_sd) and spread τ predicts experiment j as
k̂·μ_j with σ_δ = √((μ_j·k_sd)² + τ²), μ_j the ATE the prior model simulates for j's config and filter
(SPEC §3: G·s_t = (μ_j / b_t)·(b_t·k_sd)). A prior prediction is μ_j with σ_δ = |μ_j|·r (normal); a
calibrated one uses Student's t with J − 1 degrees of freedom (at least 1, as the engine does). One
simulation per experiment, however many folds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from ..calibration import TypeCalibration, calibrate_experiments
from ..config import TwinkernelConfig
from ..effect_model import EffectModel
from ..fidelity_tracker import assess_prediction, fidelity_score
from ..models import SimulationStatus
from ..models.experiment import ExperimentResult
from ..population import TwinPopulation
from ..prediction import prediction_interval

__all__ = ["LooScore", "leave_one_out_score", "prior_simulations"]


@dataclass(frozen=True)
class LooScore:
    """A model's leave-one-experiment-out fidelity: score, mean |error|, coverage rate, experiments used."""

    fidelity_score: float | None
    mean_absolute_error: float | None
    coverage_rate: float | None
    n_experiments: int
    skipped: tuple[str, ...] = ()


def prior_simulations(
    population: TwinPopulation,
    experiments: Sequence[ExperimentResult],
    config: TwinkernelConfig,
    seed: int,
) -> tuple[dict[str, tuple[float, float]], tuple[str, ...]]:
    """Per experiment id, (μ_j under the priors, σ_y²) on ``population``; and ids that could not be simulated.

    An experiment whose filter leaves too few twins (a FAILED simulation) cannot be predicted and is
    skipped (named in the second return value). Experiments with the same intervention config and filter
    share one simulation (the inputs and the seed are the same, so is μ_j).
    """
    from ..simulation_engine import SimulationEngine

    engine = SimulationEngine(
        population, effect_model=EffectModel.from_config(config), config=config, cache=False, repository=False
    )
    out: dict[str, tuple[float, float]] = {}
    skipped: list[str] = []
    # experiments of one design (config and filter) share a simulation: same inputs, same seed, same μ_j
    done: dict[tuple[str, str], tuple[float, float] | None] = {}
    for e in experiments:
        pf = e.population_filter
        key = (e.intervention.model_dump_json(), "" if pf is None else pf.model_dump_json())
        if key not in done:
            r = engine.simulate(e.intervention, pf, calculate_heterogeneity=False, use_cache=False, seed=seed)
            sd = r.outcome_std if r.outcome_std is not None else config.simulation.default_outcome_sd
            done[key] = (r.simulated_ate, sd * sd) if r.status == SimulationStatus.COMPLETED else None
        value = done[key]
        if value is None:
            skipped.append(e.experiment_id)
        else:
            out[e.experiment_id] = value
    return out, tuple(skipped)


def _prediction(
    mu_j: float, calibration: TypeCalibration | None, r: float
) -> tuple[float, float, float | None]:
    """(predicted ATE, σ_δ, df) of one experiment under a calibration (None: the prior)."""
    if calibration is None:
        return mu_j, abs(mu_j) * r, None
    sd = math.hypot(mu_j * calibration.k_sd, calibration.tau)
    return calibration.k_hat * mu_j, sd, calibration.prediction_df


def leave_one_out_score(
    experiments: Sequence[ExperimentResult],
    mus: Mapping[str, tuple[float, float]],
    config: TwinkernelConfig,
    *,
    calibrated_on: Mapping[str, frozenset[str]] | None = None,
    as_of: date | None = None,
) -> LooScore:
    """Score predictions of ``experiments`` by a model calibrated, per type, on the other experiments.

    Parameters
    ----------
    experiments
        The validated experiments (those missing from ``mus`` are skipped).
    mus
        :func:`prior_simulations` of the model's population.
    calibrated_on
        Per intervention type, the experiment ids the model is calibrated on; ``None``: every experiment
        (the candidate). A type not listed is predicted by its prior. Experiment j of type t is predicted
        by the calibration on ``calibrated_on[t] − {j}`` (the prior when that is empty).
    as_of
        Date the recency weights are measured from (default: the latest completion date).
    """
    usable = [e for e in experiments if e.experiment_id in mus]
    skipped = tuple(e.experiment_id for e in experiments if e.experiment_id not in mus)
    if not usable:
        return LooScore(None, None, None, 0, skipped)
    when = as_of if as_of is not None else max(e.completion_date for e in usable)
    r = config.simulation.intervention_effects.prior_relative_sd
    level = config.simulation.default_confidence_level
    errors: list[float] = []
    covered: list[bool] = []
    for e in usable:
        t = e.intervention_type
        pool = (
            {x.experiment_id for x in usable if x.intervention_type == t}
            if calibrated_on is None
            else set(calibrated_on.get(t, frozenset()))
        )
        others = [
            x for x in usable if x.intervention_type == t and x.experiment_id in pool - {e.experiment_id}
        ]
        cal = None
        if others:
            cal = calibrate_experiments(others, lambda x: mus[x.experiment_id][0], as_of=when, config=config)[
                t
            ]
        mu_j, var = mus[e.experiment_id]
        mu, sd, df = _prediction(mu_j, cal, r)
        interval = prediction_interval(mu, sd, var, e.n_total / 2.0, level, df)
        a = assess_prediction(mu, e.observed_ate, interval, config)
        errors.append(abs(a.prediction_error))
        covered.append(bool(a.ci_coverage))
    mae = sum(errors) / len(errors)
    coverage = sum(covered) / len(covered)
    return LooScore(fidelity_score(mae, coverage, config), mae, coverage, len(usable), skipped)
