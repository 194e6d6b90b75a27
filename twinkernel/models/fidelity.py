"""Fidelity records: how a simulated effect compared with the real experiment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from .enums import FidelityGrade

__all__ = ["FidelityRecord", "grade_for_error"]


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data, as in :meth:`model_dump_json`."""
        return self.model_dump(mode="json")
