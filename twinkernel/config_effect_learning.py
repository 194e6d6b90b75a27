"""Configuration of learning effects from unit-level history (``effect_learning``, see ``docs/effects.md``).

Kept apart from :mod:`twinkernel.config` (which imports it) so that module stays within its size budget.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LEARNABLE_MODIFIERS = ("decile", "engagement", "adoption_stage", "priority_tier", "propensity")
"""Modifier groups of the effect model whose parameters the final stage can estimate."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NuisanceConfig(_Section):
    """The cross-fitted nuisance models E[Y | X] and E[T | X]."""

    algorithm: Literal["hist_gradient_boosting", "linear"]
    max_iter: int = Field(ge=1, le=100_000)
    learning_rate: float = Field(gt=0.0, le=10.0)
    max_leaf_nodes: int = Field(ge=2, le=100_000)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0.0)
    linear_alpha: float = Field(gt=0.0)


class EffectLearningConfig(_Section):
    """Double machine learning of the effect model from history, and its fail-closed checks."""

    min_rows: int = Field(ge=10)
    min_treated: int = Field(ge=2)
    min_control: int = Field(ge=2)
    folds: int = Field(ge=2, le=50)
    random_state: int = Field(ge=0, lt=2**63)
    propensity_low: float = Field(gt=0.0, lt=0.5)
    propensity_high: float = Field(gt=0.5, lt=1.0)
    max_outside_share: float = Field(ge=0.0, le=1.0)
    overlap_scale: Literal["balanced", "raw"]
    max_treatment_r2: float = Field(gt=0.0, le=1.0)
    learn_modifiers: tuple[
        Literal["decile", "engagement", "adoption_stage", "priority_tier", "propensity"], ...
    ]
    adoption_reference: str
    tier_reference: int = Field(ge=1, le=5)
    min_level_treated: int = Field(ge=1)
    min_t_for_modifiers: float = Field(ge=0.0)
    max_modifier_ratio: float = Field(gt=1.0)
    max_iterations: int = Field(ge=1, le=10_000)
    tolerance: float = Field(gt=0.0, le=1e-2)
    nuisance: NuisanceConfig

    @model_validator(mode="after")
    def _unique_modifiers(self) -> EffectLearningConfig:
        if len(set(self.learn_modifiers)) != len(self.learn_modifiers):
            raise ValueError(f"learn_modifiers lists a modifier twice: {list(self.learn_modifiers)}")
        return self
