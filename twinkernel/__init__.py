"""twinkernel: compiled-kernel digital twins for pre-screening commercial interventions.

Learn twins from history, simulate an intervention on millions of them in well under a second, and get
the effect, its uncertainty, the segments it works for, a DEPLOY / REFINE / SKIP recommendation and the
sample size a real test needs.
"""

from . import synthetic
from .bootstrap import BootstrapResult, BootstrapWarning, bootstrap_ci
from .config import ConfigError, TwinkernelConfig, get_config, load_config
from .effect_model import EffectModel
from .models import (
    DigitalTwin,
    EffectHeterogeneity,
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
from .simulation_cache import CacheStats, SimulationCache, SimulationCacheConfig
from .simulation_engine import SimulationEngine
from .twin_generator import Constraint, QualityReport, TwinGenerator, TwinModelMetrics

__version__ = "0.1.0.dev0"

__all__ = [
    "BootstrapResult",
    "BootstrapWarning",
    "CacheStats",
    "ConfigError",
    "Constraint",
    "DigitalTwin",
    "EffectHeterogeneity",
    "EffectModel",
    "FidelityGrade",
    "FidelityRecord",
    "InterventionConfig",
    "InterventionType",
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
    "TwinType",
    "TwinkernelConfig",
    "__version__",
    "bootstrap_ci",
    "get_config",
    "load_config",
    "synthetic",
]
