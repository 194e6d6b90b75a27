"""The whole loop with real objects: train → simulate → record → real experiments → validate → report →
automatic retraining (surviving a restart) → a better model (issue 10's "done when").

The synthetic world's true base effects differ from the priors by factors 0.3 .. 2 and sample distribution
is harmful. Six experiments per type are validated against the prior model; two more per type, in later
months, are held out. No mocks: a real TwinGenerator, SimulationEngine, TwinRepository (SQLite),
FidelityTracker, TwinRetrainingService and MLflow lineage store.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.experiment_world import CONFIGS, FACTORS
from twinkernel import InterventionConfig, SimulationRecommendation, get_config, synthetic
from twinkernel.fidelity_tracker import FidelityTracker
from twinkernel.models import FidelityGrade
from twinkernel.models.retraining import JobState, TriggerReason
from twinkernel.repository import TwinRepository
from twinkernel.retraining.demo import demo_training_frame, demo_training_months
from twinkernel.retraining_service import TrainingData, TwinRetrainingService
from twinkernel.twin_generator import TwinGenerator

N_PER_ARM = 1500
pytestmark = [
    pytest.mark.slow,  # a 20 000-HCP world, two trainings and an MLflow store: ~1.5 min
    # both trainings (the fixture's and the retraining job's) split and cross-validate by time
    pytest.mark.filterwarnings("error:not (split|cross-validated) by time:UserWarning"),
]

TRAINING_ROWS = 4000  # history rows the twin model learns from (a seeded sample of the world's HCPs)
MONTHS = 12  # the demo's history: its training frame spans 8 target months, so the generator validates on
# the latest months and cross-validates in time order (a one-month frame warns that it cannot)


def _engine(model):
    return model.engine(cache=False, repository=False)


def _validate(tracker, engine, experiment, seed=0):
    r = engine.simulate(experiment.intervention, experiment.population_filter, seed=seed)
    tracker.record_prediction(r)
    record = tracker.validate(
        r.simulation_id,
        experiment.observed_ate,
        actual_std_error=experiment.standard_error,
        actual_sample_size=experiment.n_total,
        actual_experiment_id=experiment.experiment_id,
        completion_date=experiment.completion_date,
    )
    return r, record


@pytest.fixture(scope="module")
def world():
    w = synthetic.hcp_world(20_000, months=MONTHS, seed=3, true_effect_factors=FACTORS)
    frame = demo_training_frame(w, get_config(), seed=7).sample(n=TRAINING_ROWS, seed=7)
    gen = TwinGenerator("hcp", brand="Kisqali")
    metrics = gen.train(frame, w.outcome_col, time_col="month", track=False)
    population = gen.generate(20_000, seed=5)
    train, held_out = [], []
    for t, cfg in CONFIGS.items():
        for j in range(8):
            _, exp = synthetic.run_experiment(w, cfg, n_per_arm=N_PER_ARM, month=j, seed=100 * j + len(t))
            (train if j < 6 else held_out).append(exp)
    return SimpleNamespace(
        world=w,
        frame=frame,
        generator=gen,
        metrics=metrics,
        population=population,
        train=train,
        held_out=held_out,
    )


@pytest.fixture(scope="module")
def loop(world, tmp_path_factory):
    """Validate the training experiments with automatic retraining on; the job waits for a worker."""
    data_dir = tmp_path_factory.mktemp("twinkernel")
    repo = TwinRepository(data_dir=data_dir)
    service = TwinRetrainingService(repo)
    model_id = world.population.model_id
    prior_model = service.register_model(model_id, world.population, generator=world.generator)
    tracker = FidelityTracker(repo, retraining_service=service, auto_trigger_retraining=True)
    engine = _engine(prior_model)
    jobs_after = []
    for exp in world.train:
        _validate(tracker, engine, exp)
        jobs_after.append(len(service.jobs(model_id)))
    report = tracker.get_model_fidelity_report(model_id)
    job = tracker.last_triggered_job
    repo.close()  # the process ends between approval and run
    return SimpleNamespace(
        data_dir=data_dir, model_id=model_id, prior=prior_model, report=report, job=job, jobs_after=jobs_after
    )


@pytest.fixture(scope="module")
def retrained(world, loop):
    """A new process: new repository, service (with lineage) and worker run the approved job."""
    from twinkernel.lineage import LineageTracker

    repo = TwinRepository(data_dir=loop.data_dir)
    lineage = LineageTracker(data_dir=loop.data_dir)
    service = TwinRetrainingService(
        repo,
        lineage=lineage,
        training_data_provider=lambda _id: TrainingData(world.frame, world.world.outcome_col, "month"),
    )
    service.register_model(loop.model_id, world.population, generator=world.generator)
    state_before_run = service.get_job(loop.job.id).state
    ran = service.run_pending_jobs()
    yield SimpleNamespace(
        repo=repo, service=service, lineage=lineage, ran=ran, state_before_run=state_before_run
    )
    repo.close()


def test_twin_model_is_validated_in_time_order(world, config):
    """The multi-month history lets the twin model hold out its latest months and cross-validate in time
    order, so training warns about nothing (a one-month frame falls back to random rows, with warnings)."""
    m = world.metrics
    assert world.frame["month"].n_unique() == len(demo_training_months(MONTHS, config)) == 8
    assert m.split == "temporal" and m.cv_scheme == "time_ordered"
    assert len(m.cv_scores) == config.twin_generation.cv_folds
    assert m.warnings == ()
    assert m.training_rows + m.validation_rows == TRAINING_ROWS


def test_full_workflow_deploy(world, tmp_path):
    """A large prior effect is DEPLOY; the real experiment validates it and the report counts it."""
    repo = TwinRepository(data_dir=tmp_path)
    tracker = FidelityTracker(repo)
    engine = (
        TwinRetrainingService(repo)
        .register_model("deploy-model", world.population)
        .engine(cache=False, repository=False)
    )
    cfg = CONFIGS["call_frequency_increase"]
    _, exp = synthetic.run_experiment(world.world, cfg, n_per_arm=N_PER_ARM, month=2, seed=901)
    r, record = _validate(tracker, engine, exp)
    assert r.recommendation is SimulationRecommendation.DEPLOY
    assert r.prob_above_deploy >= 0.70 and "P(effect >= 0.05)" in r.recommendation_rationale
    assert exp.observed_ate > 0.05  # the real test agrees that it is worth deploying
    assert record.fidelity_grade is not FidelityGrade.UNVALIDATED
    assert record.prediction_error == pytest.approx((r.simulated_ate - exp.observed_ate) / exp.observed_ate)
    assert record.ci_coverage is True
    rep = tracker.get_model_fidelity_report("deploy-model")
    assert rep.n_validations == 1 and rep.by_intervention_type["call_frequency_increase"].n_validations == 1
    repo.close()


def test_full_workflow_skip(world, tmp_path):
    """A weak intervention is SKIP with its probabilities; the real test finds no worthwhile effect."""
    repo = TwinRepository(data_dir=tmp_path)
    tracker = FidelityTracker(repo)
    engine = (
        TwinRetrainingService(repo)
        .register_model("skip-model", world.population)
        .engine(cache=False, repository=False)
    )
    cfg = InterventionConfig(intervention_type="email_campaign", channel="digital", intensity_multiplier=0.2)
    _, exp = synthetic.run_experiment(world.world, cfg, n_per_arm=N_PER_ARM, month=2, seed=902)
    r, record = _validate(tracker, engine, exp)
    assert r.recommendation is SimulationRecommendation.SKIP
    assert r.prob_above_refine < 0.70 and "skip: P(effect >= 0.02)" in r.recommendation_rationale
    assert exp.observed_ate < 0.02
    assert record.validated_at is not None
    lo, hi = r.prediction_interval(n_per_arm=N_PER_ARM)
    assert record.ci_coverage is (lo <= exp.observed_ate <= hi)
    assert tracker.get_fidelity_record(r.simulation_id) == record
    repo.close()


def test_fidelity_triggers_retrain(loop, config):
    """validate(...) with auto_trigger_retraining creates one job, auto-approved below fidelity 0.50."""
    n_min = config.auto_retraining.min_validations_for_decision
    # no job before the minimum number of validations, exactly one after (open jobs block more)
    assert loop.jobs_after[: n_min - 1] == [0] * (n_min - 1)
    assert set(loop.jobs_after[n_min - 1 :]) == {1}
    job = loop.job
    assert job is not None and job.model_id == loop.model_id
    assert job.state is JobState.APPROVED and job.approved_by == "auto"
    assert TriggerReason.LOW_FIDELITY in job.trigger_reasons
    assert job.trigger_fidelity < config.auto_retraining.auto_approve_threshold
    assert loop.report.n_validations == len(CONFIGS) * 6
    assert loop.report.fidelity_score < config.auto_retraining.fidelity_threshold


def test_retrained_model_improved(world, loop, retrained, tmp_path, config):
    """After a restart the worker runs the job; the promoted model beats the priors on held-out tests."""
    assert retrained.state_before_run is JobState.APPROVED
    (job,) = retrained.ran
    assert job.id == loop.job.id and job.state is JobState.COMPLETED and job.attempts == 1
    assert job.promoted is True and job.fidelity_after > job.fidelity_before
    champion = retrained.service.champion(loop.model_id)
    assert champion.model_id == job.candidate_model_id
    assert "calibrated from 6 experiments" in champion.effect_model.provenance

    # recorded in the repository and, with lineage on, the refitted generator carries the champion alias
    record = retrained.repo.get_model(champion.model_id)
    assert record.status == "champion" and record.training_metrics["parent_model_id"] == loop.model_id
    import mlflow

    client = mlflow.MlflowClient(retrained.lineage.tracking_uri)
    name = config.repository.lineage.registered_model_name
    alias = config.repository.lineage.champion_alias
    assert str(client.get_model_version_by_alias(name, alias).version) == record.mlflow_model_version

    # held-out experiments: fidelity below 0.70 with priors, above after retraining
    held = FidelityTracker(TwinRepository(data_dir=tmp_path))
    prior_engine, new_engine = _engine(loop.prior), _engine(champion)
    prior_err, new_err = [], []
    for exp in world.held_out:
        r0, _ = _validate(held, prior_engine, exp)
        r1, _ = _validate(held, new_engine, exp)
        prior_err.append(abs(r0.simulated_ate - exp.observed_ate))
        new_err.append(abs(r1.simulated_ate - exp.observed_ate))
    threshold = config.auto_retraining.fidelity_threshold
    assert held.get_model_fidelity_report(loop.model_id).fidelity_score < threshold
    assert held.get_model_fidelity_report(champion.model_id).fidelity_score > threshold
    assert np.mean(new_err) * 3.0 <= np.mean(prior_err), (np.mean(prior_err), np.mean(new_err))

    # the harmful type is now SKIP "harmful"
    harmful = new_engine.simulate(CONFIGS["sample_distribution"], seed=1)
    assert harmful.simulated_ate < 0
    assert harmful.recommendation is SimulationRecommendation.SKIP
    assert "harmful" in harmful.recommendation_rationale
    assert _engine(loop.prior).simulate(CONFIGS["sample_distribution"], seed=1).recommendation is not (
        SimulationRecommendation.SKIP
    )
