"""Results of a simulation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from .enums import SimulationRecommendation, SimulationStatus
from .intervention import InterventionConfig, PopulationFilter

__all__ = ["EffectHeterogeneity", "SegmentEffect", "SimulationResult"]

SEGMENT_DIMENSIONS: tuple[str, ...] = ("specialty", "decile", "region", "adoption_stage")


def _now() -> datetime:
    return datetime.now(UTC)


SegmentEffect = dict[str, float | int]
"""One segment's statistics: ``ate``, ``std``, ``n`` and, when computed, ``ci_lower`` and ``ci_upper``."""


class EffectHeterogeneity(BaseModel):
    """Effects by segment. Each mapping goes from the segment label to its :data:`SegmentEffect`."""

    model_config = ConfigDict(extra="forbid")

    by_specialty: dict[str, SegmentEffect] = Field(default_factory=dict)
    by_decile: dict[str, SegmentEffect] = Field(default_factory=dict)
    by_region: dict[str, SegmentEffect] = Field(default_factory=dict)
    by_adoption_stage: dict[str, SegmentEffect] = Field(default_factory=dict)

    def segments(self) -> list[tuple[str, str, SegmentEffect]]:
        """All segments as ``(dimension, label, stats)`` triples."""
        out: list[tuple[str, str, SegmentEffect]] = []
        for dim in SEGMENT_DIMENSIONS:
            for label, stats in getattr(self, f"by_{dim}").items():
                out.append((dim, label, stats))
        return out

    def get_top_segments(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` segments with the largest absolute ATE, largest first.

        Ties are broken by dimension and label so the order is stable.
        """
        if n < 0:
            raise ValueError(f"`n` must be a non-negative integer; got {n}")
        ranked = sorted(self.segments(), key=lambda t: (-abs(t[2]["ate"]), t[0], t[1]))
        return [{"dimension": d, "segment": s, **stats} for d, s, stats in ranked[:n]]


class SimulationResult(BaseModel):
    """Everything one simulation produced; JSON-serialisable (this is also the cache's value format)."""

    model_config = ConfigDict(extra="forbid")

    simulation_id: UUID = Field(default_factory=uuid4)
    model_id: str | None = None
    intervention_config: InterventionConfig
    population_filter: PopulationFilter = Field(default_factory=PopulationFilter)
    twin_type: str = "hcp"
    brand: str | None = None
    twin_count: int = Field(ge=0)
    population_size: int = Field(default=0, ge=0)
    targeted_count: int = Field(default=0, ge=0)
    simulated_ate: float
    simulated_ci_lower: float
    simulated_ci_upper: float
    simulated_std_error: float = Field(ge=0.0)
    confidence_level: float = Field(gt=0.0, lt=1.0)
    effect_heterogeneity: EffectHeterogeneity = Field(default_factory=EffectHeterogeneity)
    recommendation: SimulationRecommendation
    recommendation_rationale: str
    recommended_sample_size: int | None = None
    recommended_duration_weeks: int | None = None
    simulation_confidence: float = Field(ge=0.0, le=1.0)
    fidelity_warning: bool = False
    fidelity_warning_reason: str | None = None
    model_fidelity_score: float | None = None
    status: SimulationStatus
    error_message: str | None = None
    execution_time_ms: float = Field(default=0.0, ge=0.0)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    completed_at: datetime | None = None
    # Added by twinkernel (beyond the original contract); new fields go at the end.
    ci_method: str = "analytic"
    n_resamples: int | None = None
    effect_provenance: str = "prior"
    warnings: list[str] = Field(default_factory=list)
    data_quality: dict[str, dict[str, int]] = Field(default_factory=dict)
    seed: int | None = None
    effect_size_cohens_d: float | None = None
    statistical_power: float | None = None
    outcome_std: float | None = None
    memory_usage_mb: float = Field(default=0.0, ge=0.0)
    kernel_version: str = ""
    from_cache: bool = False
    request_digest: str | None = None
    """SHA-256 of the :class:`~twinkernel.models.SimulationRequest` this result answers (the cache key's input)."""

    @property
    def ci_width(self) -> float:
        return self.simulated_ci_upper - self.simulated_ci_lower

    @property
    def is_significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.simulated_ci_lower > 0.0 or self.simulated_ci_upper < 0.0
