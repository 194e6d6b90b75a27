"""Fidelity records: how a simulated effect compared with the real experiment, and per-model reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from ._frozen import FrozenMapping
from .enums import FidelityGrade

__all__ = [
    "ERROR_BASIS_ABSOLUTE",
    "ERROR_BASIS_RELATIVE",
    "FidelityRecord",
    "ModelFidelityReport",
    "TypeFidelity",
    "grade_for_error",
]

ERROR_BASIS_RELATIVE = "relative"
"""``prediction_error`` = (simulated − actual) / actual."""
ERROR_BASIS_ABSOLUTE = "absolute"
"""Actual ATE 0: ``prediction_error`` = (simulated − actual) / minimum effect (the deploy threshold)."""


def grade_for_error(
    abs_error: float, excellent_below: float, good_below: float, fair_below: float
) -> FidelityGrade:
    """Grade an absolute relative prediction error (0 is a value: it is EXCELLENT)."""
    if abs_error < excellent_below:
        return FidelityGrade.EXCELLENT
    if abs_error < good_below:
        return FidelityGrade.GOOD
    if abs_error < fair_below:
        return FidelityGrade.FAIR
    return FidelityGrade.POOR


class FidelityRecord(BaseModel):
    """A simulation's prediction, and once the real experiment reports, how good it was.

    Frozen and hashable: a validation produces a new record (``record.model_copy(update=...)``).
    ``prediction_interval_*`` is the interval the coverage was checked against (the prediction interval at
    the experiment's own size per arm, ``n_per_arm``, and the simulation's level); ``error_basis`` says
    whether ``prediction_error`` is relative to the actual ATE or (actual 0) to the minimum effect.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    tracking_id: UUID = Field(default_factory=uuid4)
    simulation_id: UUID
    model_id: str | None = None
    simulated_ate: float
    simulated_ci_lower: float
    simulated_ci_upper: float
    actual_ate: float | None = None
    actual_ci_lower: float | None = None
    actual_ci_upper: float | None = None
    actual_sample_size: int | None = Field(default=None, ge=0)
    actual_experiment_id: str | None = None
    prediction_error: float | None = None
    absolute_error: float | None = None
    ci_coverage: bool | None = None
    fidelity_grade: FidelityGrade = FidelityGrade.UNVALIDATED
    validation_notes: str | None = None
    confounding_factors: tuple[str, ...] = ()
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    validated_at: datetime | None = None
    # Added by twinkernel (issue 10); new fields go at the end.
    intervention_type: str | None = None
    actual_std_error: float | None = Field(default=None, ge=0.0)
    error_basis: str | None = None
    prediction_interval_lower: float | None = None
    prediction_interval_upper: float | None = None
    n_per_arm: float | None = None
    confidence_level: float | None = None

    @property
    def is_validated(self) -> bool:
        return self.validated_at is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data, as in :meth:`model_dump_json`."""
        return self.model_dump(mode="json")


class TypeFidelity(BaseModel):
    """Fidelity of one intervention type's validated predictions (inside a report)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_validations: int = Field(ge=0)
    mean_absolute_error: float | None = None
    coverage_rate: float | None = None
    fidelity_score: float | None = None


class ModelFidelityReport(BaseModel):
    """How well one model's predictions matched real experiments in the lookback window.

    ``fidelity_score`` is None when nothing was validated (the engine then assumes
    ``simulation.default_fidelity``); ``coverage_rate`` is None when no validation checked coverage (the
    score then uses ``fidelity.default_coverage_rate``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_id: str
    lookback_days: int
    n_predictions: int = Field(ge=0)
    n_validations: int = Field(ge=0)
    fidelity_score: float | None = None
    mean_absolute_error: float | None = None
    coverage_rate: float | None = None
    grade_counts: FrozenMapping[str, int] = Field(default_factory=FrozenMapping)
    degradation_detected: bool = False
    degradation_detail: str | None = None
    by_intervention_type: FrozenMapping[str, TypeFidelity] = Field(default_factory=FrozenMapping)
    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return self.model_dump(mode="json")
