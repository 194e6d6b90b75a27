"""A single twin as a record: an input convenience, converted once into a columnar population."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._frozen import FrozenMapping, freeze_value
from .enums import TwinType

__all__ = ["DigitalTwin"]


class DigitalTwin(BaseModel):
    """One twin (frozen, hashable). Hot paths never see these: ``TwinPopulation.from_twins`` converts once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    twin_id: UUID | str | int = Field(default_factory=uuid4)
    twin_type: TwinType = TwinType.HCP
    brand: str | None = None
    features: FrozenMapping[str, Any] = Field(default_factory=FrozenMapping)
    baseline_outcome: float = 0.0
    baseline_propensity: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("features")
    @classmethod
    def _freeze_features(cls, v: FrozenMapping[str, Any]) -> FrozenMapping[str, Any]:
        return FrozenMapping({k: freeze_value(x) for k, x in v.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data, as in :meth:`model_dump_json`."""
        return self.model_dump(mode="json")
