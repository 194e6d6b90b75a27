"""What the engine needs from a cache and from a store (structural types: any object with the method fits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..models import SimulationRequest, SimulationResult

__all__ = ["ResultCache", "SimulationRecorder"]


class ResultCache(Protocol):
    """What the engine needs from a cache (see :mod:`twinkernel.simulation_cache`)."""

    def get_or_compute(
        self, request: SimulationRequest, compute: Callable[[], SimulationResult]
    ) -> SimulationResult: ...


class SimulationRecorder(Protocol):
    """What the engine needs from a store (see :class:`twinkernel.repository.TwinRepository`)."""

    def record_simulation(self, result: SimulationResult) -> Any: ...
