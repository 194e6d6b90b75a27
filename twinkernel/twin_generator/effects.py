"""Learning the effect model alongside the twin model (``TwinGenerator.train(..., effect_types=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from ..effect_model import EffectModel
    from .training import TwinGenerator


def learn_effects(
    gen: TwinGenerator,
    frame: pl.DataFrame,
    effect_types: Sequence[str] | str,
    time_col: str | None,
    cutoff: Any,
    entity_col: str | None,
) -> EffectModel | None:
    """The generator's configuration's effect model with each of ``effect_types`` learned from ``frame``
    (the training history: same target, treatment, time, cutoff and entity columns); ``None`` when no
    type is asked for. A refusal (:class:`~twinkernel.effect_learning.EffectLearningError`) propagates."""
    types = [effect_types] if isinstance(effect_types, str) else list(effect_types)
    if not types:
        return None
    treatment_col = gen.treatment_col
    if treatment_col is None:
        raise ValueError(
            "`effect_types` needs `treatment_col` (the 0/1 past treatment to learn effects from)"
        )
    from ..effect_model import EffectModel

    model = EffectModel.from_config(gen.config)
    for t in types:
        model = model.learn_from_history(
            frame,
            intervention_type=t,
            treatment_col=treatment_col,
            outcome_col=str(gen.target_col),
            time_col=time_col,
            cutoff=cutoff,
            entity_col=entity_col,
            config=gen.config,
        )
    return model
