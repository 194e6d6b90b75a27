"""Results of a simulation: frozen, hashable, JSON round-trip exact (this is the cache's value format)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from ._frozen import FrozenMapping
from .enums import SimulationRecommendation, SimulationStatus
from .intervention import InterventionConfig, PopulationFilter

__all__ = ["SEGMENT_DIMENSIONS", "EffectHeterogeneity", "SegmentEffect", "SimulationResult"]

SEGMENT_DIMENSIONS: tuple[str, ...] = ("specialty", "decile", "region", "adoption_stage")

# Infinity and NaN are written as JSON constants (not null), so a round trip through JSON is exact.
_RESULT_CONFIG = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


def _now() -> datetime:
    return datetime.now(UTC)


class SegmentEffect(BaseModel):
    """One segment's statistics (read-only). ``seg["ate"]`` works as well as ``seg.ate``.

    Examples
    --------
    >>> seg = SegmentEffect(ate=0.05, std=0.01, n=40)
    >>> seg["n"], seg.ci_lower is None
    (40, True)
    """

    model_config = _RESULT_CONFIG

    ate: float
    std: float = Field(ge=0.0)
    n: int = Field(ge=0)
    ci_lower: float | None = None
    ci_upper: float | None = None
    prob_above_deploy: float | None = None
    """P(the segment's true effect ≥ the deploy threshold), from the prediction model (SPEC)."""

    def __getitem__(self, name: str) -> float | int | None:
        if name not in type(self).model_fields:
            raise KeyError(name)
        value: float | int | None = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return self.model_dump(mode="json")


class EffectHeterogeneity(BaseModel):
    """Effects by segment: read-only mappings from the segment label to its :class:`SegmentEffect`."""

    model_config = _RESULT_CONFIG

    by_specialty: FrozenMapping[str, SegmentEffect] = Field(default_factory=FrozenMapping)
    by_decile: FrozenMapping[str, SegmentEffect] = Field(default_factory=FrozenMapping)
    by_region: FrozenMapping[str, SegmentEffect] = Field(default_factory=FrozenMapping)
    by_adoption_stage: FrozenMapping[str, SegmentEffect] = Field(default_factory=FrozenMapping)

    def segments(self) -> list[tuple[str, str, SegmentEffect]]:
        """All segments as ``(dimension, label, stats)`` triples."""
        out: list[tuple[str, str, SegmentEffect]] = []
        for dim in SEGMENT_DIMENSIONS:
            mapping: FrozenMapping[str, SegmentEffect] = getattr(self, f"by_{dim}")
            for label, stats in mapping.items():
                out.append((dim, label, stats))
        return out

    def get_top_segments(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` segments with the largest absolute ATE, largest first (plain dicts).

        Ties are broken by dimension and label so the order is stable.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"`n` must be a non-negative integer; got {n!r}")
        ranked = sorted(self.segments(), key=lambda t: (-abs(t[2].ate), t[0], t[1]))
        return [{"dimension": d, "segment": s, **stats.model_dump()} for d, s, stats in ranked[:n]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return self.model_dump(mode="json")


class SimulationResult(BaseModel):
    """Everything one simulation produced: frozen, hashable, JSON round-trip exact.

    ``SimulationResult.model_validate_json(r.model_dump_json()) == r`` holds (floats included);
    :meth:`to_dict` gives the same data as plain JSON-safe Python. A FAILED result has
    ``recommendation=None``; its ``error_message`` and ``recommendation_rationale`` say why.
    """

    model_config = _RESULT_CONFIG

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
    recommendation: SimulationRecommendation | None
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
    timings_ms: FrozenMapping[str, float] = Field(default_factory=FrozenMapping)
    created_at: datetime = Field(default_factory=_now)
    completed_at: datetime | None = None
    # Added by twinkernel (beyond the original contract); new fields go at the end.
    ci_method: str = "analytic"
    n_resamples: int | None = None
    effect_provenance: str = "prior"
    warnings: tuple[str, ...] = ()
    data_quality: FrozenMapping[str, FrozenMapping[str, int]] = Field(default_factory=FrozenMapping)
    seed: int | None = None
    effect_size_cohens_d: float | None = None
    statistical_power: float | None = None
    outcome_std: float | None = None
    memory_usage_mb: float = Field(default=0.0, ge=0.0)
    kernel_version: str = ""
    from_cache: bool = False
    request_digest: str | None = None
    """SHA-256 of the :class:`~twinkernel.models.SimulationRequest` this result answers (cache key input)."""
    # What a real experiment would measure (SPEC "Uncertainty that means something"); None when FAILED.
    effect_uncertainty_sd: float | None = Field(default=None, ge=0.0)
    """σ_δ: SD of the true effect of a real deployment on this population, √(G² s_t² + τ_t²)."""
    between_experiment_sd: float | None = Field(default=None, ge=0.0)
    """τ_t: how far real experiments of this type scatter around the model (0 with priors)."""
    prediction_df: float | None = None
    """Student-t degrees of freedom of predictions (J − 1 if calibrated from J experiments); None: normal."""
    prob_harmful: float | None = Field(default=None, ge=0.0, le=1.0)
    prob_above_deploy: float | None = Field(default=None, ge=0.0, le=1.0)
    prob_above_refine: float | None = Field(default=None, ge=0.0, le=1.0)
    assurance: float | None = Field(default=None, ge=0.0, le=1.0)
    """Probability that a real test of the recommended size comes out significant and positive."""
    twins_used: int | None = Field(default=None, ge=0)
    """PARTIAL results: the twins whose effects were computed before the timeout (a random sample of blocks
    of the ``twin_count`` selected twins); ``None`` when every selected twin was simulated."""

    def prediction_interval(
        self, n_per_arm: float | None = None, confidence_level: float | None = None
    ) -> tuple[float, float]:
        """The interval a real test of ``n_per_arm`` units per arm would observe the ATE in.

        μ ± q·√(σ_δ² + 2σ_y²/m), q from the normal (priors) or Student's t with :attr:`prediction_df`.
        ``n_per_arm=None``: the recommended sample size; ``math.inf``: the interval for the true effect δ.
        ``confidence_level=None``: the result's level.

        Raises
        ------
        ValueError
            For a result without prediction quantities (FAILED, or from an older version).
        """
        from ..prediction import prediction_interval

        if self.effect_uncertainty_sd is None or self.outcome_std is None:
            raise ValueError(
                f"this result has no prediction quantities (status {self.status.value}); "
                "only completed or partial simulations have a prediction interval"
            )
        m = self.recommended_sample_size if n_per_arm is None else n_per_arm
        if m is None:
            raise ValueError("`n_per_arm` must be given: the result has no recommended sample size")
        level = self.confidence_level if confidence_level is None else confidence_level
        return prediction_interval(
            self.simulated_ate, self.effect_uncertainty_sd, self.outcome_std**2, m, level, self.prediction_df
        )

    @property
    def ci_width(self) -> float:
        return self.simulated_ci_upper - self.simulated_ci_lower

    @property
    def is_significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.simulated_ci_lower > 0.0 or self.simulated_ci_upper < 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data (``json.dumps(r.to_dict())`` works); the same content as the JSON form."""
        return self.model_dump(mode="json")
