"""TwinRetrainingService: SPEC decision rules, durable jobs, attempts, webhook, LOO promotion."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from uuid import uuid4

import pytest

from twinkernel import InterventionConfig, TwinPopulation, synthetic
from twinkernel.effect_model import EffectModel
from twinkernel.fidelity_tracker import FidelityTracker
from twinkernel.models import FidelityGrade, FidelityRecord
from twinkernel.models.retraining import JobState, RetrainingJob, TriggerReason
from twinkernel.repository import TwinRepository
from twinkernel.retraining_service import TwinRetrainingConfig, TwinRetrainingService

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def repo(tmp_path):
    r = TwinRepository(data_dir=tmp_path)
    yield r
    r.close()


def _seed_records(repo, model_id, errors, coverage):
    """Validated fidelity records with the given |errors| and coverage flags (validated just now)."""
    now = datetime.now(UTC)
    for i, (err, cov) in enumerate(zip(errors, coverage, strict=True)):
        rec = FidelityRecord(
            simulation_id=uuid4(),
            model_id=model_id,
            simulated_ate=0.05 * (1 + err),
            simulated_ci_lower=0.0,
            simulated_ci_upper=0.1,
            actual_ate=0.05,
            prediction_error=err,
            ci_coverage=cov,
            fidelity_grade=FidelityGrade.POOR,
            intervention_type="email_campaign",
            validated_at=now - timedelta(minutes=len(errors) - i),
        )
        repo.save_fidelity_record({**rec.to_dict(), "id": str(rec.simulation_id)})


def _service(repo, clock=None, **settings):
    rc = TwinRetrainingConfig.from_config(**settings) if settings else None
    return TwinRetrainingService(repo, retraining_config=rc, clock=clock or Clock(T0))


class TestConfig:
    def test_reads_the_auto_retraining_section(self, config):
        rc = TwinRetrainingConfig.from_config()
        assert rc.model_dump() == config.auto_retraining.model_dump()
        assert TwinRetrainingConfig.from_config(cooldown_hours=1).cooldown_hours == 1

    def test_bad_override_names_the_field(self):
        with pytest.raises(ValueError, match="auto_approve_threshold"):
            TwinRetrainingConfig.from_config(auto_approve_threshold=2.0)


class TestDecision:
    def test_too_few_validations_blocks(self, repo, config):
        n = config.auto_retraining.min_validations_for_decision
        _seed_records(repo, "m", [2.0] * (n - 1), [False] * (n - 1))
        d = _service(repo).evaluate_retraining_need_sync("m")
        assert not d.should_retrain and d.blocked_by == "min_validations"
        _seed_records(repo, "m", [2.0], [False])
        assert _service(repo).evaluate_retraining_need_sync("m").should_retrain

    def test_triggers_in_order_and_auto_approval_below_050(self, repo):
        _seed_records(repo, "m", [1.0] * 5, [False] * 5)  # score 0.0
        svc = _service(repo)
        d = svc.evaluate_retraining_need_sync("m")
        assert d.reasons == (TriggerReason.LOW_FIDELITY, TriggerReason.HIGH_ERROR, TriggerReason.LOW_COVERAGE)
        assert d.fidelity_score == pytest.approx(0.0)
        assert d.auto_approve and not d.requires_approval
        job = svc.maybe_trigger_sync("m")
        assert job.state is JobState.APPROVED and job.approved_by == "auto"
        assert job.trigger_fidelity == pytest.approx(0.0)

    def test_moderate_fidelity_waits_for_approval(self, repo):
        _seed_records(repo, "m", [0.45] * 5, [True] * 5)  # 0.7 * 0.55 + 0.3 = 0.685
        svc = _service(repo)
        d = svc.evaluate_retraining_need_sync("m")
        assert d.reasons == (TriggerReason.LOW_FIDELITY, TriggerReason.HIGH_ERROR)
        assert d.fidelity_score == pytest.approx(0.685)
        assert d.requires_approval and not d.auto_approve
        job = svc.maybe_trigger_sync("m")
        assert job.state is JobState.PENDING
        approved = svc.approve_job(job.id, approved_by="lead")
        assert approved.state is JobState.APPROVED and approved.approved_by == "lead"

    def test_no_approval_needed_when_configured(self, repo):
        _seed_records(repo, "m", [0.45] * 5, [True] * 5)
        job = _service(repo, require_approval=False).maybe_trigger_sync("m")
        assert job.state is JobState.APPROVED

    def test_low_coverage_alone_triggers(self, repo):
        _seed_records(repo, "m", [0.05] * 5, [True, False, False, True, True])  # coverage 0.6
        d = _service(repo).evaluate_retraining_need_sync("m")
        assert d.reasons == (TriggerReason.LOW_COVERAGE,)
        assert "coverage rate 0.60 < 0.80" in d.explanation

    def test_good_fidelity_needs_nothing(self, repo):
        _seed_records(repo, "m", [0.0] * 5, [True] * 5)
        d = _service(repo).evaluate_retraining_need_sync("m")
        assert not d.should_retrain and d.blocked_by is None and d.fidelity_score == pytest.approx(1.0)

    def test_open_job_blocks_and_a_second_trigger_is_refused(self, repo):
        _seed_records(repo, "m", [1.0] * 5, [False] * 5)
        svc = _service(repo)
        job = svc.trigger_retraining_sync("m", "manual check")
        assert job.trigger_reasons == (TriggerReason.MANUAL,)
        assert svc.evaluate_retraining_need_sync("m").blocked_by == "open_job"
        with pytest.raises(ValueError, match="already has an open retraining job"):
            svc.trigger_retraining_sync("m", TriggerReason.MANUAL)

    def test_cooldown_after_the_last_job(self, repo, config):
        _seed_records(repo, "m", [1.0] * 5, [False] * 5)
        clock = Clock(T0)
        done = RetrainingJob(
            model_id="m", state=JobState.COMPLETED, reason="x", max_attempts=3, created_at=T0, updated_at=T0
        )
        repo.save_job(done)
        svc = _service(repo, clock)
        clock.now = T0 + timedelta(hours=config.auto_retraining.cooldown_hours - 1)
        assert svc.evaluate_retraining_need_sync("m").blocked_by == "cooldown"
        clock.now = T0 + timedelta(hours=config.auto_retraining.cooldown_hours + 1)
        assert svc.evaluate_retraining_need_sync("m").should_retrain

    def test_async_and_sync_share_one_implementation(self, repo):
        _seed_records(repo, "m", [0.45] * 5, [True] * 5)
        svc = _service(repo)
        a = asyncio.run(svc.evaluate_retraining_need("m")).model_dump(exclude={"evaluated_at"})
        assert a == svc.evaluate_retraining_need_sync("m").model_dump(exclude={"evaluated_at"})
        job = asyncio.run(svc.trigger_retraining("m", "manual", {"algorithm": "random_forest"}))
        assert svc.get_job(job.id) == job and job.config_overrides["algorithm"] == "random_forest"


class TestJobs:
    def test_failed_attempts_are_retried_then_a_person_must_act(self, repo, config):
        _seed_records(repo, "ghost", [1.0] * 5, [False] * 5)
        svc = _service(repo)
        job = svc.maybe_trigger_sync("ghost")  # no model registered: every attempt fails
        states = [svc.run_pending_jobs()[0] for _ in range(config.auto_retraining.max_attempts)]
        assert [j.attempts for j in states] == [1, 2, 3]
        assert [j.state for j in states] == [JobState.APPROVED, JobState.APPROVED, JobState.FAILED]
        assert "register_model first" in states[-1].error
        assert svc.run_pending_jobs() == []
        d = svc.evaluate_retraining_need_sync("ghost")
        assert d.blocked_by == "max_attempts" and "a person must act" in d.explanation
        assert svc.get_job(job.id).state is JobState.FAILED

    def test_invalid_transition_names_the_states(self, repo):
        _seed_records(repo, "m", [1.0] * 5, [False] * 5)
        svc = _service(repo)
        job = svc.maybe_trigger_sync("m")
        svc.cancel_job(job.id)
        with pytest.raises(ValueError, match="is cancelled: it cannot become approved"):
            svc.approve_job(job.id)
        with pytest.raises(KeyError, match="no such retraining job"):
            svc.get_job("nope")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class TestWebhook:
    def test_events_are_posted(self, repo):
        _Hook.received = []
        server = HTTPServer(("127.0.0.1", 0), _Hook)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            _seed_records(repo, "m", [1.0] * 5, [False] * 5)
            url = f"http://127.0.0.1:{server.server_port}/hook"
            svc = _service(repo, notification_webhook=url)
            job = svc.maybe_trigger_sync("m")
        finally:
            server.shutdown()
            server.server_close()
        assert [m["event"] for m in _Hook.received] == ["job_pending", "job_approved"]
        assert _Hook.received[-1]["job"]["id"] == job.id
        assert svc.stats()["webhook_sent"] == 2 and svc.stats()["webhook_failed"] == 0

    def test_a_failing_webhook_is_counted_never_fatal(self, repo, caplog):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        _seed_records(repo, "m", [1.0] * 5, [False] * 5)
        svc = _service(repo, notification_webhook=f"http://127.0.0.1:{port}/hook")
        job = svc.maybe_trigger_sync("m")
        assert svc.get_job(job.id).state is JobState.APPROVED
        assert svc.stats()["webhook_failed"] == 2
        assert "retraining webhook" in caplog.text


# --- running jobs on a small synthetic world ------------------------------------------------------------
FACTORS = {"email_campaign": 0.4, "digital_engagement": 1.8}
CONFIGS = [
    InterventionConfig(intervention_type="email_campaign", channel="email"),
    InterventionConfig(intervention_type="digital_engagement", channel="digital"),
]


@pytest.fixture(scope="module")
def small_world():
    world = synthetic.hcp_world(6000, months=2, seed=11, true_effect_factors=FACTORS)
    pop = TwinPopulation.from_frame(world.hcps, model_id="small")
    exps = [
        synthetic.run_experiment(world, cfg, n_per_arm=1000, month=j, seed=50 + 7 * j + i)[1]
        for i, cfg in enumerate(CONFIGS)
        for j in range(5)
    ]
    return pop, exps


def _validate_all(tracker, engine, exps):
    for e in exps:
        r = engine.simulate(e.intervention, e.population_filter, seed=0, calculate_heterogeneity=False)
        tracker.record_prediction(r)
        tracker.validate(
            r.simulation_id,
            e.observed_ate,
            actual_std_error=e.standard_error,
            actual_sample_size=e.n_total,
            actual_experiment_id=e.experiment_id,
            completion_date=e.completion_date,
        )


class TestRunning:
    def test_job_survives_a_restart_and_promotes_a_better_candidate(self, tmp_path, small_world):
        pop, exps = small_world
        repo = TwinRepository(data_dir=tmp_path)
        svc = TwinRetrainingService(repo)
        model = svc.register_model("small", pop)
        _validate_all(FidelityTracker(repo), model.engine(cache=False, repository=False), exps)
        job = svc.trigger_retraining_sync("small", "manual")
        assert job.state is JobState.PENDING or job.state is JobState.APPROVED
        if job.state is JobState.PENDING:
            svc.approve_job(job.id, approved_by="test")
        repo.close()
        # a new process: new repository object, new service, the model registered again
        repo2 = TwinRepository(data_dir=tmp_path)
        svc2 = TwinRetrainingService(repo2)
        svc2.register_model("small", pop)
        assert svc2.get_job(job.id).state is JobState.APPROVED
        (done,) = svc2.run_pending_jobs()
        assert done.state is JobState.COMPLETED and done.attempts == 1 and done.promoted is True
        assert done.candidate_score > done.current_score
        assert (done.fidelity_before, done.fidelity_after) == (done.current_score, done.candidate_score)
        assert done.n_experiments == len(exps)
        champion = svc2.champion("small")
        assert champion.model_id == done.candidate_model_id != "small"
        assert set(champion.effect_model.calibrations) == set(FACTORS)
        assert champion.population.model_id == champion.model_id and pop.model_id == "small"
        record = repo2.get_model(done.candidate_model_id)
        assert record.status == "champion" and record.training_metrics["parent_model_id"] == "small"
        saved = EffectModel.from_dict(record.training_metrics["effect_model"])
        assert saved.model_id == champion.effect_model.model_id
        repo2.close()

    def test_a_candidate_that_is_not_better_is_not_promoted(self, tmp_path, small_world):
        pop, exps = small_world
        repo = TwinRepository(data_dir=tmp_path)
        as_of = max(e.completion_date for e in exps)
        calibrated = EffectModel.from_config().calibrate(pop, exps, as_of=as_of)
        svc = TwinRetrainingService(repo)
        model = svc.register_model("small", pop, calibrated)
        _validate_all(FidelityTracker(repo), model.engine(cache=False, repository=False), exps)
        job = svc.trigger_retraining_sync("small", "manual", auto_approve=True)
        done = svc.run_job(job.id)
        assert done.state is JobState.COMPLETED and done.promoted is False
        assert done.candidate_score == pytest.approx(done.current_score)
        assert done.fidelity_after == done.fidelity_before
        assert svc.champion("small").model_id == "small"
        assert repo.get_model(done.candidate_model_id) is None
        repo.close()
