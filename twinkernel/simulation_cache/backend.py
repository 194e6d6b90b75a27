"""What :class:`~twinkernel.simulation_cache.SimulationCache` needs from a storage backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["CacheBackend"]


@runtime_checkable
class CacheBackend(Protocol):
    """Storage behind the cache. Values are opaque bytes (the result's JSON).

    ``ns`` is a model's namespace (:func:`~twinkernel.simulation_cache.keys.model_namespace`); a backend
    keeps that model's LRU index and "latest result" pointers under it. Every method may raise; the cache
    counts and absorbs errors. Methods are synchronous and thread-safe: the cache's async interface runs
    them in a worker thread.
    """

    name: str

    def get(self, ns: str, key: str) -> bytes | None:
        """The value under ``key`` (marking it recently used), or ``None``."""
        ...

    def get_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        """``(key, value)`` of the newest result stored with ``pointer``, or ``None``."""
        ...

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        """Store ``value``, keep at most ``max_entries`` results in ``ns``; return how many were evicted."""
        ...

    def delete(self, ns: str, key: str) -> None:
        """Remove one result."""
        ...

    def invalidate(self, ns: str) -> int:
        """Remove every result of ``ns``; return how many existed."""
        ...

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        """Take the lock ``name`` for ``ttl_ms`` if free; return its token, or ``None`` if it is held."""
        ...

    def unlock(self, name: str, token: str) -> None:
        """Release the lock ``name`` if ``token`` still owns it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
