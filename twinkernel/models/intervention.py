"""Requests: what to simulate and on whom."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["InterventionConfig", "PopulationFilter"]


def _sorted_unique(values: list[Any]) -> list[Any]:
    return sorted(set(values), key=lambda v: (str(type(v)), v))


class InterventionConfig(BaseModel):
    """An intervention to simulate.

    ``target_deciles``, ``target_specialties`` and ``target_regions`` say who receives it; empty (the
    default) means everyone.

    Examples
    --------
    >>> cfg = InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8)
    >>> cfg.intensity_multiplier
    1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intervention_type: str = Field(min_length=1, max_length=100)
    channel: str | None = None
    frequency: str | None = None
    duration_weeks: int = Field(default=8, ge=1, le=52)
    content_type: str | None = None
    personalization_level: str | None = None
    target_deciles: list[int] = Field(default_factory=list)
    target_specialties: list[str] = Field(default_factory=list)
    target_regions: list[str] = Field(default_factory=list)
    intensity_multiplier: float = Field(default=1.0, ge=0.1, le=10.0)
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("intervention_type")
    @classmethod
    def _normalise_type(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("target_deciles")
    @classmethod
    def _deciles_in_range(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if not 1 <= d <= 10]
        if bad:
            raise ValueError(f"target deciles must be between 1 and 10; got {bad}")
        return _sorted_unique(v)

    @field_validator("target_specialties", "target_regions")
    @classmethod
    def _canonical_lists(cls, v: list[str]) -> list[str]:
        return _sorted_unique(v)

    def canonical_json(self) -> str:
        """A JSON text that is equal for equal configurations (list order never matters)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class PopulationFilter(BaseModel):
    """Which twins to simulate. Empty lists mean no restriction; a bound of 0.0 is a bound.

    Examples
    --------
    >>> PopulationFilter(deciles=[3, 1, 2]).deciles
    [1, 2, 3]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specialties: list[str] = Field(default_factory=list)
    deciles: list[int] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    adoption_stages: list[str] = Field(default_factory=list)
    min_baseline_outcome: float | None = None
    max_baseline_outcome: float | None = None

    @field_validator("deciles")
    @classmethod
    def _deciles_in_range(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if not 1 <= d <= 10]
        if bad:
            raise ValueError(f"deciles must be between 1 and 10; got {bad}")
        return _sorted_unique(v)

    @field_validator("specialties", "regions", "adoption_stages")
    @classmethod
    def _canonical_lists(cls, v: list[str]) -> list[str]:
        return _sorted_unique(v)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PopulationFilter:
        lo, hi = self.min_baseline_outcome, self.max_baseline_outcome
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_baseline_outcome ({lo}) must not exceed max_baseline_outcome ({hi})")
        return self

    def is_empty(self) -> bool:
        """True when the filter restricts nothing."""
        return (
            not self.specialties
            and not self.deciles
            and not self.regions
            and not self.adoption_stages
            and self.min_baseline_outcome is None
            and self.max_baseline_outcome is None
        )

    def canonical_json(self) -> str:
        """A JSON text that is equal for equal filters (list order never matters)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
