"""Simulation result cache: Redis when configured, a thread-safe in-process LRU otherwise.

A cached value is the :class:`~twinkernel.models.SimulationResult` as JSON (pydantic); nothing is ever
pickled. The cache never fails a simulation: a backend error, a timeout or an undecodable value is counted,
logged once (``twinkernel.cache`` logger, WARNING) and that call simply runs without the cache. After
``circuit_breaker_failures`` consecutive errors the backend is left alone for
``circuit_breaker_reset_seconds``.

Keys
----
``{key_prefix}{model_id or 'none'}:{request.digest()}`` where :meth:`SimulationRequest.digest` hashes the
model id, population fingerprint, canonical intervention config and filter (list order does not matter),
confidence level, CI method and resamples, seed, heterogeneity flag, kernel version and effect model. The
per-model bookkeeping lives next to the results, under the namespace ``{key_prefix}{model_id or 'none'}``:

- ``<ns>:~lru``    sorted set of result keys by last access (LRU bound and invalidation),
- ``<ns>:~latest`` hash from a (config, filter) hash to the newest result key (the plan's
  :meth:`SimulationCache.get_cached_result`, which is not given a seed or population),
- ``<ns>:~ptrs``   sorted set of those pointers by write time (bounds the hash),
- ``<ns>:~lock:<digest>`` single-flight lock.

Every multi-key update on Redis is one Lua script, so readers never see a half-applied eviction or
invalidation (the scripts address keys they read from the index, so use a standalone Redis, not a
cluster).

Unseeded simulations
--------------------
A simulation run without an explicit seed is not reproducible, so by default it is not cached
(``simulation_cache.cache_unseeded: false``). The engine makes that decision; :meth:`get_or_compute`
applies the same rule as a safety net and :meth:`cache_result` refuses a result without a seed.

Examples
--------
>>> cache = SimulationCache(SimulationCacheConfig())
>>> cache.backend.name
'memory'
>>> cache.stats().hit_rate
0.0
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from uuid import UUID

from .models.enums import SimulationStatus
from .models.intervention import InterventionConfig, PopulationFilter
from .models.request import SimulationRequest
from .models.result import SimulationResult

if TYPE_CHECKING:
    from .config import SimulationCacheSection, TwinkernelConfig

__all__ = [
    "CacheBackend",
    "CacheStats",
    "MemoryBackend",
    "RedisBackend",
    "SimulationCache",
    "SimulationCacheConfig",
]

logger = logging.getLogger("twinkernel.cache")

BackendName = Literal["auto", "memory", "redis"]


# --- configuration -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulationCacheConfig:
    """Settings of a :class:`SimulationCache`, normally read from the ``simulation_cache`` config section.

    The defaults equal the shipped ``config/digital_twin_config.yaml``; :meth:`from_config` is the usual
    constructor (it also picks up ``TWINKERNEL_REDIS_URL``, which the config loader applies).

    Parameters
    ----------
    enabled
        ``False`` turns every operation into a no-op (``get_or_compute`` just computes).
    ttl_seconds
        Lifetime of a cached result.
    prefix
        Prefix of every key (``key_prefix`` in the file).
    max_cached_results
        Per-model bound; the least recently used result is evicted beyond it.
    backend
        ``"auto"`` (Redis when ``redis_url`` is set, else memory), ``"memory"`` or ``"redis"``.
    redis_url
        ``redis://host:port/db``.
    socket_timeout_seconds, socket_connect_timeout_seconds
        Redis socket timeouts; a slower call counts as an error and runs without the cache.
    cache_unseeded
        Cache results of simulations called without an explicit seed (not reproducible; off by default).
    lock_ttl_ms
        Expiry of the Redis single-flight lock (a crashed holder frees it after this).
    lock_wait_seconds
        How long an identical concurrent request waits for the first one before computing anyway.
    circuit_breaker_failures, circuit_breaker_reset_seconds
        Consecutive errors that open the breaker, and how long it stays open.

    Examples
    --------
    >>> SimulationCacheConfig().prefix
    'twin_sim:'
    """

    enabled: bool = True
    ttl_seconds: int = 1800
    prefix: str = "twin_sim:"
    max_cached_results: int = 1000
    backend: BackendName = "auto"
    redis_url: str | None = None
    socket_timeout_seconds: float = 0.05
    socket_connect_timeout_seconds: float = 0.05
    cache_unseeded: bool = False
    lock_ttl_ms: int = 30_000
    lock_wait_seconds: float = 10.0
    circuit_breaker_failures: int = 3
    circuit_breaker_reset_seconds: float = 30.0

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("ttl_seconds", self.ttl_seconds >= 1, "must be a positive integer"),
            ("max_cached_results", self.max_cached_results >= 1, "must be a positive integer"),
            ("prefix", bool(self.prefix), "must be a non-empty string"),
            ("backend", self.backend in ("auto", "memory", "redis"), "must be 'auto', 'memory' or 'redis'"),
            ("socket_timeout_seconds", self.socket_timeout_seconds > 0, "must be positive"),
            ("socket_connect_timeout_seconds", self.socket_connect_timeout_seconds > 0, "must be positive"),
            ("lock_ttl_ms", self.lock_ttl_ms >= 1, "must be a positive integer"),
            ("lock_wait_seconds", self.lock_wait_seconds >= 0, "must be non-negative"),
            ("circuit_breaker_failures", self.circuit_breaker_failures >= 1, "must be a positive integer"),
            (
                "circuit_breaker_reset_seconds",
                self.circuit_breaker_reset_seconds >= 0,
                "must be non-negative",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"`{name}` {rule}; got {getattr(self, name)!r}")

    @classmethod
    def from_section(cls, section: SimulationCacheSection) -> SimulationCacheConfig:
        """Build from a validated ``simulation_cache`` config section."""
        return cls(
            enabled=section.enabled,
            ttl_seconds=section.ttl_seconds,
            prefix=section.key_prefix,
            max_cached_results=section.max_cached_results,
            backend=section.backend,
            redis_url=section.redis_url,
            socket_timeout_seconds=section.socket_timeout_seconds,
            socket_connect_timeout_seconds=section.socket_connect_timeout_seconds,
            cache_unseeded=section.cache_unseeded,
            lock_ttl_ms=section.lock_ttl_ms,
            lock_wait_seconds=section.lock_wait_seconds,
            circuit_breaker_failures=section.circuit_breaker_failures,
            circuit_breaker_reset_seconds=section.circuit_breaker_reset_seconds,
        )

    @classmethod
    def from_config(cls, config: TwinkernelConfig | None = None) -> SimulationCacheConfig:
        """Build from a whole configuration (``None``: the default one, :func:`twinkernel.config.get_config`).

        ``TWINKERNEL_REDIS_URL`` has already replaced ``redis_url`` when the configuration was loaded.
        """
        if config is None:
            from .config import get_config

            config = get_config()
        return cls.from_section(config.simulation_cache)

    @property
    def resolved_backend(self) -> Literal["memory", "redis"]:
        """The backend ``backend`` selects: ``auto`` means Redis exactly when ``redis_url`` is set."""
        if self.backend == "redis" or (self.backend == "auto" and self.redis_url):
            return "redis"
        return "memory"


# --- statistics --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheStats:
    """Counters of one :class:`SimulationCache` (this process only).

    ``hits`` / ``misses`` count lookups answered from / not found in the cache (a ``get_or_compute`` call
    counts once, however long it waited); ``errors`` counts backend failures and timeouts; ``bypassed``
    counts calls that ran without the cache because of an error or an open circuit breaker;
    ``evictions`` counts results dropped by the LRU bound; ``invalidations`` counts results removed by
    :meth:`SimulationCache.invalidate_model_cache`; ``decode_errors`` counts stored values that were not
    a valid result (each is also a miss, and deleted); ``stores`` counts results written.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    evictions: int = 0
    invalidations: int = 0
    decode_errors: int = 0
    stores: int = 0
    bypassed: int = 0

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``; 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        """All counters and ``hit_rate`` as a plain dict."""
        out: dict[str, float] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["hit_rate"] = self.hit_rate
        return out


