"""Synthetic-world helpers for effect learning: the history frame and the truth in the model's terms."""

from __future__ import annotations

import polars as pl

from ..config import TwinkernelConfig, get_config
from ..synthetic import SyntheticWorld

__all__ = ["history_frame", "true_base_effect"]


def history_frame(world: SyntheticWorld) -> pl.DataFrame:
    """The world's entity-month history joined with the entities' columns (one row per entity and month:
    features, ``treated``, ``intervention_type`` and the outcome)."""
    return world.history.join(world.entities, on=world.entity_col, how="left")


def true_base_effect(
    world: SyntheticWorld, intervention_type: str, mean_month: float, config: TwinkernelConfig | None = None
) -> float:
    """The world's true base effect in the effect model's parametrisation.

    The world's effect is b_w (1 + drift·m) (a_d − s_d (d − 1)) (a_e + s_e e) A[stage] T[tier] · gate; the
    model's is b (I_d − s_d' (d − low)) (I_e + s_e' e) A'[stage] T'[tier] (I_p + s_p p) · gate with the
    configuration's intercepts I (the reference adoption stage and tier have multiplier 1 in both). So
    b = b_w (1 + drift · mean month) (a_d / I_d) (a_e / I_e) / (I_p + s_p p0), where p0 is the default
    ``baseline_propensity`` a history without that column is evaluated at, and the drift is averaged over
    the months of the history (the treatment does not depend on the month).
    """
    cfg = config if config is not None else get_config()
    eff = cfg.simulation.intervention_effects
    te = world.truth.true_effects[intervention_type]
    mods = world.truth.effect_modifiers
    b = te.base_effect * (1.0 + te.drift_per_month * mean_month)
    b *= mods["decile"][0] / eff.decile.intercept
    b *= mods["engagement"][0] / eff.engagement.intercept
    p0 = cfg.simulation.missing_value_defaults.baseline_propensity
    return b / (eff.propensity.intercept + eff.propensity.slope * p0)
