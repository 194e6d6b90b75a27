"""TwinRetrainingService: decide, queue, approve and run retraining jobs that can improve fidelity.

SPEC §3 "Retraining". A job refits the outcome model on the data a ``training_data_provider`` returns
(when one is given) AND recalibrates the effect model from the model's validated experiments; candidate
and current model are scored on the same experiments by leave-one-experiment-out
(:mod:`twinkernel.retraining.scoring`) and the candidate is promoted only when its fidelity score is higher.

Jobs are rows of the repository's ``retraining_jobs`` table, so a job approved in one process can be run by
another (:meth:`TwinRetrainingService.run_pending_jobs`, the worker entry point; claims, leases and the
take-over of a dead worker's job are in :mod:`twinkernel.retraining.worker`). The models a service can
retrain are registered in-process with :meth:`TwinRetrainingService.register_model` (a service restarted
registers its serving models again); promoted models are also recorded in ``twin_models`` (with their
effect model as JSON) and, when lineage tracking is on and the outcome model was refitted, in the MLflow
registry under the ``champion`` alias.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..calibration import calibrate_experiments
from ..config import TwinkernelConfig, get_config
from ..effect_model import EffectModel
from ..fidelity_tracker import FidelityTracker
from ..models import FrozenMapping, PopulationFilter
from ..models.retraining import JobState, RetrainingDecision, RetrainingJob, TriggerReason
from ..population import TwinPopulation
from .scoring import LooScore, leave_one_out_score, prior_simulations
from .types import (
    LeaseLostError,
    ServingModel,
    TrainingData,
    TrainingDataProvider,
    TwinRetrainingConfig,
    default_worker_id,
    utc_now,
)
from .worker import JobWorker

if TYPE_CHECKING:
    from ..repository import TwinRepository
    from ..twin_generator import TwinGenerator

__all__ = [
    "LeaseLostError",
    "ServingModel",
    "TrainingData",
    "TrainingDataProvider",
    "TwinRetrainingConfig",
    "TwinRetrainingService",
]

logger = logging.getLogger("twinkernel.retraining")

_ID_LIMIT = 64  # repository id columns
_GENERATOR_ONLY = ("algorithm",)  # config_overrides keys that go to TwinGenerator.train, not its settings


class TwinRetrainingService(JobWorker):
    """Retraining decisions and durable jobs (see the module docstring).

    Parameters
    ----------
    repository
        Where jobs, fidelity records and experiments live (shared with the :class:`FidelityTracker`).
    config
        The configuration (``auto_retraining``, ``fidelity``, ``simulation``, ``calibration``).
    retraining_config
        Overrides the ``auto_retraining`` section (default :meth:`TwinRetrainingConfig.from_config`).
    training_data_provider
        ``model_id -> TrainingData | None``: the data a job refits the outcome model on.
    lineage
        A :class:`~twinkernel.lineage.LineageTracker`; ``None``: from the config (off by default).
    clock
        Current UTC time (tests of the cooldown and of job leases).
    worker_id
        Names this worker in the leases of the jobs it runs (default :func:`default_worker_id`).
    """

    def __init__(
        self,
        repository: TwinRepository,
        *,
        config: TwinkernelConfig | None = None,
        retraining_config: TwinRetrainingConfig | None = None,
        training_data_provider: TrainingDataProvider | None = None,
        lineage: Any = None,
        clock: Callable[[], datetime] = utc_now,
        worker_id: str | None = None,
    ) -> None:
        self.config = config if config is not None else get_config()
        self.settings = (
            retraining_config
            if retraining_config is not None
            else TwinRetrainingConfig.from_config(self.config)
        )
        self.repository = repository
        self.tracker = FidelityTracker(repository, config=self.config)
        self.training_data_provider = training_data_provider
        if lineage is None and self.config.repository.lineage.enabled:  # mlflow is imported only then
            from ..lineage import lineage_from_config

            lineage = lineage_from_config(self.config)
        self.lineage = lineage
        self._clock = clock
        self.worker_id = worker_id if worker_id is not None else default_worker_id()
        self._models: dict[str, ServingModel] = {}
        self._lock = threading.RLock()
        self._counts = {"webhook_sent": 0, "webhook_failed": 0, "jobs_run": 0}

    # --- models ---------------------------------------------------------------------------------------------
    def register_model(
        self,
        model_id: str,
        population: TwinPopulation,
        effect_model: EffectModel | None = None,
        generator: TwinGenerator | None = None,
    ) -> ServingModel:
        """Make a model retrainable by this service (its simulations carry ``model_id``)."""
        if not isinstance(model_id, str) or not 0 < len(model_id) <= _ID_LIMIT:
            raise ValueError(f"`model_id` must be a string of 1 to {_ID_LIMIT} characters; got {model_id!r}")
        em = effect_model if effect_model is not None else EffectModel.from_config(self.config)
        if population.model_id != model_id:  # a copy carries the id: never relabel the caller's twins
            population = population.filter(PopulationFilter())
            population.model_id = model_id
        model = ServingModel(model_id, population, em, generator)
        with self._lock:
            self._models[model_id] = model
        return model

    def get_model(self, model_id: str) -> ServingModel:
        """A registered (or promoted) model; ``KeyError`` naming the registered ids otherwise."""
        with self._lock:
            if model_id not in self._models:
                raise KeyError(
                    f"`model_id` {model_id!r} is not registered with this service "
                    f"(register_model first); registered: {sorted(self._models)}"
                )
            return self._models[model_id]

    def champion(self, model_id: str) -> ServingModel:
        """The model now serving in ``model_id``'s place: follows completed, promoting jobs."""
        current = model_id
        for _ in range(1000):
            nxt = next(
                (
                    j.candidate_model_id
                    for j in reversed(self.jobs(current))
                    if j.state == JobState.COMPLETED and j.promoted and j.candidate_model_id is not None
                ),
                None,
            )
            if nxt is None:
                break
            current = nxt
        return self.get_model(current)

    def _ancestry(self, model_id: str) -> list[str]:
        """``model_id`` and the models it was retrained from (recorded in ``twin_models``)."""
        out = [model_id]
        while len(out) < 1000:
            rec = self.repository.get_model(out[-1])
            parent = None if rec is None else rec.training_metrics.get("parent_model_id")
            if parent is None or parent in out:
                break
            out.append(str(parent))
        return out

    # --- jobs -------------------------------------------------------------------------------------------
    def jobs(self, model_id: str | None = None) -> list[RetrainingJob]:
        """A model's jobs (or all), oldest first."""
        return [RetrainingJob.model_validate(p) for p in self.repository.jobs(model_id)]

    # --- the decision -------------------------------------------------------------------------------------
    def evaluate_retraining_need_sync(self, model_id: str) -> RetrainingDecision:
        """:meth:`evaluate_retraining_need`, synchronously (the one implementation)."""
        s = self.settings
        report = self.tracker.get_model_fidelity_report(model_id)
        score, mae, cov = report.fidelity_score, report.mean_absolute_error, report.coverage_rate
        common: dict[str, Any] = dict(
            model_id=model_id,
            fidelity_score=score,
            mean_absolute_error=mae,
            coverage_rate=cov,
            n_validations=report.n_validations,
        )
        reasons: list[TriggerReason] = []
        why: list[str] = []
        if score is not None and score < s.fidelity_threshold:
            reasons.append(TriggerReason.LOW_FIDELITY)
            why.append(f"fidelity score {score:.3f} < {s.fidelity_threshold:.2f}")
        if mae is not None and mae > s.mae_threshold:
            reasons.append(TriggerReason.HIGH_ERROR)
            why.append(f"mean absolute error {mae:.3f} > {s.mae_threshold:.2f}")
        if cov is not None and cov < s.coverage_threshold:
            reasons.append(TriggerReason.LOW_COVERAGE)
            why.append(f"coverage rate {cov:.2f} < {s.coverage_threshold:.2f}")

        def blocked(by: str, text: str) -> RetrainingDecision:
            return RetrainingDecision(
                **common, should_retrain=False, reasons=tuple(reasons), explanation=text, blocked_by=by
            )

        if report.n_validations < s.min_validations_for_decision:
            return blocked(
                "min_validations",
                f"{report.n_validations} validations < {s.min_validations_for_decision}: too few to decide",
            )
        jobs = self.jobs(model_id)
        open_jobs = [j for j in jobs if j.is_open]
        if open_jobs:
            return blocked("open_job", f"job {open_jobs[-1].id} is {open_jobs[-1].state.value}")
        if jobs and jobs[-1].state == JobState.FAILED:
            return blocked(
                "max_attempts",
                f"job {jobs[-1].id} failed after {jobs[-1].attempts} attempts (max {s.max_attempts}): "
                "a person must act (trigger_retraining by hand)",
            )
        started = [j.created_at for j in jobs if j.state != JobState.CANCELLED]
        if started:
            until = max(started) + timedelta(hours=s.cooldown_hours)
            if self._clock() < until:
                return blocked(
                    "cooldown", f"in the {s.cooldown_hours:g} h cooldown until {until.isoformat()}"
                )
        if not reasons:
            return RetrainingDecision(
                **common, should_retrain=False, explanation="fidelity is within every threshold"
            )
        auto = (score is not None and score < s.auto_approve_threshold) or not s.require_approval
        return RetrainingDecision(
            **common,
            should_retrain=True,
            reasons=tuple(reasons),
            explanation="; ".join(why),
            auto_approve=auto,
            requires_approval=not auto,
        )

    async def evaluate_retraining_need(self, model_id: str) -> RetrainingDecision:
        """Whether ``model_id`` should be retrained now (SPEC's rules, in order)."""
        return await asyncio.to_thread(self.evaluate_retraining_need_sync, model_id)

    # --- triggering ---------------------------------------------------------------------------------------
    def trigger_retraining_sync(
        self,
        model_id: str,
        reason: str | TriggerReason | Sequence[TriggerReason],
        config_overrides: Mapping[str, Any] | None = None,
        *,
        auto_approve: bool | None = None,
        trigger_fidelity: float | None = None,
    ) -> RetrainingJob:
        """:meth:`trigger_retraining`, synchronously (the one implementation)."""
        with self._lock:
            open_jobs = [j for j in self.jobs(model_id) if j.is_open]
            if open_jobs:
                raise ValueError(
                    f"`model_id` {model_id!r} already has an open retraining job {open_jobs[-1].id} "
                    f"({open_jobs[-1].state.value})"
                )
            if isinstance(reason, TriggerReason):
                reasons: tuple[TriggerReason, ...] = (reason,)
            elif isinstance(reason, str):
                reasons = (
                    (TriggerReason(reason),) if reason in set(TriggerReason) else (TriggerReason.MANUAL,)
                )
            else:
                reasons = tuple(TriggerReason(r) for r in reason)
            text = reason if isinstance(reason, str) else ", ".join(r.value for r in reasons)
            if trigger_fidelity is None:
                trigger_fidelity = self.tracker.get_model_fidelity_report(model_id).fidelity_score
            if auto_approve is None:
                s = self.settings
                auto_approve = not s.require_approval or (
                    trigger_fidelity is not None and trigger_fidelity < s.auto_approve_threshold
                )
            now = self._clock()
            job = RetrainingJob(
                model_id=model_id,
                reason=str(text),
                trigger_reasons=reasons,
                max_attempts=self.settings.max_attempts,
                config_overrides=FrozenMapping(dict(config_overrides or {})),
                trigger_fidelity=trigger_fidelity,
                created_at=now,
                updated_at=now,
            )
            self.repository.save_job(job)
            self._notify("job_pending", job)
            if auto_approve:
                job = self._move(job, JobState.APPROVED, approved_by="auto", approved_at=now)
            return job

    async def trigger_retraining(
        self,
        model_id: str,
        reason: str | TriggerReason | Sequence[TriggerReason],
        config_overrides: Mapping[str, Any] | None = None,
    ) -> RetrainingJob:
        """Create a durable job (approved at once below the auto-approve threshold or without approval)."""
        return await asyncio.to_thread(self.trigger_retraining_sync, model_id, reason, config_overrides)

    def maybe_trigger_sync(self, model_id: str) -> RetrainingJob | None:
        """Evaluate and, when the decision says so, trigger; the job or None (what ``validate`` calls)."""
        d = self.evaluate_retraining_need_sync(model_id)
        if not d.should_retrain:
            return None
        return self.trigger_retraining_sync(
            model_id, d.reasons, auto_approve=d.auto_approve, trigger_fidelity=d.fidelity_score
        )

    def approve_job(self, job_id: str, approved_by: str | None = None) -> RetrainingJob:
        """Approve a pending job (a person's decision)."""
        return self._move(
            self.get_job(job_id), JobState.APPROVED, approved_by=approved_by, approved_at=self._clock()
        )

    def cancel_job(self, job_id: str) -> RetrainingJob:
        """Cancel a pending or approved job."""
        return self._move(self.get_job(job_id), JobState.CANCELLED)

    # --- one job: refit, recalibrate, score, promote ------------------------------------------------------
    def _refit(self, current: ServingModel, job: RetrainingJob) -> tuple[TwinPopulation, Any, Any]:
        """The candidate's twins: refitted on the provider's data, or the current ones."""
        data = None if self.training_data_provider is None else self.training_data_provider(job.model_id)
        if data is None:
            return current.population, current.generator, None
        from ..twin_generator import TwinGenerator

        overrides = dict(job.config_overrides)
        algorithm = overrides.pop("algorithm", None)
        pop = current.population
        gen = TwinGenerator(pop.twin_type, brand=pop.brand, config=self.config, **overrides)
        gen.train(
            data.frame,
            data.target_col,
            feature_cols=data.feature_cols,
            algorithm=algorithm,
            time_col=data.time_col,
            track=False,
            **dict(data.train_kwargs),
        )
        if current.generator is not None and gen.model_id == current.generator.model_id:
            # the same data and settings give the same model (the id hashes them): its twins are the
            # current ones, so they are not drawn again
            return pop, gen, data
        return gen.generate(pop.n), gen, data

    def _retrain(self, job: RetrainingJob) -> dict[str, Any]:
        current = self.get_model(job.model_id)
        population, generator, data = self._refit(current, job)
        self.heartbeat(job)
        experiments = self.tracker.experiments(self._ancestry(job.model_id))
        if not experiments:
            raise ValueError(
                f"model {job.model_id!r} has no validated experiments to calibrate from (validate needs an "
                "SE or CI and a sample size to keep one)"
            )
        seed = self.settings.simulation_seed
        as_of = max(e.completion_date for e in experiments)
        cur_mus, _ = prior_simulations(current.population, experiments, self.config, seed)
        cals = getattr(current.effect_model, "calibrations", {}) or {}
        calibrated_on = {t: frozenset(c.experiment_ids) for t, c in cals.items()}
        current_score = leave_one_out_score(
            experiments, cur_mus, self.config, calibrated_on=calibrated_on, as_of=as_of
        )
        cand_mus = cur_mus
        if population is not current.population:
            cand_mus, _ = prior_simulations(population, experiments, self.config, seed)
        candidate_score = leave_one_out_score(experiments, cand_mus, self.config, as_of=as_of)
        usable = [e for e in experiments if e.experiment_id in cand_mus]
        # EffectModel.calibrate on the candidate's twins, reusing the μ_j simulated above
        cals = calibrate_experiments(
            usable, lambda e: cand_mus[e.experiment_id][0], as_of=as_of, config=self.config
        )
        effect = EffectModel.from_config(self.config).with_calibrations(cals)
        candidate_id = self._candidate_id(job.model_id, generator, effect, population)
        promoted = _better(candidate_score, current_score)
        self.heartbeat(job)  # the last chance to notice a lost lease before promoting
        if promoted:
            self._promote(current, candidate_id, population, effect, generator, data, candidate_score, job)
        serving = candidate_score if promoted else current_score
        return {
            "fidelity_before": current_score.fidelity_score,
            "fidelity_after": serving.fidelity_score,
            "current_score": current_score.fidelity_score,
            "candidate_score": candidate_score.fidelity_score,
            "candidate_model_id": candidate_id,
            "promoted": promoted,
            "n_experiments": candidate_score.n_experiments,
        }

    @staticmethod
    def _candidate_id(model_id: str, generator: Any, effect: EffectModel, pop: TwinPopulation) -> str:
        base = model_id.split("@", 1)[0] if generator is None else str(generator.model_id)
        h = hashlib.blake2b(digest_size=6)
        h.update(f"{base}|{effect.model_id}|{pop.fingerprint()}".encode())
        return f"{base[: _ID_LIMIT - 13]}@{h.hexdigest()}"

    def _promote(
        self,
        current: ServingModel,
        candidate_id: str,
        population: TwinPopulation,
        effect: EffectModel,
        generator: Any,
        data: TrainingData | None,
        score: LooScore,
        job: RetrainingJob,
    ) -> None:
        from ..repository import TwinModelRecord

        version = None
        if self.lineage is not None and generator is not None and data is not None:
            from ..lineage import data_fingerprint

            lin = self.lineage.log_training(
                generator, data_fingerprint=data_fingerprint(data.frame), register=True, promote=False
            )
            if lin is not None and lin.model_version is not None:
                version = lin.model_version
                self.lineage.promote(version)
        self.repository.save_model(
            TwinModelRecord(
                id=candidate_id,
                twin_type=population.twin_type.value,
                brand=population.brand,
                training_metrics={
                    "parent_model_id": current.model_id,
                    "job_id": job.id,
                    "loo_fidelity_score": score.fidelity_score,
                    "effect_model": effect.to_dict(),
                },
                effect_model_version=effect.model_id[:100],
                mlflow_model_version=version,
                status="champion",
                promoted_at=self._clock(),
            )
        )
        model = self.register_model(candidate_id, population, effect, generator)
        model.parent_model_id = current.model_id

    # --- webhook ----------------------------------------------------------------------------------------
    def _notify(self, event: str, job: RetrainingJob) -> None:
        url = self.settings.notification_webhook
        if url is None:
            return
        body = json.dumps({"event": event, "job": job.to_dict()}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.settings.webhook_timeout_seconds) as resp:
                resp.read()
        except Exception as exc:  # a webhook never fails a job: logged and counted
            logger.warning("retraining webhook %s failed for %s of job %s: %s", url, event, job.id, exc)
            with self._lock:
                self._counts["webhook_failed"] += 1
            return
        with self._lock:
            self._counts["webhook_sent"] += 1

    def stats(self) -> dict[str, int]:
        """Counters of this process: webhook posts sent and failed, job attempts run."""
        with self._lock:
            return dict(self._counts)


def _better(candidate: LooScore, current: LooScore) -> bool:
    if candidate.fidelity_score is None:
        return False
    return current.fidelity_score is None or candidate.fidelity_score > current.fidelity_score