# --- backend protocol --------------------------------------------------------------------------------------
@runtime_checkable
class CacheBackend(Protocol):
    """Storage behind :class:`SimulationCache`. Values are opaque bytes (the result's JSON).

    ``ns`` is a model's namespace, ``{prefix}{model_id}``; a backend keeps that model's LRU index and
    "latest result" pointers under it. Every method may raise; the cache counts and absorbs errors.
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

    async def aget(self, ns: str, key: str) -> bytes | None: ...

    async def aget_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None: ...

    async def aput(
        self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None
    ) -> int: ...

    async def adelete(self, ns: str, key: str) -> None: ...

    async def ainvalidate(self, ns: str) -> int: ...

    def close(self) -> None:
        """Release connections."""
        ...


# --- in-process backend ------------------------------------------------------------------------------------
class _ModelStore:
    __slots__ = ("entries", "latest")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key -> (expires_at, value)
        self.latest: OrderedDict[str, str] = OrderedDict()  # pointer -> key, oldest first


class MemoryBackend:
    """Thread-safe in-process LRU with per-entry TTL, bounded per model. The default backend.

    Parameters
    ----------
    clock
        Monotonic seconds; injectable so tests can move time without sleeping.

    Examples
    --------
    >>> b = MemoryBackend()
    >>> b.put("twin_sim:m", "twin_sim:m:k", b"{}", ttl_ms=1000, max_entries=10, pointer=None)
    0
    >>> b.get("twin_sim:m", "twin_sim:m:k")
    b'{}'
    """

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _ModelStore] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    def get(self, ns: str, key: str) -> bytes | None:
        with self._lock:
            store = self._models.get(ns)
            if store is None:
                return None
            item = store.entries.get(key)
            if item is None:
                return None
            if item[0] <= self._clock():
                del store.entries[key]
                return None
            store.entries.move_to_end(key)
            return item[1]

    def get_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        with self._lock:
            store = self._models.get(ns)
            key = store.latest.get(pointer) if store is not None else None
        if key is None:
            return None
        value = self.get(ns, key)
        return None if value is None else (key, value)

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        with self._lock:
            now = self._clock()
            store = self._models.setdefault(ns, _ModelStore())
            store.entries[key] = (now + ttl_ms / 1000.0, value)
            store.entries.move_to_end(key)
            if pointer is not None:
                store.latest[pointer] = key
                store.latest.move_to_end(pointer)
                while len(store.latest) > max_entries:
                    store.latest.popitem(last=False)
            evicted = 0
            if len(store.entries) > max_entries:
                # Expired entries go first and are not evictions.
                for k in [k for k, (exp, _) in store.entries.items() if exp <= now]:
                    del store.entries[k]
                while len(store.entries) > max_entries:
                    store.entries.popitem(last=False)
                    evicted += 1
            return evicted

    def delete(self, ns: str, key: str) -> None:
        with self._lock:
            store = self._models.get(ns)
            if store is not None:
                store.entries.pop(key, None)

    def invalidate(self, ns: str) -> int:
        with self._lock:
            store = self._models.pop(ns, None)
            if store is None:
                return 0
            now = self._clock()
            return sum(1 for exp, _ in store.entries.values() if exp > now)

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._locks[name] = (token, now + ttl_ms / 1000.0)
            return token

    def unlock(self, name: str, token: str) -> None:
        with self._lock:
            held = self._locks.get(name)
            if held is not None and held[0] == token:
                del self._locks[name]

    # The in-process operations never block on I/O, so the async forms just call them.
    async def aget(self, ns: str, key: str) -> bytes | None:
        return self.get(ns, key)

    async def aget_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        return self.get_latest(ns, pointer)

    async def aput(
        self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None
    ) -> int:
        return self.put(ns, key, value, ttl_ms, max_entries, pointer)

    async def adelete(self, ns: str, key: str) -> None:
        self.delete(ns, key)

    async def ainvalidate(self, ns: str) -> int:
        return self.invalidate(ns)

    def close(self) -> None:
        with self._lock:
            self._models.clear()
            self._locks.clear()

    def size(self, ns: str | None = None) -> int:
        """Number of live results of one model namespace (``None``: all models)."""
        with self._lock:
            now = self._clock()
            stores = self._models.values() if ns is None else [self._models.get(ns, _ModelStore())]
            return sum(1 for s in stores for exp, _ in s.entries.values() if exp > now)

    def __len__(self) -> int:
        return self.size()


# --- Redis backend -----------------------------------------------------------------------------------------
# Scores are the server's TIME in microseconds, so several clients agree on "least recently used".
_LUA_GET = """
local v = redis.call('GET', KEYS[1])
if v then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000000 + tonumber(t[2]), KEYS[1])
else
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return v
"""

_LUA_GET_LATEST = """
local k = redis.call('HGET', KEYS[1], ARGV[1])
if not k then return false end
local v = redis.call('GET', k)
if v then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000000 + tonumber(t[2]), k)
  return {k, v}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], k)
