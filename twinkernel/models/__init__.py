"""Pydantic models at the API boundary: frozen, hashable values (importing this never imports numba)."""

from ._frozen import FrozenMapping
from .enums import (
    ADOPTION_STAGES,
    FidelityGrade,
    InterventionType,
    SimulationRecommendation,
    SimulationStatus,
    TwinType,
)
from .experiment import ExperimentResult
from .fidelity import FidelityRecord, grade_for_error
from .intervention import InterventionConfig, PopulationFilter, known_extra_params
from .request import SimulationRequest
from .result import SEGMENT_DIMENSIONS, EffectHeterogeneity, SegmentEffect, SimulationResult
from .twin import DigitalTwin

__all__ = [
    "ADOPTION_STAGES",
    "SEGMENT_DIMENSIONS",
    "DigitalTwin",
    "EffectHeterogeneity",
    "ExperimentResult",
    "FidelityGrade",
    "FidelityRecord",
    "FrozenMapping",
    "InterventionConfig",
    "InterventionType",
    "PopulationFilter",
    "SegmentEffect",
    "SimulationRecommendation",
    "SimulationRequest",
    "SimulationResult",
    "SimulationStatus",
    "TwinType",
    "grade_for_error",
    "known_extra_params",
]
