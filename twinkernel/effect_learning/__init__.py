"""Effects learned from unit-level history: double machine learning for the effect model, fail-closed.

:func:`learn_effect` (behind :meth:`twinkernel.EffectModel.learn_from_history`) cross-fits nuisance models
for the outcome and the treatment, refuses when the data cannot identify the effect
(:class:`EffectLearningError` with a ``cause``), and estimates the effect model's own parameters (base
effect, modifier slopes, category multipliers) with robust standard errors. See ``docs/effects.md``.
"""

from .api import MODIFIER_COLUMNS, learn_effect
from .result import FAIL_CAUSES, EffectLearningError, LearnedEffect, LearningDiagnostics

__all__ = [
    "FAIL_CAUSES",
    "MODIFIER_COLUMNS",
    "EffectLearningError",
    "LearnedEffect",
    "LearningDiagnostics",
    "learn_effect",
]