return false
"""

# KEYS: result, lru index, latest hash, pointer index. ARGV: value, ttl ms, max entries, pointer ('' = none).
_LUA_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
local maxn = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
local evicted = 0
local n = redis.call('ZCARD', KEYS[2])
if n > maxn then
  local old = redis.call('ZPOPMIN', KEYS[2], n - maxn)
  for i = 1, #old, 2 do
    evicted = evicted + redis.call('DEL', old[i])
  end
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[4], KEYS[1])
  redis.call('ZADD', KEYS[4], now, ARGV[4])
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
  if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
  local m = redis.call('ZCARD', KEYS[4])
  if m > maxn then
    local stale = redis.call('ZPOPMIN', KEYS[4], m - maxn)
    for i = 1, #stale, 2 do
      redis.call('HDEL', KEYS[3], stale[i])
    end
  end
end
return evicted
"""

_LUA_DELETE = """
redis.call('ZREM', KEYS[2], KEYS[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: lru index, latest hash, pointer index. Returns the number of results that existed.
_LUA_INVALIDATE = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for i = 1, #members, 500 do
  n = n + redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return n
"""

_LUA_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _index_keys(ns: str) -> tuple[str, str, str]:
    return f"{ns}:~lru", f"{ns}:~latest", f"{ns}:~ptrs"


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Redis cache backend needs the 'redis' package; install it with "
            "`pip install 'twinkernel[redis]'` or set simulation_cache.backend to 'memory'"
        ) from exc
    return redis


