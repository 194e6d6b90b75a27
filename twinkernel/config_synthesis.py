"""The ``twin_generation.synthesis`` section of the configuration (its model, imported by :mod:`.config`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SynthesisConfig(BaseModel):
    """How twins are synthesised (twin_generator/mixture.py): one copula or a mixture of copulas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["mixture", "copula"]
    components: int = Field(ge=1, le=10_000)
    min_component_rows: int = Field(ge=10)
    category_weight: float = Field(gt=0.0, le=100.0)
    onehot_max_levels: int = Field(ge=0, le=1000)
    kmeans_max_iter: int = Field(ge=1, le=10_000)
    order_levels: bool
    component_correlation: Literal["normal_scores", "polyserial"]
    constraint_mc_draws: int = Field(ge=100, le=10_000_000)
