"""The learning loop the ``twinkernel demo`` command shows (and tests reuse).

simulate with priors → run real (synthetic) experiments for some types → validate them (which triggers a
retraining job automatically) → fidelity report → a worker runs the job (refit + recalibration, promoted
only if leave-one-experiment-out fidelity improves) → simulate again and validate held-out experiments.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..config import TwinkernelConfig
from ..fidelity_tracker import FidelityTracker
from ..models import InterventionConfig, SimulationResult
from ..models.experiment import ExperimentResult
from ..models.fidelity import ModelFidelityReport
from ..models.retraining import JobState, RetrainingJob
from ..population import TwinPopulation
from .service import ServingModel, TrainingData, TwinRetrainingService

__all__ = [
    "LoopOutcome",
    "demo_training_frame",
    "demo_training_months",
    "format_loop",
    "min_history_units",
    "run_learning_loop",
]


# --- the training frame ---------------------------------------------------------------------------------
def _training_times(n_times: int, test_size: float) -> int:
    """Distinct times a time-ordered split of ``n_times`` keeps for training (as the generator splits)."""
    if n_times < 2:
        return 0
    return min(n_times - 1, max(1, math.floor((1.0 - test_size) * n_times)))


def demo_training_months(months: int, config: TwinkernelConfig) -> list[int]:
    """The target months of the demo's training frame: the latest ones, as many as a time-ordered validation
    split followed by ``twin_generation.cv_folds`` time-ordered cross-validation folds need (all months after
    the first when the world is shorter).

    Examples
    --------
    >>> from twinkernel.config import load_config
    >>> demo_training_months(12, load_config())  # 6 training months for 5 folds, 2 for validation
    [4, 5, 6, 7, 8, 9, 10, 11]
    >>> demo_training_months(3, load_config())
    [1, 2]
    """
    tg = config.twin_generation
    n = 2
    while _training_times(n, tg.test_size) < tg.cv_folds + 1:
        n += 1
    n = min(n, months - 1)
    return list(range(months - n, months))


def min_history_units(config: TwinkernelConfig, months: int) -> int:
    """The fewest entities whose :func:`demo_training_frame` still has ``min_training_rows`` training rows.

    Examples
    --------
    >>> from twinkernel.config import load_config
    >>> min_history_units(load_config(), 12)  # 8 target months, 6 of them for training: 8 x ceil(1000 / 6)
    1336
    """
    tg = config.twin_generation
    n_times = len(demo_training_months(months, config))
    k = _training_times(n_times, tg.test_size)
    if k == 0:  # one target month: a seeded random hold-out of test_size
        return math.ceil(tg.min_training_rows / (1.0 - tg.test_size))
    return n_times * math.ceil(tg.min_training_rows / k)


def demo_training_frame(world: Any, config: TwinkernelConfig, seed: int) -> pl.DataFrame:
    """A training frame over several months: each entity once, at one of :func:`demo_training_months`.

    The entities are dealt round-robin, in a seeded order, to the target months, and each row is
    :func:`twinkernel.synthetic.training_frame` of its month (the prior outcome over the months before it,
    the month as the prediction time). Several months let the generator validate on the latest months and
    cross-validate in time order; one row per entity keeps the frame as large as the world.
    """
    from .. import synthetic

    months = demo_training_months(world.months, config)
    ids = world.entities[world.entity_col].sort()
    order = np.random.default_rng(seed).permutation(ids.len())
    month_of = pl.DataFrame(
        {
            world.entity_col: ids.gather(order),
            "_target": np.asarray(months)[np.arange(ids.len()) % len(months)],
        }
    )
    parts = []
    for t in months:
        keep = month_of.filter(pl.col("_target") == t).select(world.entity_col)
        parts.append(synthetic.training_frame(world, target_month=t).join(keep, on=world.entity_col))
    return pl.concat(parts).sort(["month", world.entity_col])


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


@dataclass
class _Loop:
    """What the loop's phases share: the world, the store, the service and tracker, the prior model."""

    world: Any
    config: TwinkernelConfig
    seed: int
    tmp: str
    service: TwinRetrainingService
    tracker: FidelityTracker
    model_id: str
    engine: Any
    predictions: _Predictions