class RedisBackend:
    """Redis storage (redis-py, sync client and ``redis.asyncio``), atomic through Lua scripts.

    No connection is made until the first call, so constructing one for a dead server is cheap; calls
    then raise and :class:`SimulationCache` falls back to no cache. redis-py's automatic retries are
    switched off so one call costs at most one socket timeout.

    Parameters
    ----------
    url
        ``redis://host:port/db``.
    socket_timeout, socket_connect_timeout
        Seconds.
    client
        An existing ``redis.Redis`` to use instead of one built from ``url`` (tests, shared pools).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 0.05,
        socket_connect_timeout: float = 0.05,
        client: Any | None = None,
    ) -> None:
        redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self._socket_timeout = socket_timeout
        self._socket_connect_timeout = socket_connect_timeout
        self._client = client or redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._get = self._client.register_script(_LUA_GET)
        self._get_latest = self._client.register_script(_LUA_GET_LATEST)
        self._put = self._client.register_script(_LUA_PUT)
        self._delete = self._client.register_script(_LUA_DELETE)
        self._invalidate = self._client.register_script(_LUA_INVALIDATE)
        self._unlock = self._client.register_script(_LUA_UNLOCK)
        # redis.asyncio connections belong to one event loop: one async client per loop.
        self._async_lock = threading.Lock()
        self._async: dict[int, tuple[Any, dict[str, Any]]] = {}

    @property
    def client(self) -> Any:
        """The synchronous ``redis.Redis`` client."""
        return self._client

    # sync ------------------------------------------------------------------------------------------------
    def get(self, ns: str, key: str) -> bytes | None:
        return self._get(keys=[key, f"{ns}:~lru"])

    def get_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        lru, latest, ptrs = _index_keys(ns)
        found = self._get_latest(keys=[latest, lru, ptrs], args=[pointer])
        return None if not found else (_text(found[0]), found[1])

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        lru, latest, ptrs = _index_keys(ns)
        return int(
            self._put(
                keys=[key, lru, latest, ptrs], args=[value, int(ttl_ms), int(max_entries), pointer or ""]
            )
        )

    def delete(self, ns: str, key: str) -> None:
        self._delete(keys=[key, f"{ns}:~lru"])

    def invalidate(self, ns: str) -> int:
        return int(self._invalidate(keys=list(_index_keys(ns))))

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        token = uuid.uuid4().hex
        return token if self._client.set(name, token, nx=True, px=int(ttl_ms)) else None

    def unlock(self, name: str, token: str) -> None:
        self._unlock(keys=[name], args=[token])

    # async -----------------------------------------------------------------------------------------------
    def _async_scripts(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async.get(id(loop))
            if entry is None or entry[0] is not loop:
                import redis.asyncio as aredis
                from redis.asyncio.retry import Retry as AsyncRetry
                from redis.backoff import NoBackoff

                client = aredis.Redis(
                    connection_pool=aredis.ConnectionPool.from_url(
                        self.url,
                        socket_timeout=self._socket_timeout,
                        socket_connect_timeout=self._socket_connect_timeout,
                        retry=AsyncRetry(NoBackoff(), 0),
                        health_check_interval=0,
                    )
                )
                scripts = {
                    "client": client,
                    "get": client.register_script(_LUA_GET),
                    "get_latest": client.register_script(_LUA_GET_LATEST),
                    "put": client.register_script(_LUA_PUT),
                    "delete": client.register_script(_LUA_DELETE),
                    "invalidate": client.register_script(_LUA_INVALIDATE),
                }
                # Forget clients of closed loops; their sockets die with the loop.
                self._async = {k: v for k, v in self._async.items() if not v[0].is_closed()}
                entry = (loop, scripts)
                self._async[id(loop)] = entry
            return entry[1]

    async def aget(self, ns: str, key: str) -> bytes | None:
        return await self._async_scripts()["get"](keys=[key, f"{ns}:~lru"])

    async def aget_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        lru, latest, ptrs = _index_keys(ns)
        found = await self._async_scripts()["get_latest"](keys=[latest, lru, ptrs], args=[pointer])
        return None if not found else (_text(found[0]), found[1])

    async def aput(
        self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None
    ) -> int:
        lru, latest, ptrs = _index_keys(ns)
        script = self._async_scripts()["put"]
        return int(
            await script(
                keys=[key, lru, latest, ptrs], args=[value, int(ttl_ms), int(max_entries), pointer or ""]
            )
        )

    async def adelete(self, ns: str, key: str) -> None:
        await self._async_scripts()["delete"](keys=[key, f"{ns}:~lru"])

    async def ainvalidate(self, ns: str) -> int:
        return int(await self._async_scripts()["invalidate"](keys=list(_index_keys(ns))))

    async def aclose(self) -> None:
        """Close the async client of the running event loop (call before the loop ends)."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async.pop(id(loop), None)
        if entry is not None:
            with contextlib.suppress(Exception):
                await entry[1]["client"].aclose()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
        with self._async_lock:
            self._async.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- circuit breaker and per-key locks ---------------------------------------------------------------------
