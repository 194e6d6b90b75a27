"""The ``simulation.sweep`` configuration section (``SimulationEngine.sweep``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SweepConfig"]


class SweepConfig(BaseModel):
    """Bounds of one scenario sweep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_configs: int = Field(ge=1, le=1_000_000)
    """Configs one ``sweep`` call accepts (more raise a ValueError naming this key)."""
    max_partial_sums_mb: float = Field(gt=0.0)
    """Per-block partial sums (``blocks × configs × (counters + sums + 3 × segments) × 8`` bytes) held at
    once; a larger sweep runs its configs in batches, one kernel pass each."""
