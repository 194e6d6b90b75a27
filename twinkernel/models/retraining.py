"""Retraining decisions and durable retraining jobs (see SPEC §3 "Retraining")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from ._frozen import FrozenMapping

__all__ = ["JOB_TRANSITIONS", "JobState", "RetrainingDecision", "RetrainingJob", "TriggerReason"]


class JobState(StrEnum):
    """pending → approved → training → completed / failed; pending or approved → cancelled."""

    PENDING = "pending"
    APPROVED = "approved"
    TRAINING = "training"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.APPROVED, JobState.CANCELLED}),
    # training -> approved: a failed attempt with attempts left goes back to the queue;
    # training -> training: another worker takes over a job whose worker's lease expired
    JobState.APPROVED: frozenset({JobState.TRAINING, JobState.CANCELLED}),
    JobState.TRAINING: frozenset({JobState.COMPLETED, JobState.FAILED, JobState.APPROVED, JobState.TRAINING}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
"""The allowed state changes of a job."""


class TriggerReason(StrEnum):
    """Why a job was (or would be) started, in the SPEC's order of the automatic triggers."""

    LOW_FIDELITY = "low_fidelity"
    HIGH_ERROR = "high_error"
    LOW_COVERAGE = "low_coverage"
    MANUAL = "manual"


def _now() -> datetime:
    return datetime.now(UTC)


class RetrainingDecision(BaseModel):
    """Whether a model should be retrained now, and why (or why not)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_id: str
    should_retrain: bool
    reasons: tuple[TriggerReason, ...] = ()
    explanation: str
    fidelity_score: float | None = None
    mean_absolute_error: float | None = None
    coverage_rate: float | None = None
    n_validations: int = Field(default=0, ge=0)
    auto_approve: bool = False
    requires_approval: bool = False
    blocked_by: str | None = None
    """``"min_validations"``, ``"cooldown"``, ``"open_job"``, ``"max_attempts"`` or None."""
    evaluated_at: datetime = Field(default_factory=_now)


class RetrainingJob(BaseModel):
    """A durable retraining job (a row of the repository's ``retraining_jobs`` table).

    ``fidelity_before`` / ``fidelity_after``: the leave-one-experiment-out fidelity score of the current
    model and of the model serving after the job (the candidate when promoted, else the current one);
    ``trigger_fidelity`` is the fidelity report's score when the job was created. A job in ``training``
    holds a lease (``worker_id``, ``lease_expires_at``): a job whose worker died is taken over once the
    lease has expired (:meth:`~twinkernel.retraining.TwinRetrainingService.run_pending_jobs`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    id: str = Field(default_factory=lambda: uuid4().hex)
    model_id: str
    state: JobState = JobState.PENDING
    reason: str
    trigger_reasons: tuple[TriggerReason, ...] = ()
    attempts: int = Field(default=0, ge=0)
    max_attempts: int = Field(ge=1)
    config_overrides: FrozenMapping[str, Any] = Field(default_factory=FrozenMapping)
    trigger_fidelity: float | None = None
    fidelity_before: float | None = None
    fidelity_after: float | None = None
    current_score: float | None = None
    candidate_score: float | None = None
    candidate_model_id: str | None = None
    promoted: bool | None = None
    n_experiments: int | None = None
    approved_by: str | None = None
    error: str | None = None
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    approved_at: datetime | None = None
    completed_at: datetime | None = None
    started_at: datetime | None = None
    """When the current attempt started (the job moved to ``training``)."""
    lease_expires_at: datetime | None = None
    """Until when the worker running the current attempt holds the job; after that another worker's
    ``run_pending_jobs`` takes it over (renewed by the worker's heartbeat between the job's steps)."""
    worker_id: str | None = None
    """The worker running (or that last ran) the job."""

    @property
    def is_open(self) -> bool:
        return self.state in (JobState.PENDING, JobState.APPROVED, JobState.TRAINING)

    def lease_expired(self, now: datetime, lease_seconds: float) -> bool:
        """True when the job is in ``training`` and its worker's lease ended at or before ``now``.

        A job without a recorded lease (written before leases existed) holds one of ``lease_seconds``
        from its last update.
        """
        if self.state != JobState.TRAINING:
            return False
        end = self.lease_expires_at or self.updated_at + timedelta(seconds=lease_seconds)
        return end <= now

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (the repository payload)."""
        return self.model_dump(mode="json")
