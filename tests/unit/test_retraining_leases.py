"""Retraining-job leases: a job left in ``training`` by a dead worker is taken over once its lease expires.

Real repositories (SQLite, and PostgreSQL when ``TWINKERNEL_TEST_POSTGRES_URL`` answers) and an injected
clock. A dead worker is simulated by what it leaves behind: a job row in ``training`` with its lease.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.persistence_helpers import postgres_repository
from twinkernel import InterventionConfig, TwinPopulation, synthetic
from twinkernel.fidelity_tracker import FidelityTracker
from twinkernel.models.retraining import JobState, RetrainingJob
from twinkernel.repository import TwinRepository
from twinkernel.retraining_service import LeaseLostError, TwinRetrainingService

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.requires_postgres)])
def repo(request, tmp_path):
    if request.param == "sqlite":
        ctx = contextlib.closing(TwinRepository(data_dir=tmp_path))
    else:
        ctx = postgres_repository(data_dir=tmp_path)
    with ctx as r:
        yield r


def _stuck_job(repo, model_id: str, attempts: int, lease_end: datetime | None, **extra) -> RetrainingJob:
    """The row a worker that died during attempt ``attempts`` leaves behind."""
    job = RetrainingJob(
        model_id=model_id,
        reason="manual",
        max_attempts=3,
        state=JobState.TRAINING,
        attempts=attempts,
        worker_id="dead-worker",
        started_at=T0,
        lease_expires_at=lease_end,
        created_at=T0 - timedelta(minutes=1),
        updated_at=T0,
        **extra,
    )
    repo.save_job(job)
    return job


class TestLease:
    def test_within_the_lease_the_job_is_not_touched(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 1, T0 + timedelta(seconds=lease))
        clock = Clock(T0 + timedelta(seconds=lease - 1))
        svc = TwinRetrainingService(repo, clock=clock, worker_id="w2")
        assert svc.run_pending_jobs() == []
        assert svc.get_job(job.id) == job  # not a field changed
        assert svc.stats()["jobs_run"] == 0

    def test_past_the_lease_the_job_is_taken_over_as_one_more_attempt(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 1, T0 + timedelta(seconds=lease))
        clock = Clock(T0 + timedelta(seconds=lease + 1))
        svc = TwinRetrainingService(repo, clock=clock, worker_id="w2")
        (ran,) = svc.run_pending_jobs()
        # "ghost" is not registered here, so the taken-over attempt fails and goes back to the queue
        assert ran.id == job.id and ran.attempts == 2 and ran.state is JobState.APPROVED
        assert ran.worker_id == "w2" and ran.started_at == clock.now and ran.lease_expires_at is None
        assert "register_model first" in ran.error
        assert svc.stats()["jobs_run"] == 1
        # the next worker run is attempt 3, the last one: failed, a person must act
        (last,) = svc.run_pending_jobs()
        assert (last.attempts, last.state) == (3, JobState.FAILED)
        assert svc.run_pending_jobs() == []

    def test_an_expired_job_with_no_attempts_left_fails_naming_the_dead_worker(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 3, T0 + timedelta(seconds=lease))
        svc = TwinRetrainingService(repo, clock=Clock(T0 + timedelta(seconds=lease)), worker_id="w2")
        (failed,) = svc.run_pending_jobs()
        assert failed.state is JobState.FAILED and failed.attempts == 3
        assert "dead-worker stopped sending heartbeats" in failed.error
        assert failed.completed_at == T0 + timedelta(seconds=lease)
        assert svc.stats()["jobs_run"] == 0  # nothing was run
        d = svc.evaluate_retraining_need_sync("ghost")
        assert svc.get_job(job.id).state is JobState.FAILED and d.should_retrain is False

    def test_a_row_without_a_lease_holds_one_from_its_last_update(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 1, None)
        inside = TwinRetrainingService(repo, clock=Clock(T0 + timedelta(seconds=lease / 2)))
        assert inside.run_pending_jobs() == []
        after = TwinRetrainingService(repo, clock=Clock(T0 + timedelta(seconds=lease + 60)))
        (ran,) = after.run_pending_jobs()
        assert ran.id == job.id and ran.attempts == 2

    def test_the_lease_length_is_configurable(self, repo):
        from twinkernel.retraining_service import TwinRetrainingConfig

        _stuck_job(repo, "ghost", 1, None)
        rc = TwinRetrainingConfig.from_config(job_lease_seconds=30)
        assert (
            TwinRetrainingService(
                repo, retraining_config=rc, clock=Clock(T0 + timedelta(seconds=29))
            ).run_pending_jobs()
            == []
        )
        ran = TwinRetrainingService(
            repo, retraining_config=rc, clock=Clock(T0 + timedelta(seconds=31))
        ).run_pending_jobs()
        assert [j.attempts for j in ran] == [2]
        with pytest.raises(ValueError, match="job_lease_seconds"):
            TwinRetrainingConfig.from_config(job_lease_seconds=0)

    def test_run_job_refuses_a_job_within_its_lease_and_takes_over_an_expired_one(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 1, T0 + timedelta(seconds=lease))
        clock = Clock(T0 + timedelta(seconds=lease - 1))
        svc = TwinRetrainingService(repo, clock=clock, worker_id="w2")
        with pytest.raises(ValueError, match=r"lease until .*not taken over before the lease expires"):
            svc.run_job(job.id)
        assert svc.get_job(job.id) == job
        clock.now = T0 + timedelta(seconds=lease + 1)
        ran = svc.run_job(job.id)
        assert ran.attempts == 2 and ran.worker_id == "w2" and ran.state is JobState.APPROVED

    def test_one_claim_wins(self, repo):
        job = _stuck_job(repo, "ghost", 1, T0)
        a = job.model_copy(update={"attempts": 2, "worker_id": "a"})
        b = job.model_copy(update={"attempts": 2, "worker_id": "b"})
        assert repo.claim_job(a, "training", 1) is True
        assert repo.claim_job(b, "training", 1) is False  # the row moved on: attempts is 2 now
        assert repo.get_job(job.id)["worker_id"] == "a"
        assert [j["attempts"] for j in repo.open_jobs("ghost")] == [2]

    def test_a_worker_that_lost_its_lease_is_told_by_its_heartbeat(self, repo, config):
        lease = config.auto_retraining.job_lease_seconds
        job = _stuck_job(repo, "ghost", 1, T0 + timedelta(seconds=lease))
        clock = Clock(T0 + timedelta(seconds=10))
        slow = TwinRetrainingService(repo, clock=clock, worker_id="dead-worker")
        renewed = slow.heartbeat(job)  # still its own: the lease is extended from now
        assert renewed.lease_expires_at == clock.now + timedelta(seconds=lease)
        assert slow.get_job(job.id).lease_expires_at == renewed.lease_expires_at
        clock.now = renewed.lease_expires_at + timedelta(seconds=1)
        TwinRetrainingService(repo, clock=clock, worker_id="w2").run_pending_jobs()
        with pytest.raises(LeaseLostError, match="dead-worker lost its lease"):
            slow.heartbeat(job)


# --- a real job taken over on a small synthetic world ------------------------------------------------------
FACTORS = {"email_campaign": 0.4, "digital_engagement": 1.8}
CONFIGS = [
    InterventionConfig(intervention_type="email_campaign", channel="email"),
    InterventionConfig(intervention_type="digital_engagement", channel="digital"),
]


def test_a_job_abandoned_in_training_is_completed_by_another_worker(tmp_path, config):
    world = synthetic.hcp_world(4000, months=2, seed=11, true_effect_factors=FACTORS)
    pop = TwinPopulation.from_frame(world.hcps, model_id="small")
    exps = [
        synthetic.run_experiment(world, cfg, n_per_arm=800, month=j, seed=50 + 7 * j + i)[1]
        for i, cfg in enumerate(CONFIGS)
        for j in range(4)
    ]
    repo = TwinRepository(data_dir=tmp_path)
    first = TwinRetrainingService(repo, clock=Clock(T0), worker_id="w1")
    model = first.register_model("small", pop)
    tracker = FidelityTracker(repo)
    engine = model.engine(cache=False, repository=False)
    for e in exps:
        r = engine.simulate(e.intervention, e.population_filter, seed=0, calculate_heterogeneity=False)
        tracker.record_prediction(r)
        tracker.validate(
            r.simulation_id,
            e.observed_ate,
            actual_std_error=e.standard_error,
            actual_sample_size=e.n_total,
            actual_experiment_id=e.experiment_id,
        )
    job = first.trigger_retraining_sync("small", "manual", auto_approve=True)
    # worker 1 claims the job and dies: the row stays in training with w1's lease
    repo.save_job(
        job.model_copy(
            update={
                "state": JobState.TRAINING,
                "attempts": 1,
                "worker_id": "w1",
                "started_at": T0,
                "lease_expires_at": T0 + timedelta(seconds=config.auto_retraining.job_lease_seconds),
            }
        )
    )
    repo.close()
    repo2 = TwinRepository(data_dir=tmp_path)
    late = T0 + timedelta(seconds=config.auto_retraining.job_lease_seconds + 5)
    second = TwinRetrainingService(repo2, clock=Clock(late), worker_id="w2")
    second.register_model("small", pop)
    (done,) = second.run_pending_jobs()
    assert done.state is JobState.COMPLETED and done.attempts == 2 and done.worker_id == "w2"
    assert done.promoted is True and done.candidate_score > done.current_score
    assert second.champion("small").model_id == done.candidate_model_id
    assert second.run_pending_jobs() == []
    repo2.close()
