"""twinkernel: compiled-kernel digital twins for pre-screening commercial interventions.

Learn twins from history, simulate an intervention on millions of them in well under a second, and get
the effect, its uncertainty, the segments it works for, a DEPLOY / REFINE / SKIP recommendation and the
sample size a real test needs.
"""

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

__version__ = "0.1.0.dev0"

__all__ = [
    "CacheStats",
    "ConfigError",
    "DigitalTwin",
    "EffectHeterogeneity",
    "EffectModel",
    "FidelityGrade",
    "FidelityRecord",
    "InterventionConfig",
    "InterventionType",
    "PopulationFilter",
    "SimulationCache",
    "SimulationCacheConfig",
    "SimulationEngine",
    "SimulationRecommendation",
    "SimulationRequest",
    "SimulationResult",
    "SimulationStatus",
    "TwinPopulation",
    "TwinType",
    "TwinkernelConfig",
    "__version__",
    "get_config",
    "load_config",
]
