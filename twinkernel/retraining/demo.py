"""The learning loop the ``twinkernel demo`` command shows (and tests reuse).

simulate with priors → run real (synthetic) experiments for some types → validate them (which triggers a
retraining job automatically) → fidelity report → a worker runs the job (refit + recalibration, promoted
only if leave-one-experiment-out fidelity improves) → simulate again and validate held-out experiments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import TwinkernelConfig
from ..fidelity_tracker import FidelityTracker
from ..models import InterventionConfig, SimulationResult
from ..models.fidelity import ModelFidelityReport
from ..models.retraining import JobState, RetrainingJob
from ..population import TwinPopulation
from .service import TrainingData, TwinRetrainingService

__all__ = ["LoopOutcome", "format_loop", "run_learning_loop"]


@dataclass
class LoopOutcome:
    """What one turn of the loop produced."""

    before: list[SimulationResult]
    after: list[SimulationResult]
    report_before: ModelFidelityReport
    report_held_out_prior: ModelFidelityReport
    report_held_out_after: ModelFidelityReport
    job: RetrainingJob | None
    model_id: str
    champion_id: str
    provenance: str
    n_experiments: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "champion_id": self.champion_id,
            "effect_provenance": self.provenance,
            "n_experiments": self.n_experiments,
            "fidelity_before": self.report_before.to_dict(),
            "held_out_fidelity_prior": self.report_held_out_prior.to_dict(),
            "held_out_fidelity_after": self.report_held_out_after.to_dict(),
            "job": None if self.job is None else self.job.to_dict(),
            "results_after": [r.model_dump(mode="json") for r in self.after],
        }


def run_learning_loop(
    *,
    world: Any,
    population: TwinPopulation,
    generator: Any,
    training_frame: Any,
    interventions: Sequence[InterventionConfig],
    tested_types: Sequence[str],
    experiments_per_type: int,
    n_per_arm: int,
    seed: int,
    before: list[SimulationResult],
    simulate: Callable[[Any, InterventionConfig], SimulationResult],
    config: TwinkernelConfig,
    progress: Any,
) -> LoopOutcome:
    """One turn of the loop on a synthetic world (see the module docstring); embedded SQLite in a temp dir."""
    from .. import synthetic
    from ..repository import TwinRepository

    with tempfile.TemporaryDirectory(prefix="twinkernel-demo-") as tmp:
        repo = TwinRepository(data_dir=tmp, config=config)
        service = TwinRetrainingService(
            repo,
            config=config,
            training_data_provider=lambda _id: TrainingData(training_frame, world.outcome_col, "month"),
        )
        model_id = str(population.model_id)
        prior = service.register_model(model_id, population, generator=generator)
        tracker = FidelityTracker(
            repo, retraining_service=service, auto_trigger_retraining=True, config=config
        )
        engine = prior.engine(cache=False, repository=False, config=config)
        by_type = {ic.intervention_type: ic for ic in interventions}
        progress.start(
            f"running {experiments_per_type} real (synthetic) experiments for each of {len(tested_types)} "
            "types and validating the predictions"
        )
        held_out = []
        for t in tested_types:
            for j in range(experiments_per_type + 1):
                _, exp = synthetic.run_experiment(
                    world, by_type[t], n_per_arm, month=j, seed=seed + 97 * j + len(t), config=config
                )
                if j == experiments_per_type:
                    held_out.append(exp)  # the last month's test is held out
                    continue
                _validate(tracker, engine, exp, seed)
        report_before = tracker.get_model_fidelity_report(model_id)
        progress.done(f"(fidelity {_score(report_before)})")

        progress.start("retraining (refit, recalibrate, leave-one-experiment-out score)")
        job = tracker.last_triggered_job
        if job is not None and job.state is JobState.PENDING:
            job = service.approve_job(job.id, approved_by="demo")
        ran = service.run_pending_jobs()
        job = ran[-1] if ran else job
        champion = service.champion(model_id)
        progress.done("" if job is None else f"(job {job.state.value}, promoted: {job.promoted})")

        progress.start("simulating the six interventions again and validating held-out experiments")
        new_engine = champion.engine(cache=False, repository=False, config=config)
        after = [simulate(new_engine, ic) for ic in interventions]
        check = FidelityTracker(TwinRepository(data_dir=tmp + "/held-out", config=config), config=config)
        for exp in held_out:
            _validate(check, engine, exp, seed)
            if champion.model_id != model_id:
                _validate(check, new_engine, exp, seed)
        progress.done()
        return LoopOutcome(
            before=before,
            after=after,
            report_before=report_before,
            report_held_out_prior=check.get_model_fidelity_report(model_id),
            report_held_out_after=check.get_model_fidelity_report(champion.model_id),
            job=job,
            model_id=model_id,
            champion_id=champion.model_id,
            provenance=champion.effect_model.provenance,
            n_experiments=len(tested_types) * experiments_per_type,
        )


def _validate(tracker: FidelityTracker, engine: Any, exp: Any, seed: int) -> None:
    r = engine.simulate(exp.intervention, exp.population_filter, seed=seed, calculate_heterogeneity=False)
    tracker.record_prediction(r)
    tracker.validate(
        r.simulation_id,
        exp.observed_ate,
        actual_std_error=exp.standard_error,
        actual_sample_size=exp.n_total,
        actual_experiment_id=exp.experiment_id,
        completion_date=exp.completion_date,
    )


def _score(report: ModelFidelityReport) -> str:
    return "unknown" if report.fidelity_score is None else f"{report.fidelity_score:.2f}"


def _rec(r: SimulationResult) -> str:
    return "-" if r.recommendation is None else r.recommendation.value.upper()


def format_loop(outcome: LoopOutcome) -> str:
    """The loop's summary: fidelity before and after, the job, and how each recommendation changed."""
    rb, hp, ha = outcome.report_before, outcome.report_held_out_prior, outcome.report_held_out_after
    lines = [
        "learning loop:",
        f"  validated {rb.n_validations} experiments against the prior model: fidelity {_score(rb)} "
        f"(mean |error| {rb.mean_absolute_error or 0:.2f}, coverage "
        f"{'-' if rb.coverage_rate is None else f'{rb.coverage_rate:.0%}'})",
    ]
    job = outcome.job
    if job is None:
        lines.append("  no retraining job was triggered (fidelity within the thresholds)")
    else:
        lines.append(
            f"  retraining job {job.id[:8]} ({job.reason}): {job.state.value}; leave-one-experiment-out "
            f"fidelity {_num(job.current_score)} current vs {_num(job.candidate_score)} candidate; "
            f"promoted: {job.promoted}"
        )
    lines.append(
        f"  held-out experiments ({hp.n_validations}): fidelity {_score(hp)} with priors -> {_score(ha)} "
        f"after retraining"
    )
    lines.append(f"  effect model: {outcome.provenance}")
    lines.append("")
    width = max(len(r.intervention_config.intervention_type) for r in outcome.before)
    lines.append(f"  {'intervention'.ljust(width)}  before                after")
    for b, a in zip(outcome.before, outcome.after, strict=True):
        name = b.intervention_config.intervention_type.ljust(width)
        left = f"{_rec(b):<7} {b.simulated_ate:+.4f}"
        right = f"{_rec(a):<7} {a.simulated_ate:+.4f}"
        changed = "" if _rec(b) == _rec(a) else "  (changed)"
        if a.recommendation_rationale.startswith("skip (harmful)"):
            changed += "  harmful"
        lines.append(f"  {name}  {left}  ->  {right}{changed}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
