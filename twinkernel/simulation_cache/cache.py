"""The :class:`SimulationCache` facade: keys, decisions, counters; storage is a backend's job.

The synchronous methods hold the only implementation. The plan's async methods
(:meth:`~SimulationCache.get_cached_result`, :meth:`~SimulationCache.cache_result`,
:meth:`~SimulationCache.invalidate_model_cache`) run the synchronous ones in a worker thread
(``asyncio.to_thread``): every backend call is bounded by the socket timeout, the event loop is never
blocked, and the same client serves every loop and thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from ..models.enums import SimulationStatus
from ..models.intervention import InterventionConfig, PopulationFilter
from ..models.request import SimulationRequest
from ..models.result import SimulationResult
from .backend import CacheBackend
from .config import CacheStats, SimulationCacheConfig
from .keys import lock_key, model_namespace, pointer_for, result_key
from .memory import MemoryBackend
from .resilience import BackendGuard, KeyedLocks, Unavailable

if TYPE_CHECKING:
    from ..config import TwinkernelConfig

__all__ = ["SimulationCache", "build_backend"]

logger = logging.getLogger("twinkernel.cache")


def build_backend(config: SimulationCacheConfig) -> CacheBackend:
    """The backend ``config`` selects (:attr:`SimulationCacheConfig.resolved_backend`)."""
    if config.resolved_backend == "redis":
        if config.redis_url is None:
            # Services are optional: a missing URL degrades to the embedded cache, loudly.
            logger.warning(
                "simulation_cache.backend is 'redis' but no redis_url is set (simulation_cache.redis_url "
                "or TWINKERNEL_REDIS_URL); using the in-process cache"
            )
            return MemoryBackend()
        from .redis import RedisBackend

        return RedisBackend.from_config(config)
    return MemoryBackend()


class SimulationCache:
    """Cache of simulation results, keyed by everything that determines a result.

    One instance may serve several engines (pass it as ``SimulationEngine(population, cache=cache)``):
    the key includes the population's fingerprint, so engines over different populations never collide.

    Parameters
    ----------
    config
        Settings; ``None`` reads the ``simulation_cache`` section of the default configuration.
    backend
        Storage; ``None`` builds the one ``config`` selects.
    clock
        Monotonic seconds for the circuit breaker and lock waits (tests).

    Examples
    --------
    >>> cache = SimulationCache(backend=MemoryBackend())
    >>> cache.model_namespace(None) == cache.config.key_prefix + "none"
    True
    >>> cache.stats().hit_rate
    0.0
    """

    def __init__(
        self,
        config: SimulationCacheConfig | None = None,
        backend: CacheBackend | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else SimulationCacheConfig()
        self.backend: CacheBackend = backend if backend is not None else build_backend(self.config)
        self._clock = clock
        self._stats_lock = threading.Lock()
        self._counts: dict[str, int] = {f.name: 0 for f in fields(CacheStats)}
        self._guard = BackendGuard(
            self.backend.name,
            self.config.circuit_breaker_failures,
            self.config.circuit_breaker_reset_seconds,
            clock,
            on_error=lambda: self._count("errors"),
        )
        self._keyed = KeyedLocks()
        self._warned_decode = False

    @classmethod
    def from_config(
        cls,
        config: TwinkernelConfig | None = None,
        *,
        backend: Literal["auto", "memory", "redis"] | CacheBackend | None = None,
        redis_url: str | None = None,
    ) -> SimulationCache:
        """Build from a whole configuration, optionally overriding the backend or the Redis URL.

        Parameters
        ----------
        config
            ``None``: the default configuration (with ``TWINKERNEL_REDIS_URL`` applied).
        backend
            ``"auto"``, ``"memory"``, ``"redis"`` or a ready backend object.
        redis_url
            Overrides ``simulation_cache.redis_url``.
        """
        cfg = SimulationCacheConfig.from_config(config)
        overrides: dict[str, object] = {}
        if redis_url is not None:
            overrides["redis_url"] = redis_url
        if isinstance(backend, str):
            overrides["backend"] = backend
        if overrides:
            cfg = cfg.with_overrides(**overrides)
        return cls(cfg, backend if backend is not None and not isinstance(backend, str) else None)

    # keys ------------------------------------------------------------------------------------------------
    def model_namespace(self, model_id: str | UUID | None) -> str:
        """``{key_prefix}{model_id or 'none'}``: the prefix of every key of one model."""
        return model_namespace(self.config.key_prefix, model_id)

    def key_for(self, request: SimulationRequest) -> str:
        """The key of ``request``'s result (see :func:`~twinkernel.simulation_cache.keys.result_key`)."""
        return result_key(self.config.key_prefix, request.model_id, request.digest())

    def key_for_result(self, result: SimulationResult) -> str:
        """The key ``result`` is stored under: the same as :meth:`key_for` of the request it answers.

        Raises
        ------
        ValueError
            If ``result.request_digest`` is not set (only the engine knows the request behind a result).
        """
        if result.request_digest is None:
            raise ValueError(
                "`result.request_digest` must be set to cache a result (SimulationEngine.simulate sets it "
                "to the request's digest, the cache key's input); got None"
            )
        return result_key(self.config.key_prefix, result.model_id, result.request_digest)

    @staticmethod
    def pointer_for(
        intervention_config: InterventionConfig, population_filter: PopulationFilter | None
    ) -> str:
        """Hash of the canonical config and filter: the "latest result" pointer's field."""
        return pointer_for(intervention_config, population_filter)

    # bookkeeping -----------------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += n

    def stats(self) -> CacheStats:
        """An immutable snapshot of the counters."""
        with self._stats_lock:
            return CacheStats(**self._counts)

    def reset_stats(self) -> None:
        """Set every counter back to zero."""
        with self._stats_lock:
            self._counts = dict.fromkeys(self._counts, 0)

    @property
    def circuit_open(self) -> bool:
        """True while the circuit breaker keeps the backend out of use."""
        return self._guard.circuit_open

    def _decode(self, raw: bytes | str) -> SimulationResult | None:
        try:
            result = SimulationResult.model_validate_json(raw)
        except ValueError as exc:  # pydantic's ValidationError (also for invalid JSON) is a ValueError
            self._count("decode_errors")
            level = logging.DEBUG if self._warned_decode else logging.WARNING
            self._warned_decode = True
            logger.log(level, "simulation cache held an undecodable value (%s); deleted", type(exc).__name__)
            return None
        return result.model_copy(update={"from_cache": True})

    @staticmethod
    def _encode(result: SimulationResult) -> bytes:
        stored = result if not result.from_cache else result.model_copy(update={"from_cache": False})
        return stored.model_dump_json().encode()

    def _ttl_ms(self, ttl_seconds: int | None) -> int:
        if ttl_seconds is None:
            return self.config.ttl_seconds * 1000
        # Validated against the same bounds as the config file's ttl_seconds.
        return self.config.with_overrides(ttl_seconds=ttl_seconds).ttl_seconds * 1000

    def _storable(self, result: SimulationResult) -> bool:
        return result.status == SimulationStatus.COMPLETED and (
            result.seed is not None or self.config.cache_unseeded
        )

    # the operations (sync; the async interface below runs these) -----------------------------------------
    def _read(self, ns: str, key: str) -> SimulationResult | None:
        """Look ``key`` up; ``None`` on a miss or a bad value (deleted). Raises :class:`Unavailable`."""
        raw = self._guard.call("get", self.backend.get, ns, key)
        return None if raw is None else self._decoded_or_deleted(ns, key, raw)

    def _decoded_or_deleted(self, ns: str, key: str, raw: bytes) -> SimulationResult | None:
        result = self._decode(raw)
        if result is None:
            with contextlib.suppress(Unavailable):
                self._guard.call("delete", self.backend.delete, ns, key)
        return result

    def _write(self, ns: str, key: str, result: SimulationResult, ttl_ms: int) -> None:
        """Store a completed result with its "latest" pointer. Raises :class:`Unavailable`."""
        pointer = self.pointer_for(result.intervention_config, result.population_filter)
        evicted = self._guard.call(
            "put",
            self.backend.put,
            ns,
            key,
            self._encode(result),
            ttl_ms,
            self.config.max_cached_results,
            pointer,
        )
        self._count("stores")
        if evicted > 0:
            self._count("evictions", evicted)

    def _lookup(self, ns: str, fetch: Callable[[], SimulationResult | None]) -> SimulationResult | None:
        if not self.config.enabled:
            return None
        try:
            result = fetch()
        except Unavailable:
            self._count("bypassed")
            return None
        self._count("hits" if result is not None else "misses")
        return result

    def get_sync(self, request: SimulationRequest) -> SimulationResult | None:
        """The cached result of ``request`` (``from_cache=True``), or ``None``. Never raises for the cache."""
        ns = self.model_namespace(request.model_id)
        return self._lookup(ns, lambda: self._read(ns, self.key_for(request)))

    def get_latest_sync(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None,
        model_id: str | UUID | None,
    ) -> SimulationResult | None:
        """The newest cached result for (model, canonical config, canonical filter), or ``None``.

        This interface has no seed or population, so it reads the "latest result" pointer that every
        store writes; a result for another seed or population of the same model and config may be
        returned. Use :meth:`get_sync` with a full request for an exact match.
        """
        ns = self.model_namespace(model_id)
        pointer = self.pointer_for(intervention_config, population_filter)

        def fetch() -> SimulationResult | None:
            found = self._guard.call("get", self.backend.get_latest, ns, pointer)
            return None if found is None else self._decoded_or_deleted(ns, found[0], found[1])

        return self._lookup(ns, fetch)

    def put_sync(self, result: SimulationResult, ttl_seconds: int | None = None) -> bool:
        """Store ``result`` under the key of the request it answers (``result.request_digest``).

        So a result stored here is a hit for :meth:`SimulationEngine.simulate
        <twinkernel.SimulationEngine.simulate>` with the same request, and the other way round. Only
        completed results are stored, and a result without a seed only with ``cache_unseeded``.

        Parameters
        ----------
        result
            A result from the engine (it must carry ``request_digest``).
        ttl_seconds
            Lifetime; ``None``: ``simulation_cache.ttl_seconds``. Checked against the same bounds.

        Returns
        -------
        bool
            True if stored; False if not storable, the cache is disabled, or the backend failed (counted).

        Raises
        ------
        ValueError
            If ``result.request_digest`` is ``None``, or ``ttl_seconds`` is out of bounds.
        """
        key = self.key_for_result(result)
        ttl_ms = self._ttl_ms(ttl_seconds)
        if not self.config.enabled or not self._storable(result):
            return False
        try:
            self._write(self.model_namespace(result.model_id), key, result, ttl_ms)
        except Unavailable:
            self._count("bypassed")
            return False
        return True

    def invalidate_model_cache_sync(self, model_id: str | UUID | None) -> int:
        """Remove every cached result of ``model_id``; return how many there were (0 if unavailable)."""
        try:
            n = int(self._guard.call("invalidate", self.backend.invalidate, self.model_namespace(model_id)))
        except Unavailable:
            self._count("bypassed")
            return 0
        self._count("invalidations", n)
        return n

    def get_or_compute(
        self, request: SimulationRequest, compute: Callable[[], SimulationResult]
    ) -> SimulationResult:
        """The cached result of ``request``, or ``compute()``'s result, stored if completed.

        Identical concurrent calls compute once: the first takes a lock (per key in this process, and a
        backend lock across processes); the others re-read the cache (every ``lock_poll_initial_seconds``,
        doubling up to ``lock_poll_max_seconds``) for at most ``lock_wait_seconds`` and then compute
        themselves. A cache error makes the call just ``return compute()``. Requests without an explicit
        seed are neither looked up nor stored unless ``cache_unseeded``. Exceptions from ``compute``
        propagate unchanged.

        Returns
        -------
        SimulationResult
            ``from_cache=True`` (same ``simulation_id`` as stored) on a hit, ``from_cache=False`` otherwise.
        """
        cfg = self.config
        if not cfg.enabled or not (request.seed_was_given or cfg.cache_unseeded):
            return compute()
        ns, key, digest = self.model_namespace(request.model_id), self.key_for(request), request.digest()
        try:
            cached = self._read(ns, key)
        except Unavailable:
            self._count("bypassed")
            return compute()
        if cached is not None:
            self._count("hits")
            return cached
        deadline = self._clock() + cfg.lock_wait_seconds
        lock_name, token = lock_key(ns, digest), None
        with self._keyed.hold(key, cfg.lock_wait_seconds) as local:
            try:
                if local:  # another thread of this process may have just stored it
                    cached = self._read(ns, key)
                token = None if cached is not None else self._try_lock(lock_name)
                delay = cfg.lock_poll_initial_seconds
                while cached is None and token is None and self._clock() < deadline:
                    time.sleep(min(delay, max(0.0, deadline - self._clock())))
                    delay = min(delay * 2, cfg.lock_poll_max_seconds)
                    cached = self._read(ns, key)
                    if cached is None:
                        token = self._try_lock(lock_name)
            except Unavailable:
                self._count("bypassed")
                return compute()
            if cached is not None:
                self._count("hits")
                return cached
            self._count("misses")
            try:
                result = compute()
            except BaseException:
                self._unlock(lock_name, token)
                raise
            if result.status == SimulationStatus.COMPLETED:
                with contextlib.suppress(Unavailable):  # counted and logged by the guard
                    self._write(ns, key, result, cfg.ttl_seconds * 1000)
            self._unlock(lock_name, token)  # after the write, so waiters find the value
        return result if not result.from_cache else result.model_copy(update={"from_cache": False})

    def _try_lock(self, name: str) -> str | None:
        return self._guard.call("lock", self.backend.try_lock, name, self.config.lock_ttl_ms)

    def _unlock(self, name: str, token: str | None) -> None:
        if token is not None:
            with contextlib.suppress(Unavailable):
                self._guard.call("unlock", self.backend.unlock, name, token)

    # the plan's async interface -------------------------------------------------------------------------
    async def get_cached_result(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None,
        model_id: str | UUID | None,
    ) -> SimulationResult | None:
        """Asynchronous :meth:`get_latest_sync` (run in a worker thread)."""
        return await asyncio.to_thread(self.get_latest_sync, intervention_config, population_filter, model_id)

    async def cache_result(self, result: SimulationResult, ttl_seconds: int | None = None) -> bool:
        """Asynchronous :meth:`put_sync` (run in a worker thread)."""
        return await asyncio.to_thread(self.put_sync, result, ttl_seconds)

    async def invalidate_model_cache(self, model_id: str | UUID | None) -> int:
        """Asynchronous :meth:`invalidate_model_cache_sync` (run in a worker thread)."""
        return await asyncio.to_thread(self.invalidate_model_cache_sync, model_id)

    # lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def __enter__(self) -> SimulationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimulationCache(backend={self.backend.name!r}, key_prefix={self.config.key_prefix!r})"
