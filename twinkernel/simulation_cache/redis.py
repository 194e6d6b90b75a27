"""Redis backend (redis-py), atomic through the Lua scripts in ``lua/``.

Every multi-key update is one script, so readers never see a half-applied store, eviction or
invalidation. The scripts address keys they read from a model's index, so use a standalone Redis, not a
cluster. The client is synchronous and thread-safe (a connection pool); the cache's async interface runs
it in a worker thread, which keeps one implementation and avoids ``redis.asyncio`` clients being bound to
a single event loop.
"""

from __future__ import annotations

import contextlib
import uuid
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .keys import index_keys

if TYPE_CHECKING:
    from .config import SimulationCacheConfig

__all__ = ["LUA_SCRIPTS", "RedisBackend", "lua_script"]

LUA_SCRIPTS = ("get", "get_latest", "put", "delete", "invalidate", "unlock")
"""Names of the scripts shipped in ``twinkernel/simulation_cache/lua/<name>.lua``."""


@cache
def lua_script(name: str) -> str:
    """The source of the packaged Lua script ``name`` (one of :data:`LUA_SCRIPTS`)."""
    if name not in LUA_SCRIPTS:
        raise ValueError(f"`name` must be one of {', '.join(LUA_SCRIPTS)}; got {name!r}")
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Redis cache backend needs the 'redis' package; install it with "
            "`pip install 'twinkernel[redis]'` or set simulation_cache.backend to 'memory'"
        ) from exc
    return redis


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend:
    """Redis storage for the simulation cache.

    No connection is made until the first call, so constructing one for a dead server is cheap; calls
    then raise and the cache falls back to no cache. redis-py's automatic retries are switched off so one
    call costs at most one socket timeout.

    Parameters
    ----------
    url
        ``redis://host:port/db``.
    socket_timeout, socket_connect_timeout
        Seconds; ``None`` takes ``simulation_cache.socket_timeout_seconds`` /
        ``socket_connect_timeout_seconds`` from the configuration.
    client
        An existing ``redis.Redis`` to use instead of one built from ``url`` (tests, shared pools).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float | None = None,
        socket_connect_timeout: float | None = None,
        client: Any | None = None,
    ) -> None:
        redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if socket_timeout is None or socket_connect_timeout is None:
            from .config import SimulationCacheConfig

            defaults = SimulationCacheConfig()
            socket_timeout = defaults.socket_timeout_seconds if socket_timeout is None else socket_timeout
            if socket_connect_timeout is None:
                socket_connect_timeout = defaults.socket_connect_timeout_seconds
        self.url = url
        self._client = (
            client
            if client is not None
            else redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
        )
        self._scripts = {name: self._client.register_script(lua_script(name)) for name in LUA_SCRIPTS}

    @classmethod
    def from_config(cls, config: SimulationCacheConfig) -> RedisBackend:
        """The backend ``config`` describes (its ``redis_url`` must be set)."""
        if config.redis_url is None:
            raise ValueError("`redis_url` must be set for the Redis backend; got None")
        return cls(
            config.redis_url,
            socket_timeout=config.socket_timeout_seconds,
            socket_connect_timeout=config.socket_connect_timeout_seconds,
        )

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client."""
        return self._client

    def get(self, ns: str, key: str) -> bytes | None:
        """The value under ``key`` (touching its LRU entry), or ``None``."""
        lru = index_keys(ns)[0]
        out: bytes | None = self._scripts["get"](keys=[key, lru])
        return out

    def get_latest(self, ns: str, pointer: str) -> tuple[str, bytes] | None:
        """``(key, value)`` of the newest result stored with ``pointer``, or ``None``."""
        lru, latest, ptrs = index_keys(ns)
        found = self._scripts["get_latest"](keys=[latest, lru, ptrs], args=[pointer])
        return None if not found else (_text(found[0]), found[1])

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        """Store ``value`` and bound the model's LRU index in one script; return the number evicted."""
        lru, latest, ptrs = index_keys(ns)
        args = [value, int(ttl_ms), int(max_entries), pointer if pointer is not None else ""]
        return int(self._scripts["put"](keys=[key, lru, latest, ptrs], args=args))

    def delete(self, ns: str, key: str) -> None:
        """Remove one result and its LRU entry."""
        self._scripts["delete"](keys=[key, index_keys(ns)[0]])

    def invalidate(self, ns: str) -> int:
        """Remove every result of ``ns`` and its indexes; return how many results existed."""
        return int(self._scripts["invalidate"](keys=list(index_keys(ns))))

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        """``SET name token NX PX ttl_ms``: the token if taken, else ``None``."""
        token = uuid.uuid4().hex
        return token if self._client.set(name, token, nx=True, px=int(ttl_ms)) else None

    def unlock(self, name: str, token: str) -> None:
        """Compare-and-delete the lock ``name``."""
        self._scripts["unlock"](keys=[name], args=[token])

    def close(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(Exception):
            self._client.close()
