"""FidelityTracker: compare simulated effects with real experiments, per model, persisted.

The loop (SPEC §3 "Fidelity"): :meth:`FidelityTracker.record_prediction` stores a completed simulation and
an unvalidated :class:`~twinkernel.models.FidelityRecord`; when the real experiment reports,
:meth:`FidelityTracker.validate` grades the prediction, checks whether the actual ATE lies inside the
prediction interval at the experiment's own size per arm, and stores the experiment as an
:class:`~twinkernel.models.experiment.ExperimentResult` so that retraining can recalibrate the effect model
from it. :meth:`FidelityTracker.get_model_fidelity_report` summarises one model.

Storage: a :class:`~twinkernel.repository.TwinRepository`. With ``repository=None`` the tracker opens the
embedded SQLite store in the data directory (``$TWINKERNEL_HOME``, else ``repository.data_dir``, else the
per-user data directory), so records survive the process; pass a repository to choose the place.

The fidelity score has one definition, :func:`fidelity_score`; the retraining service uses it too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .config import TwinkernelConfig, get_config
from .models import (
    FidelityGrade,
    FidelityRecord,
    FrozenMapping,
    SimulationResult,
    SimulationStatus,
    grade_for_error,
)
from .models.experiment import ExperimentResult
from .models.fidelity import (
    ERROR_BASIS_ABSOLUTE,
    ERROR_BASIS_RELATIVE,
    ModelFidelityReport,
    TypeFidelity,
)

if TYPE_CHECKING:
    from .repository import TwinRepository

__all__ = [
    "Assessment",
    "FidelityTracker",
    "UnknownSimulationError",
    "assess_prediction",
    "fidelity_score",
    "summarise",
]

logger = logging.getLogger("twinkernel.fidelity")

# Keys the tracker adds to an experiment's repository payload (beside ExperimentResult's own fields).
_EXPERIMENT_META = ("id", "model_id", "simulation_id")


class UnknownSimulationError(LookupError):
    """``validate`` was given a simulation id the tracker never recorded."""


# --- one definition of the numbers ------------------------------------------------------------------------
def fidelity_score(
    mean_absolute_error: float | None,
    coverage_rate: float | None,
    config: TwinkernelConfig | None = None,
) -> float | None:
    """The model fidelity score: w_e·max(0, 1 − mean |error|) + w_c·coverage rate.

    The weights are ``fidelity.error_weight`` (0.7) and ``fidelity.coverage_weight`` (0.3); a coverage rate
    of ``None`` (no validation checked coverage) counts as ``fidelity.default_coverage_rate`` (0.5). With no
    validations at all (``mean_absolute_error`` None) the score is unknown: ``None``.

    Examples
    --------
    >>> fidelity_score(0.0, 1.0)
    1.0
    >>> round(fidelity_score(0.2, None), 3)
    0.71
    >>> fidelity_score(None, None) is None
    True
    """
    if mean_absolute_error is None:
        return None
    f = (config if config is not None else get_config()).fidelity
    coverage = f.default_coverage_rate if coverage_rate is None else coverage_rate
    return f.error_weight * max(0.0, 1.0 - mean_absolute_error) + f.coverage_weight * coverage


@dataclass(frozen=True)
class Assessment:
    """How one prediction compared with one actual ATE (see :func:`assess_prediction`)."""

    prediction_error: float
    absolute_error: float
    error_basis: str
    grade: FidelityGrade
    ci_coverage: bool | None
    note: str | None


def assess_prediction(
    simulated_ate: float,
    actual_ate: float,
    interval: tuple[float, float] | None,
    config: TwinkernelConfig | None = None,
) -> Assessment:
    """Prediction error, grade and coverage of one prediction.

    ``prediction_error = (simulated − actual) / actual``. When the actual ATE is 0 the relative error is
    undefined: the error is taken relative to the minimum effect worth deploying
    (``simulation.recommendations.deploy_threshold``) and the note says so. A perfect prediction (error 0)
    is EXCELLENT. ``interval`` is the prediction interval to check coverage against (``None``: unchecked).

    Examples
    --------
    >>> a = assess_prediction(0.05, 0.05, (0.03, 0.07))
    >>> a.prediction_error, a.grade.value, a.ci_coverage
    (0.0, 'excellent', True)
    >>> b = assess_prediction(0.01, 0.0, None)
    >>> round(b.prediction_error, 3), b.error_basis, b.grade.value
    (0.2, 'absolute', 'good')
    """
    cfg = config if config is not None else get_config()
    sim, act = float(simulated_ate), float(actual_ate)
    note = None
    if act == 0.0:
        min_effect = cfg.simulation.recommendations.deploy_threshold
        error = (sim - act) / min_effect
        basis = ERROR_BASIS_ABSOLUTE
        note = (
            f"actual ATE is 0, so the relative error is undefined: graded on the absolute error "
            f"{abs(sim - act):.4g} against the minimum effect {min_effect:g}"
        )
    else:
        error = (sim - act) / act
        basis = ERROR_BASIS_RELATIVE
    f = cfg.fidelity
    grade = grade_for_error(abs(error), f.excellent_below, f.good_below, f.fair_below)
    covered = None if interval is None else bool(interval[0] <= act <= interval[1])
    return Assessment(error, abs(sim - act), basis, grade, covered, note)


def summarise(
    records: Sequence[FidelityRecord], config: TwinkernelConfig | None = None
) -> tuple[int, float | None, float | None, float | None]:
    """``(n_validated, mean |prediction_error|, coverage rate, fidelity score)`` of validated records."""
    done = [r for r in records if r.prediction_error is not None]
    if not done:
        return 0, None, None, None
    mae = sum(abs(r.prediction_error) for r in done if r.prediction_error is not None) / len(done)
    checked = [r.ci_coverage for r in done if r.ci_coverage is not None]
    coverage = sum(checked) / len(checked) if checked else None
    return len(done), mae, coverage, fidelity_score(mae, coverage, config)


def _number(name: str, value: Any, *, positive: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0.0):
        rule = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"`{name}` must be {rule}; got {value!r}")
    return v


# --- the tracker -------------------------------------------------------------------------------------------
class FidelityTracker:
    """Record predictions, validate them against real experiments and report fidelity per model.

    Parameters
    ----------
    repository
        Where records, simulations and experiments are kept. ``None``: the embedded SQLite store in the
        data directory (persistent; see the module docstring).
    retraining_service
        A :class:`~twinkernel.retraining_service.TwinRetrainingService`, asked after each validation
        whether the model needs retraining when ``auto_trigger_retraining`` is on.
    auto_trigger_retraining
        Evaluate (and trigger) retraining after every validation.
    config
        Configuration (sections ``fidelity`` and ``simulation``); the process default when ``None``.

    Examples
    --------
    >>> import tempfile
    >>> from twinkernel.repository import TwinRepository
    >>> tracker = FidelityTracker(TwinRepository(data_dir=tempfile.mkdtemp()))
    >>> tracker.get_model_fidelity_report("no-such-model").n_validations
    0
    """

    def __init__(
        self,
        repository: TwinRepository | None = None,
        retraining_service: Any = None,
        auto_trigger_retraining: bool = False,
        config: TwinkernelConfig | None = None,
    ) -> None:
        self.config = config if config is not None else get_config()
        if repository is None:
            from .repository import TwinRepository

            repository = TwinRepository(config=self.config)
        self.repository = repository
        self.retraining_service = retraining_service
        self.auto_trigger_retraining = bool(auto_trigger_retraining)
        if self.auto_trigger_retraining and retraining_service is None:
            raise ValueError("`auto_trigger_retraining=True` needs a `retraining_service`; got None")
        self.last_triggered_job: Any = None
        """The last job an automatic check created (None until one was)."""

    # --- recording ------------------------------------------------------------------------------------------
    def record_prediction(self, result: SimulationResult) -> FidelityRecord:
        """Store a completed simulation and its (unvalidated) fidelity record; idempotent by simulation id."""
        if not isinstance(result, SimulationResult):
            raise TypeError(f"`result` must be a SimulationResult; got {type(result).__name__}")
        if result.status != SimulationStatus.COMPLETED:
            raise ValueError(
                f"`result` must be a completed simulation to be validated later; got status "
                f"{result.status.value} ({result.error_message})"
            )
        existing = self.get_fidelity_record(result.simulation_id)
        if existing is not None:
            return existing
        record = FidelityRecord(
            simulation_id=result.simulation_id,
            model_id=result.model_id,
            simulated_ate=result.simulated_ate,
            simulated_ci_lower=result.simulated_ci_lower,
            simulated_ci_upper=result.simulated_ci_upper,
            created_at=result.created_at,
            intervention_type=result.intervention_config.intervention_type,
            confidence_level=result.confidence_level,
        )
        self.repository.save_simulation(result)
        self._save(record)
        return record

    def _save(self, record: FidelityRecord) -> None:
        self.repository.save_fidelity_record({**record.to_dict(), "id": str(record.simulation_id)})

    @staticmethod
    def _parse(payload: dict[str, Any]) -> FidelityRecord:
        return FidelityRecord.model_validate({k: v for k, v in payload.items() if k != "id"})

    def get_fidelity_record(self, simulation_id: UUID | str) -> FidelityRecord | None:
        """The fidelity record of a recorded simulation; ``None`` if it was never recorded."""
        payload = self.repository.get_fidelity_record(str(simulation_id))
        return None if payload is None else self._parse(payload)

    # --- validating ---------------------------------------------------------------------------------------
    def validate(
        self,
        simulation_id: UUID | str,
        actual_ate: float,
        actual_std_error: float | None = None,
        actual_ci: tuple[float, float] | None = None,
        actual_sample_size: int | None = None,
        actual_experiment_id: str | None = None,
        notes: str | None = None,
        *,
        completion_date: date | None = None,
        confidence_level: float | None = None,
    ) -> FidelityRecord:
        """Grade a recorded prediction against the real experiment's result.

        Parameters
        ----------
        simulation_id
            A simulation recorded with :meth:`record_prediction`.
        actual_ate
            The ATE the real experiment measured.
        actual_std_error, actual_ci
            Its standard error, or its confidence interval ``(lower, upper)`` at ``confidence_level``
            (default: the simulation's level).
        actual_sample_size
            Units in the experiment, both arms together; the prediction interval is taken at half of it per
            arm (the experiment's own size). ``None``: at the simulation's recommended size (noted).
        actual_experiment_id
            The experiment's id (default: the simulation id).
        notes
            Free text kept with the record.
        completion_date
            When the experiment completed (default: today, UTC); calibration weighs recent experiments more.

        Returns
        -------
        FidelityRecord
            The validated record (also stored). With an SE or CI and a sample size, the experiment is also
            stored as an :class:`ExperimentResult` for recalibration.

        Raises
        ------
        UnknownSimulationError
            If ``simulation_id`` was never recorded.
        """
        actual = _number("actual_ate", actual_ate)
        record = self.get_fidelity_record(simulation_id)
        result = self.repository.get_simulation(str(simulation_id))
        if record is None or result is None:
            raise UnknownSimulationError(
                f"`simulation_id` {simulation_id} was never recorded: call "
                "FidelityTracker.record_prediction(result) before validate"
            )
        se = (
            None if actual_std_error is None else _number("actual_std_error", actual_std_error, positive=True)
        )
        level = result.confidence_level if confidence_level is None else float(confidence_level)
        ci = None
        if actual_ci is not None:
            lo, hi = (_number("actual_ci[0]", actual_ci[0]), _number("actual_ci[1]", actual_ci[1]))
            if not lo < hi:
                raise ValueError(f"`actual_ci` must be (lower, upper) with lower < upper; got {actual_ci!r}")
            ci = (lo, hi)
        if actual_sample_size is not None and (
            isinstance(actual_sample_size, bool)
            or not isinstance(actual_sample_size, int)
            or actual_sample_size < 2
        ):
            raise ValueError(
                "`actual_sample_size` must be an integer >= 2 (both arms together); "
                f"got {actual_sample_size!r}"
            )
        notes_out = [] if notes is None else [notes]
        if actual_sample_size is not None:
            n_per_arm: float | None = actual_sample_size / 2.0
            interval = result.prediction_interval(n_per_arm=n_per_arm, confidence_level=level)
        else:
            n_per_arm = None
            interval = result.prediction_interval(confidence_level=level)
            notes_out.append("no actual_sample_size: coverage checked at the recommended sample size")
        a = assess_prediction(result.simulated_ate, actual, interval, self.config)
        if a.note is not None:
            notes_out.append(a.note)
        now = datetime.now(UTC)
        validated = record.model_copy(
            update={
                "actual_ate": actual,
                "actual_ci_lower": None if ci is None else ci[0],
                "actual_ci_upper": None if ci is None else ci[1],
                "actual_sample_size": actual_sample_size,
                "actual_experiment_id": actual_experiment_id,
                "prediction_error": a.prediction_error,
                "absolute_error": a.absolute_error,
                "ci_coverage": a.ci_coverage,
                "fidelity_grade": a.grade,
                "validation_notes": "; ".join(notes_out) or None,
                "validated_at": now,
                "actual_std_error": se,
                "error_basis": a.error_basis,
                "prediction_interval_lower": interval[0],
                "prediction_interval_upper": interval[1],
                "n_per_arm": n_per_arm,
                "confidence_level": level,
            }
        )
        self._save(validated)
        self._store_experiment(result, validated, se, ci, level, completion_date or now.date())
        if self.auto_trigger_retraining and result.model_id is not None:
            self._maybe_retrain(result.model_id)
        return validated

    def _store_experiment(
        self,
        result: SimulationResult,
        record: FidelityRecord,
        se: float | None,
        ci: tuple[float, float] | None,
        level: float,
        completed: date,
    ) -> None:
        size = record.actual_sample_size
        if size is None or (se is None and ci is None):
            logger.info(
                "experiment of simulation %s not kept for calibration: it needs a sample size and an SE "
                "or CI",
                record.simulation_id,
            )
            return
        exp = ExperimentResult(
            experiment_id=record.actual_experiment_id or str(record.simulation_id),
            intervention=result.intervention_config,
            population_filter=result.population_filter,
            observed_ate=float(record.actual_ate),  # type: ignore[arg-type]
            std_error=se,
            ci_lower=None if ci is None else ci[0],
            ci_upper=None if ci is None else ci[1],
            confidence_level=None if ci is None else level,
            n_treated=size - size // 2,
            n_control=size // 2,
            completion_date=completed,
        )
        self.repository.save_experiment(
            {
                **exp.to_dict(),
                "id": exp.experiment_id,
                "model_id": result.model_id,
                "simulation_id": str(result.simulation_id),
            }
        )

    def _maybe_retrain(self, model_id: str) -> None:
        try:
            job = self.retraining_service.maybe_trigger_sync(model_id)
        except Exception as exc:  # retraining must never fail a validation
            logger.warning("automatic retraining check for model %s failed: %s", model_id, exc)
            return
        if job is not None:
            self.last_triggered_job = job

    # --- reading --------------------------------------------------------------------------------------------
    def records(
        self, model_id: str, lookback_days: int | None = None, *, validated_only: bool = False
    ) -> list[FidelityRecord]:
        """A model's records (oldest first); with ``lookback_days`` only those validated in the window."""
        out = [self._parse(p) for p in self.repository.fidelity_records(model_id)]
        if lookback_days is not None:
            since = datetime.now(UTC) - timedelta(days=lookback_days)
            out = [r for r in out if r.validated_at is None or r.validated_at >= since]
        if validated_only:
            out = [r for r in out if r.validated_at is not None]
        return out

    def experiments(self, model_ids: Iterable[str]) -> list[ExperimentResult]:
        """The experiments validated against any of ``model_ids`` (unique by experiment id)."""
        wanted = set(model_ids)
        out: dict[str, ExperimentResult] = {}
        for p in self.repository.experiments():
            if p.get("model_id") in wanted:
                exp = ExperimentResult.from_dict({k: v for k, v in p.items() if k not in _EXPERIMENT_META})
                out[exp.experiment_id] = exp
        return list(out.values())

    def get_model_fidelity_report(
        self, model_id: str, lookback_days: int | None = None
    ) -> ModelFidelityReport:
        """Fidelity of one model's predictions validated in the last ``lookback_days`` (config: 90).

        Score, grades, coverage rate and mean |error| overall and per intervention type, and degradation:
        with at least 2 × ``fidelity.min_validations_per_half`` validations, the recent half's mean |error|
        exceeding the older half's by more than ``fidelity.degradation_threshold`` (relative).
        """
        f = self.config.fidelity
        days = f.lookback_days if lookback_days is None else lookback_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"`lookback_days` must be a positive integer; got {lookback_days!r}")
        records = self.records(model_id, days)
        validated = sorted((r for r in records if r.validated_at is not None), key=lambda r: r.validated_at)  # type: ignore[arg-type, return-value]
        n, mae, coverage, score = summarise(validated, self.config)
        grades = {g.value: 0 for g in FidelityGrade}
        for r in records:
            grades[r.fidelity_grade.value] += 1
        by_type: dict[str, TypeFidelity] = {}
        for t in sorted({r.intervention_type or "unknown" for r in validated}):
            nt, mt, ct, st = summarise(
                [r for r in validated if (r.intervention_type or "unknown") == t], self.config
            )
            by_type[t] = TypeFidelity(
                n_validations=nt, mean_absolute_error=mt, coverage_rate=ct, fidelity_score=st
            )
        degraded, detail = False, None
        if n >= 2 * f.min_validations_per_half:
            half = n // 2
            older = [abs(r.prediction_error) for r in validated[:half]]  # type: ignore[arg-type]
            recent = [abs(r.prediction_error) for r in validated[n - half :]]  # type: ignore[arg-type]
            old_mean, new_mean = sum(older) / half, sum(recent) / half
            degraded = new_mean > old_mean * (1.0 + f.degradation_threshold)
            detail = (
                f"recent mean |error| {new_mean:.3f} vs older {old_mean:.3f} "
                f"({'more' if degraded else 'not more'} than {f.degradation_threshold:.0%} worse)"
            )
        return ModelFidelityReport(
            model_id=model_id,
            lookback_days=days,
            n_predictions=len(records),
            n_validations=n,
            fidelity_score=score,
            mean_absolute_error=mae,
            coverage_rate=coverage,
            grade_counts=FrozenMapping(grades),
            degradation_detected=degraded,
            degradation_detail=detail,
            by_intervention_type=FrozenMapping(by_type),
        )
