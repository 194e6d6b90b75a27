"""Simulation result cache: Redis when configured, a thread-safe in-process LRU otherwise.

Where things live:

- :mod:`~twinkernel.simulation_cache.cache`: the :class:`SimulationCache` facade (keys, single flight,
  counters; the async interface runs the sync one in a worker thread);
- :mod:`~twinkernel.simulation_cache.keys`: the one function that builds a result's key;
- :mod:`~twinkernel.simulation_cache.memory`: the in-process LRU backend;
- :mod:`~twinkernel.simulation_cache.redis`: the Redis backend, with its Lua scripts in ``lua/*.lua``;
- :mod:`~twinkernel.simulation_cache.resilience`: circuit breaker, one log line per outage, keyed locks;
- :mod:`~twinkernel.simulation_cache.config`: :class:`SimulationCacheConfig` (the ``simulation_cache``
  config section) and :class:`CacheStats`.

A cached value is the :class:`~twinkernel.models.SimulationResult` as JSON; nothing is ever pickled. The
cache never fails a simulation: a backend error, a timeout or an undecodable value is counted and that
call runs without the cache. See ``docs/cache.md``.

Examples
--------
>>> cache = SimulationCache(backend=MemoryBackend())
>>> cache.backend.name
'memory'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import CacheBackend
from .cache import SimulationCache, build_backend
from .config import CacheStats, SimulationCacheConfig
from .keys import model_namespace, pointer_for, result_key
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .redis import RedisBackend

__all__ = [
    "CacheBackend",
    "CacheStats",
    "MemoryBackend",
    "RedisBackend",
    "SimulationCache",
    "SimulationCacheConfig",
    "build_backend",
    "model_namespace",
    "pointer_for",
    "result_key",
]


def __getattr__(name: str) -> Any:
    # The Redis backend is imported on first use, so the package works without the `redis` extra.
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
