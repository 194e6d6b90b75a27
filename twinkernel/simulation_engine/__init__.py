"""The simulation engine: orchestration (:mod:`.engine`), decision rules (:mod:`.decisions`, pure
functions) and the debug trace (:mod:`.trace`)."""

from .engine import CI_METHODS, ResultCache, SimulationEngine

__all__ = ["CI_METHODS", "ResultCache", "SimulationEngine"]
