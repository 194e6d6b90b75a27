"""A single twin as a record: an input convenience, converted once into a columnar population."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from .enums import TwinType

__all__ = ["DigitalTwin"]


class DigitalTwin(BaseModel):
    """One twin. Hot paths never see these: ``TwinPopulation.from_twins`` converts a list once."""

    model_config = ConfigDict(extra="forbid")

    twin_id: UUID | str | int = Field(default_factory=uuid4)
    twin_type: TwinType = TwinType.HCP
    brand: str | None = None
    features: dict[str, Any] = Field(default_factory=dict)
    baseline_outcome: float = 0.0
    baseline_propensity: float = Field(default=0.5, ge=0.0, le=1.0)
