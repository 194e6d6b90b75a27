"""twinkernel: compiled-kernel digital twins for pre-screening commercial interventions.

Learn twins from history, simulate an intervention on millions of them in well under a second, and get
the effect, its uncertainty, the segments it works for, a DEPLOY / REFINE / SKIP recommendation and the
sample size a real test needs.

Public names are loaded lazily (PEP 562): ``from twinkernel import InterventionConfig`` imports only the
models and the configuration, never numba or scipy. The kernels compile on first use;
:func:`twinkernel.compile` compiles them up front and reports the time each step took.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    "BootstrapResult": ".bootstrap",
    "BootstrapWarning": ".bootstrap",
    "bootstrap_ci": ".bootstrap",
    "CacheStats": ".simulation_cache",
    "SimulationCache": ".simulation_cache",
    "SimulationCacheConfig": ".simulation_cache",
    "ConfigError": ".config",
    "TwinkernelConfig": ".config",
    "get_config": ".config",
    "load_config": ".config",
    "Constraint": ".twin_generator",
    "QualityReport": ".twin_generator",
    "TwinGenerator": ".twin_generator",
    "TwinModelMetrics": ".twin_generator",
    "DigitalTwin": ".models",
    "EffectHeterogeneity": ".models",
    "ExperimentResult": ".models",
    "FidelityGrade": ".models",
    "FidelityRecord": ".models",
    "InterventionConfig": ".models",
    "InterventionType": ".models",
    "PopulationFilter": ".models",
    "SimulationRecommendation": ".models",
    "SimulationRequest": ".models",
    "SimulationResult": ".models",
    "SimulationStatus": ".models",
    "TwinType": ".models",
    "EffectModel": ".effect_model",
    "EffectLearningError": ".effect_learning",
    "LearnedEffect": ".effect_learning",
    "FidelityTracker": ".fidelity_tracker",
    "TwinRetrainingService": ".retraining_service",
    "TwinPopulation": ".population",
    "TwinRepository": ".repository",
    "SimulationEngine": ".simulation_engine",
    "compile": ".warmup",
}
_SUBMODULES = ("synthetic",)

__all__ = [
    "BootstrapResult",
    "BootstrapWarning",
    "CacheStats",
    "ConfigError",
    "Constraint",
    "DigitalTwin",
    "EffectHeterogeneity",
    "EffectLearningError",
    "EffectModel",
    "ExperimentResult",
    "FidelityGrade",
    "FidelityRecord",
    "FidelityTracker",
    "InterventionConfig",
    "InterventionType",
    "LearnedEffect",
    "PopulationFilter",
    "QualityReport",
    "SimulationCache",
    "SimulationCacheConfig",
    "SimulationEngine",
    "SimulationRecommendation",
    "SimulationRequest",
    "SimulationResult",
    "SimulationStatus",
    "TwinGenerator",
    "TwinModelMetrics",
    "TwinPopulation",
    "TwinRepository",
    "TwinRetrainingService",
    "TwinType",
    "TwinkernelConfig",
    "__version__",
    "bootstrap_ci",
    "compile",
    "get_config",
    "load_config",
    "synthetic",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import synthetic
    from .bootstrap import BootstrapResult, BootstrapWarning, bootstrap_ci
    from .config import ConfigError, TwinkernelConfig, get_config, load_config
    from .effect_learning import EffectLearningError, LearnedEffect
    from .effect_model import EffectModel
    from .fidelity_tracker import FidelityTracker
    from .models import (
        DigitalTwin,
        EffectHeterogeneity,
        ExperimentResult,
        FidelityGrade,
        FidelityRecord,
        InterventionConfig,
        InterventionType,
        PopulationFilter,
        SimulationRecommendation,
        SimulationRequest,
        SimulationResult,
        SimulationStatus,
        TwinType,
    )
    from .population import TwinPopulation
    from .repository import TwinRepository
    from .retraining_service import TwinRetrainingService
    from .simulation_cache import CacheStats, SimulationCache, SimulationCacheConfig
    from .simulation_engine import SimulationEngine
    from .twin_generator import Constraint, QualityReport, TwinGenerator, TwinModelMetrics
    from .warmup import compile


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562) and keep it in the module namespace."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
