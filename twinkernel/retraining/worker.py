"""The worker side of retraining jobs: claims, leases with heartbeats, attempts (a mixin of the service).

A worker claims a job with one conditional write (:meth:`~twinkernel.repository.TwinRepository.claim_job`),
so of several workers exactly one runs it. A job in ``training`` holds a lease of
``auto_retraining.job_lease_seconds``, renewed by :meth:`JobWorker.heartbeat` between the job's steps; a job
whose worker died (no heartbeat until the lease expired) is taken over by the next
:meth:`JobWorker.run_pending_jobs`, as one more attempt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..models.retraining import JOB_TRANSITIONS, JobState, RetrainingJob
from .types import LeaseLostError, TwinRetrainingConfig

if TYPE_CHECKING:
    from ..repository import TwinRepository

__all__ = ["JobWorker"]

logger = logging.getLogger("twinkernel.retraining")


class JobWorker:
    """Runs approved jobs and takes over abandoned ones; the service supplies ``_retrain``."""

    repository: TwinRepository
    settings: TwinRetrainingConfig
    worker_id: str
    _clock: Callable[[], datetime]
    _lock: threading.RLock
    _counts: dict[str, int]

    def get_job(self, job_id: str) -> RetrainingJob:
        payload = self.repository.get_job(job_id)
        if payload is None:
            raise KeyError(f"`job_id` {job_id!r}: no such retraining job")
        return RetrainingJob.model_validate(payload)

    def _notify(self, event: str, job: RetrainingJob) -> None:  # pragma: no cover - the service's
        raise NotImplementedError

    def _retrain(self, job: RetrainingJob) -> dict[str, Any]:  # pragma: no cover - the service's
        raise NotImplementedError

    @staticmethod
    def _check_transition(job: RetrainingJob, state: JobState) -> None:
        if state not in JOB_TRANSITIONS[job.state]:
            raise ValueError(
                f"job {job.id} is {job.state.value}: it cannot become {state.value} "
                f"(allowed: {sorted(s.value for s in JOB_TRANSITIONS[job.state]) or 'none'})"
            )

    def _move(self, job: RetrainingJob, state: JobState, **changes: Any) -> RetrainingJob:
        """A person's (or the trigger's) state change: written unconditionally."""
        self._check_transition(job, state)
        new = job.model_copy(update={"state": state, "updated_at": self._clock(), **changes})
        self.repository.save_job(new)
        self._notify(f"job_{state.value}", new)
        return new

    def _claim(self, job: RetrainingJob, state: JobState, **changes: Any) -> RetrainingJob | None:
        """A worker's state change: written only if the stored job is still ``job`` (same state and
        attempts); None when another worker moved it first."""
        self._check_transition(job, state)
        new = job.model_copy(update={"state": state, "updated_at": self._clock(), **changes})
        if not self.repository.claim_job(new, job.state.value, job.attempts):
            return None
        self._notify(f"job_{state.value}", new)
        return new

    # --- running ----------------------------------------------------------------------------------------
    def run_pending_jobs(self) -> list[RetrainingJob]:
        """Worker entry point: run every approved job in the repository, oldest first.

        A job left in ``training`` by a worker that died is taken over once its lease has expired
        (``auto_retraining.job_lease_seconds`` after the worker's last heartbeat): that is one more
        attempt, and a job whose attempts are used up becomes ``failed``. A job within its lease is left
        alone (its worker may still be running it). Jobs another worker claims first are skipped.
        """
        out = []
        for payload in self.repository.open_jobs():
            job = RetrainingJob.model_validate(payload)
            if job.state == JobState.APPROVED:
                started = self._start(job)
            elif job.lease_expired(self._clock(), self.settings.job_lease_seconds):
                started = self._take_over(job)
            else:
                continue
            if started is not None:
                out.append(self._attempt(started) if started.state == JobState.TRAINING else started)
        return out

    def run_job(self, job_id: str) -> RetrainingJob:
        """Run one approved job (or take over one whose lease expired): training → completed, or back to
        approved / failed on an error. A job in ``training`` within its lease is refused."""
        queued = self.get_job(job_id)
        if queued.state == JobState.TRAINING:
            if not queued.lease_expired(self._clock(), self.settings.job_lease_seconds):
                raise ValueError(
                    f"job {job_id} is training under worker {queued.worker_id}'s lease until "
                    f"{queued.lease_expires_at}: it is not taken over before the lease expires"
                )
            started = self._take_over(queued)
        elif queued.state == JobState.APPROVED:
            started = self._start(queued)
        else:
            self._check_transition(queued, JobState.TRAINING)  # names the state it is in
            started = None
        if started is None:
            raise ValueError(f"job {job_id} was claimed by another worker first")
        return self._attempt(started) if started.state == JobState.TRAINING else started

    def _start(self, job: RetrainingJob, error: str | None = None) -> RetrainingJob | None:
        """Claim ``job`` for this worker: training, one more attempt, a fresh lease (None if lost)."""
        now = self._clock()
        changes: dict[str, Any] = dict(
            attempts=job.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=self.settings.job_lease_seconds),
            worker_id=self.worker_id,
        )
        if error is not None:
            changes["error"] = error
        return self._claim(job, JobState.TRAINING, **changes)

    def _take_over(self, job: RetrainingJob) -> RetrainingJob | None:
        """A ``training`` job whose lease expired: run it again here, or fail it when no attempts are left."""
        end = job.lease_expires_at or job.updated_at + timedelta(seconds=self.settings.job_lease_seconds)
        text = (
            f"attempt {job.attempts} by worker {job.worker_id or 'unknown'} stopped sending heartbeats "
            f"(lease expired {end.isoformat()})"
        )
        logger.warning("retraining job %s: %s; taken over by %s", job.id, text, self.worker_id)
        if job.attempts >= job.max_attempts:
            return self._claim(
                job, JobState.FAILED, error=text, completed_at=self._clock(), lease_expires_at=None
            )
        return self._start(job, error=text)

    def heartbeat(self, job: RetrainingJob) -> RetrainingJob:
        """Renew this worker's lease on a running job (the job calls it between its steps).

        Raises
        ------
        LeaseLostError
            Another worker took the job over (this worker's lease had expired): stop working on it.
        """
        now = self._clock()
        lease = now + timedelta(seconds=self.settings.job_lease_seconds)
        new = job.model_copy(update={"lease_expires_at": lease, "updated_at": now})
        if not self.repository.claim_job(new, JobState.TRAINING.value, job.attempts):
            raise LeaseLostError(
                f"job {job.id}: worker {self.worker_id} lost its lease; another worker has it"
            )
        return new

    def _attempt(self, job: RetrainingJob) -> RetrainingJob:
        """One attempt of a job this worker holds: completed, or back to approved / failed on an error."""
        with self._lock:
            self._counts["jobs_run"] += 1
        try:
            changes = self._retrain(job)
        except LeaseLostError as exc:  # the job is someone else's now: leave it to them
            logger.warning("retraining job %s: %s", job.id, exc)
            return self.get_job(job.id)
        except Exception as exc:  # a failing attempt is recorded, retried up to max_attempts
            logger.warning("retraining job %s attempt %d failed: %s", job.id, job.attempts, exc)
            text = f"{type(exc).__name__}: {exc}"
            if job.attempts < job.max_attempts:
                done = self._claim(job, JobState.APPROVED, error=text, lease_expires_at=None)
            else:
                done = self._claim(
                    job, JobState.FAILED, error=text, completed_at=self._clock(), lease_expires_at=None
                )
        else:
            done = self._claim(
                job,
                JobState.COMPLETED,
                error=None,
                completed_at=self._clock(),
                lease_expires_at=None,
                **changes,
            )
        if done is None:  # taken over after this worker's lease expired: the other worker's result stands
            logger.warning("retraining job %s: lease lost before the result was written", job.id)
            return self.get_job(job.id)
        return done