class _Predictions:
    """One simulation per model and experiment design (intervention config and filter).

    Experiments of one design get the same prediction (same inputs, same seed), so it is simulated once;
    each experiment records its own copy (a new ``simulation_id``), because the tracker keeps one fidelity
    record per recorded prediction.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._done: dict[tuple[int, str, str], SimulationResult] = {}

    def __call__(self, engine: Any, exp: ExperimentResult) -> SimulationResult:
        pf = exp.population_filter
        key = (id(engine), exp.intervention.model_dump_json(), "" if pf is None else pf.model_dump_json())
        first = self._done.get(key)
        if first is None:
            first = engine.simulate(exp.intervention, pf, seed=self.seed, calculate_heterogeneity=False)
            self._done[key] = first
            return first
        return first.model_copy(update={"simulation_id": uuid.uuid4()})


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
    """One turn of the loop on a synthetic world (see the module docstring); embedded SQLite in a temp dir.

    The phases, each timed by ``progress`` (``start(text, phase)`` / ``done(detail)``):
    :func:`experiments_phase`, :func:`retraining_phase`, :func:`simulate_again_phase`.
    """
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
        loop = _Loop(
            world=world,
            config=config,
            seed=seed,
            tmp=tmp,
            service=service,
            tracker=FidelityTracker(
                repo, retraining_service=service, auto_trigger_retraining=True, config=config
            ),
            model_id=model_id,
            engine=prior.engine(cache=False, repository=False, config=config),
            predictions=_Predictions(seed),
        )
        held_out, report_before = experiments_phase(
            loop, interventions, tested_types, experiments_per_type, n_per_arm, progress
        )
        job, champion = retraining_phase(loop, progress)
        after, check = simulate_again_phase(loop, champion, interventions, held_out, simulate, progress)
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


def experiments_phase(
    loop: _Loop,
    interventions: Sequence[InterventionConfig],
    tested_types: Sequence[str],
    experiments_per_type: int,
    n_per_arm: int,
    progress: Any,
) -> tuple[list[ExperimentResult], ModelFidelityReport]:
    """Run the experiments (one per month and type) and validate the prior model's predictions of them
    (the tracker triggers the retraining job); the last month's experiments are held out."""
    from .. import synthetic

    progress.start(
        f"running {experiments_per_type} real (synthetic) experiments for each of {len(tested_types)} "
        "types and validating the predictions",
        "experiments",
    )
    by_type = {ic.intervention_type: ic for ic in interventions}
    held_out = []
    for t in tested_types:
        for j in range(experiments_per_type + 1):
            _, exp = synthetic.run_experiment(
                loop.world,
                by_type[t],
                n_per_arm,
                month=j,
                seed=loop.seed + 97 * j + len(t),
                config=loop.config,
            )
            if j == experiments_per_type:
                held_out.append(exp)  # the last month's test is held out
                continue
            _validate(loop.tracker, loop.predictions(loop.engine, exp), exp)
    report = loop.tracker.get_model_fidelity_report(loop.model_id)
    progress.done(f"(fidelity {_score(report)})")
    return held_out, report


def retraining_phase(loop: _Loop, progress: Any) -> tuple[RetrainingJob | None, ServingModel]:
    """Approve the triggered job if it waits for a person, and run it as a worker would."""
    progress.start("retraining (refit, recalibrate, leave-one-experiment-out score)", "retraining")
    job = loop.tracker.last_triggered_job
    if job is not None and job.state is JobState.PENDING:
        job = loop.service.approve_job(job.id, approved_by="demo")
    ran = loop.service.run_pending_jobs()
    job = ran[-1] if ran else job
    champion = loop.service.champion(loop.model_id)
    progress.done("" if job is None else f"(job {job.state.value}, promoted: {job.promoted})")
    return job, champion


def simulate_again_phase(
    loop: _Loop,
    champion: ServingModel,
    interventions: Sequence[InterventionConfig],
    held_out: Sequence[ExperimentResult],
    simulate: Callable[[Any, InterventionConfig], SimulationResult],
    progress: Any,
) -> tuple[list[SimulationResult], FidelityTracker]:
    """Simulate the interventions with the champion, and validate both models on the held-out tests."""
    from ..repository import TwinRepository

    progress.start(
        "simulating the six interventions again and validating held-out experiments", "simulate again"
    )
    new_engine = champion.engine(cache=False, repository=False, config=loop.config)
    after = [simulate(new_engine, ic) for ic in interventions]
    check = FidelityTracker(
        TwinRepository(data_dir=loop.tmp + "/held-out", config=loop.config), config=loop.config
    )
    for exp in held_out:
        _validate(check, loop.predictions(loop.engine, exp), exp)
        if champion.model_id != loop.model_id:
            _validate(check, loop.predictions(new_engine, exp), exp)
    progress.done()
    return after, check


def _validate(tracker: FidelityTracker, r: SimulationResult, exp: ExperimentResult) -> None:
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
