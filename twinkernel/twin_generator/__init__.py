"""Twin generation: learn twins from history, generate populations of them, check their quality.

One module per concern:

========================  ===========================================================================
``training``              :class:`TwinGenerator` (train / generate orchestration)
``leakage``               leakage rules: default features, target copies, ``*_as_of`` timestamps,
                          time / entity / random splits and cross-validation folds
``marginals``             per-column marginals and the column encodings
``copula``                Gaussian copula: NORTA / normal-score latent correlations, truncated normals
``constraints``           :class:`Constraint`, constraint planning, conditional latent sampling
``outcome``               outcome model (scikit-learn from config), CV, importances, :class:`TwinModelMetrics`
``propensity``            baseline propensity (logistic model or the configured heuristic)
``quality``               :class:`QualityReport`
``fidelity``              :class:`FidelityReport`: shapes, every pair, detection AUC, privacy
``persistence``           save / load
``trees``                 scikit-learn tree adapter for the batched tree kernel
========================  ===========================================================================
"""

from __future__ import annotations

from .constraints import Constraint
from .fidelity import FidelityReport
from .marginals import ColumnMarginal
from .outcome import ALGORITHMS, TwinModelMetrics
from .quality import QualityReport
from .training import SETTINGS, TwinGenerator

__all__ = [
    "ALGORITHMS",
    "SETTINGS",
    "ColumnMarginal",
    "Constraint",
    "FidelityReport",
    "QualityReport",
    "TwinGenerator",
    "TwinModelMetrics",
]