class _CircuitBreaker:
    """Closed → open after ``failures`` consecutive errors → one trial call after ``reset_seconds``."""

    def __init__(self, failures: int, reset_seconds: float, clock: Callable[[], float]) -> None:
        self._failures = failures
        self._reset = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self._reset or self._trial_in_flight:
                return False
            self._trial_in_flight = True  # half-open: let exactly one call probe the backend
            return True

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_in_flight = False

    def failure(self) -> bool:
        """Record an error; True when this error opened (or re-opened) the breaker."""
        with self._lock:
            self._consecutive += 1
            was_trial = self._trial_in_flight
            self._trial_in_flight = False
            if was_trial or (self._opened_at is None and self._consecutive >= self._failures):
                self._opened_at = self._clock()
                return True
            return False


class _KeyedLocks:
    """One ``threading.Lock`` per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, list[Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        with self._lock:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock: threading.Lock = entry[0]
        got = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class _Unavailable(Exception):
    """The backend failed or the breaker is open: run this call without the cache."""


# --- the cache ---------------------------------------------------------------------------------------------
class SimulationCache:
    """Cache of simulation results, keyed by everything that determines a result.

    Parameters
    ----------
    config
        Settings; ``None`` reads the ``simulation_cache`` section of the default configuration.
    backend
        Storage; ``None`` builds the one ``config`` selects (:attr:`SimulationCacheConfig.resolved_backend`).
    clock
        Monotonic seconds for the circuit breaker and lock waits (tests).

    Examples
    --------
    >>> cache = SimulationCache(SimulationCacheConfig(), backend=MemoryBackend())
    >>> cache.model_namespace(None)
    'twin_sim:none'
    """

    def __init__(
        self,
        config: SimulationCacheConfig | None = None,
        backend: CacheBackend | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config if config is not None else SimulationCacheConfig.from_config()
        self.backend: CacheBackend = backend if backend is not None else _build_backend(self.config)
        self._clock = clock
        self._breaker = _CircuitBreaker(
            self.config.circuit_breaker_failures, self.config.circuit_breaker_reset_seconds, clock
        )
        self._keyed = _KeyedLocks()
        self._stats_lock = threading.Lock()
        self._counts: dict[str, int] = {f.name: 0 for f in fields(CacheStats)}
        self._degraded = False  # an error was logged and the backend has not answered since
        self._warned_decode = False

    @classmethod
    def from_config(
        cls,
        config: TwinkernelConfig | None = None,
        *,
        backend: BackendName | CacheBackend | None = None,
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
        overrides: dict[str, Any] = {}
        if redis_url is not None:
            overrides["redis_url"] = redis_url
        if isinstance(backend, str):
            overrides["backend"] = backend
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        return cls(cfg, backend if backend is not None and not isinstance(backend, str) else None)

    # keys ------------------------------------------------------------------------------------------------
    def model_namespace(self, model_id: str | UUID | None) -> str:
        """``{prefix}{model_id or 'none'}``: the prefix of every key of one model."""
        return f"{self.config.prefix}{model_id if model_id is not None else 'none'}"

    def key_for(self, request: SimulationRequest) -> str:
        """The key of ``request``'s result: ``{prefix}{model_id or 'none'}:{request.digest()}``."""
        return f"{self.model_namespace(request.model_id)}:{request.digest()}"

    @staticmethod
    def pointer_for(
        intervention_config: InterventionConfig, population_filter: PopulationFilter | None
    ) -> str:
        """Hash of the canonical config and filter: the "latest result" pointer's field."""
        pf = population_filter if population_filter is not None else PopulationFilter()
        text = f"cfg={intervention_config.canonical_json()}|filter={pf.canonical_json()}"
        return hashlib.sha256(text.encode()).hexdigest()

    @staticmethod
    def request_from_result(result: SimulationResult) -> SimulationRequest:
        """The request a result answers, rebuilt from its own fields (population fingerprint ``""``).

        Used by :meth:`cache_result` when no request is given. The heterogeneity flag is taken as "the
        result has segments" and the effect model as ``result.effect_provenance``.
        """
        return SimulationRequest(
            model_id=result.model_id,
            population_fingerprint="",
            intervention_config=result.intervention_config,
            population_filter=result.population_filter,
            confidence_level=result.confidence_level,
            ci_method=result.ci_method,
            n_resamples=result.n_resamples,
            seed=result.seed if result.seed is not None else 0,
            seed_was_given=result.seed is not None,
            calculate_heterogeneity=bool(result.effect_heterogeneity.segments()),
            kernel_version=result.kernel_version,
            effect_model_id=result.effect_provenance,
        )

    # bookkeeping -----------------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += n

    def stats(self) -> CacheStats:
        """A snapshot of the counters (``hit_rate`` is a property of the snapshot)."""
        with self._stats_lock:
            return CacheStats(**self._counts)

    def reset_stats(self) -> None:
        """Set every counter back to zero."""
        with self._stats_lock:
            self._counts = dict.fromkeys(self._counts, 0)

    @property
    def circuit_open(self) -> bool:
        """True while the circuit breaker keeps the backend out of use."""
        return self._breaker.is_open

    def _enter(self) -> None:
        if not self._breaker.allow():
            raise _Unavailable("circuit breaker open")

    def _ok(self) -> None:
        self._breaker.success()
        if self._degraded:  # unlocked fast path; the flip itself happens once, under the lock
            with self._stats_lock:
                recovered, self._degraded = self._degraded, False
            if recovered:
                logger.info("simulation cache backend %r answers again", self.backend.name)

    def _failed(self, exc: BaseException, op: str) -> _Unavailable:
        opened = self._breaker.failure()
        with self._stats_lock:
            self._counts["errors"] += 1
            first, self._degraded = not self._degraded, True
        if first:
            logger.warning(
                "simulation cache %s failed on backend %r (%s: %s); continuing without the cache",
                op,
                self.backend.name,
                type(exc).__name__,
                exc,
            )
        else:
            logger.debug("simulation cache %s failed again: %s: %s", op, type(exc).__name__, exc)
        if opened:
            logger.info(
                "simulation cache circuit breaker open for %.1f s", self.config.circuit_breaker_reset_seconds
            )
        return _Unavailable(op)

    def _call(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one backend operation; any error becomes :class:`_Unavailable` (counted, logged once)."""
        self._enter()
        try:
            out = fn(*args)
        except Exception as exc:
            raise self._failed(exc, op) from exc
        self._ok()
        return out

    async def _acall(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        self._enter()
        try:
            out = await fn(*args)
        except Exception as exc:
            raise self._failed(exc, op) from exc
        self._ok()
        return out

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

    def _ttl_ms(self, ttl_seconds: float | None) -> int:
        ttl = self.config.ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl <= 0:
            raise ValueError(f"`ttl_seconds` must be positive; got {ttl_seconds!r}")
        return max(1, round(ttl * 1000))

    def _cacheable_request(self, request: SimulationRequest) -> bool:
        return self.config.enabled and (request.seed_was_given or self.config.cache_unseeded)

    # sync operations -------------------------------------------------------------------------------------
    def _read(self, ns: str, key: str) -> SimulationResult | None:
        """Look ``key`` up; ``None`` on a miss or a bad value (deleted). Raises :class:`_Unavailable`."""
        raw = self._call("get", self.backend.get, ns, key)
        if raw is None:
            return None
        result = self._decode(raw)
        if result is None:
            with contextlib.suppress(_Unavailable):
                self._call("delete", self.backend.delete, ns, key)
        return result

    def _write(self, ns: str, key: str, result: SimulationResult, ttl_seconds: float | None) -> bool:
        """Store a completed result; False (and nothing stored) otherwise. Raises :class:`_Unavailable`."""
        if result.status != SimulationStatus.COMPLETED:
            return False
        pointer = self.pointer_for(result.intervention_config, result.population_filter)
        value = self._encode(result)
        evicted = self._call(
            "put",
            self.backend.put,
            ns,
            key,
            value,
            self._ttl_ms(ttl_seconds),
            self.config.max_cached_results,
            pointer,
        )
        self._count("stores")
        if evicted:
            self._count("evictions", evicted)
        return True

    def get_sync(self, request: SimulationRequest) -> SimulationResult | None:
        """The cached result of ``request`` (``from_cache=True``), or ``None``. Never raises for the cache."""
        if not self.config.enabled:
            return None
        try:
            result = self._read(self.model_namespace(request.model_id), self.key_for(request))
        except _Unavailable:
            self._count("bypassed")
            return None
        self._count("hits" if result is not None else "misses")
        return result

    def get_latest_sync(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None,
        model_id: str | UUID | None,
    ) -> SimulationResult | None:
        """Synchronous :meth:`get_cached_result`: the newest result for (model, config, filter)."""
        if not self.config.enabled:
            return None
        ns = self.model_namespace(model_id)
        pointer = self.pointer_for(intervention_config, population_filter)
        try:
            found = self._call("get", self.backend.get_latest, ns, pointer)
            result = None
            if found is not None:
                result = self._decode(found[1])
                if result is None:
                    with contextlib.suppress(_Unavailable):
                        self._call("delete", self.backend.delete, ns, found[0])
        except _Unavailable:
            self._count("bypassed")
            return None
        self._count("hits" if result is not None else "misses")
        return result

    def put_sync(
        self,
        result: SimulationResult,
        ttl_seconds: float | None = None,
        request: SimulationRequest | None = None,
    ) -> bool:
        """Store ``result`` under ``request``'s key (or a key rebuilt from the result); True if stored.

        Only completed results are stored. Without ``request`` the key is rebuilt from the result's
        fields with population fingerprint ``""`` (see :meth:`request_from_result`), and a result without
        a seed is refused unless ``cache_unseeded``. Never raises for the cache.
        """
        if not self.config.enabled:
            return False
        if request is None:
            if result.seed is None and not self.config.cache_unseeded:
                return False
            request = self.request_from_result(result)
        try:
            return self._write(
                self.model_namespace(request.model_id), self.key_for(request), result, ttl_seconds
            )
        except _Unavailable:
            self._count("bypassed")
            return False

    def invalidate_model_cache_sync(self, model_id: str | UUID | None) -> int:
        """Remove every cached result of ``model_id``; return how many there were (0 if unavailable)."""
        try:
            n = int(self._call("invalidate", self.backend.invalidate, self.model_namespace(model_id)))
        except _Unavailable:
            self._count("bypassed")
            return 0
        self._count("invalidations", n)
        return n

    def get_or_compute(
        self, request: SimulationRequest, compute: Callable[[], SimulationResult]
    ) -> SimulationResult:
        """The cached result of ``request``, or ``compute()``'s result, stored if completed.

        Identical concurrent calls compute once: the first takes a lock (per key in this process, and a
        Redis ``SET NX PX`` lock across processes); the others wait up to ``lock_wait_seconds`` for its
        result and then compute themselves. A cache error makes the call just ``return compute()``.
        Exceptions from ``compute`` propagate unchanged.

        Returns
        -------
        SimulationResult
            ``from_cache=True`` (same ``simulation_id`` as stored) on a hit, ``from_cache=False`` otherwise.
        """
        if not self._cacheable_request(request):
            return compute()
        ns, key = self.model_namespace(request.model_id), self.key_for(request)
        try:
            cached = self._read(ns, key)
        except _Unavailable:
            self._count("bypassed")
            return compute()
        if cached is not None:
            self._count("hits")
            return cached
        deadline = self._clock() + self.config.lock_wait_seconds
        with self._keyed.hold(key, self.config.lock_wait_seconds) as local:
            try:
                if local:  # another thread of this process may have just stored it
                    cached = self._read(ns, key)
                    if cached is not None:
                        self._count("hits")
                        return cached
                lock_name = f"{ns}:~lock:{request.digest()}"
                token = self._call("lock", self.backend.try_lock, lock_name, self.config.lock_ttl_ms)
                delay = 0.002
                while token is None and self._clock() < deadline:
                    time.sleep(min(delay, max(0.0, deadline - self._clock())))
                    delay = min(delay * 2, 0.05)
                    cached = self._read(ns, key)
                    if cached is not None:
                        self._count("hits")
                        return cached
                    token = self._call("lock", self.backend.try_lock, lock_name, self.config.lock_ttl_ms)
            except _Unavailable:
                self._count("bypassed")
                return compute()
            self._count("misses")
            try:
                result = compute()
            except BaseException:
                self._release(lock_name, token)
                raise
            with contextlib.suppress(_Unavailable):  # counted and logged by _call
                self._write(ns, key, result, None)
            self._release(lock_name, token)
        return result if not result.from_cache else result.model_copy(update={"from_cache": False})

    def _release(self, name: str, token: str | None) -> None:
        if token is not None:
            with contextlib.suppress(_Unavailable):
                self._call("unlock", self.backend.unlock, name, token)

    # async operations (the plan's interface) -------------------------------------------------------------
    async def get_cached_result(
        self,
        intervention_config: InterventionConfig,
        population_filter: PopulationFilter | None,
        model_id: str | UUID | None,
    ) -> SimulationResult | None:
        """The newest cached result for (model, canonical config, canonical filter), or ``None``.

        The plan's interface has no seed or population, so this reads the "latest result" pointer that
        every store writes; a result for another seed or population of the same model and config may be
        returned. Use :meth:`get_sync` with a full request for an exact match.
        """
        if not self.config.enabled:
            return None
        ns = self.model_namespace(model_id)
        pointer = self.pointer_for(intervention_config, population_filter)
        try:
            found = await self._acall("get", self.backend.aget_latest, ns, pointer)
            result = None
            if found is not None:
                result = self._decode(found[1])
                if result is None:
                    with contextlib.suppress(_Unavailable):
                        await self._acall("delete", self.backend.adelete, ns, found[0])
        except _Unavailable:
            self._count("bypassed")
            return None
        self._count("hits" if result is not None else "misses")
        return result

    async def cache_result(
        self,
        result: SimulationResult,
        ttl_seconds: float | None = None,
        request: SimulationRequest | None = None,
    ) -> bool:
        """Asynchronous :meth:`put_sync`."""
        if not self.config.enabled:
            return False
        if request is None:
            if result.seed is None and not self.config.cache_unseeded:
                return False
            request = self.request_from_result(result)
        if result.status != SimulationStatus.COMPLETED:
            return False
        ns, key = self.model_namespace(request.model_id), self.key_for(request)
        pointer = self.pointer_for(result.intervention_config, result.population_filter)
        try:
            evicted = await self._acall(
                "put",
                self.backend.aput,
                ns,
                key,
                self._encode(result),
                self._ttl_ms(ttl_seconds),
                self.config.max_cached_results,
                pointer,
            )
        except _Unavailable:
            self._count("bypassed")
            return False
        self._count("stores")
        if evicted:
            self._count("evictions", evicted)
        return True

    async def invalidate_model_cache(self, model_id: str | UUID | None) -> int:
        """Asynchronous :meth:`invalidate_model_cache_sync`."""
        try:
            n = int(await self._acall("invalidate", self.backend.ainvalidate, self.model_namespace(model_id)))
        except _Unavailable:
            self._count("bypassed")
            return 0
        self._count("invalidations", n)
        return n

    # lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def __enter__(self) -> SimulationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimulationCache(backend={self.backend.name!r}, prefix={self.config.prefix!r})"


def _build_backend(config: SimulationCacheConfig) -> CacheBackend:
    if config.resolved_backend == "redis":
        if not config.redis_url:
            # Services are optional: a missing URL degrades to the embedded cache, loudly.
            logger.warning(
                "simulation_cache.backend is 'redis' but no redis_url is set (simulation_cache.redis_url "
                "or TWINKERNEL_REDIS_URL); using the in-process cache"
            )
            return MemoryBackend()
        return RedisBackend(
            config.redis_url,
            socket_timeout=config.socket_timeout_seconds,
            socket_connect_timeout=config.socket_connect_timeout_seconds,
        )
    return MemoryBackend()
