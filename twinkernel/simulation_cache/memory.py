"""The embedded backend: a thread-safe in-process LRU with per-entry TTL, bounded per model."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MemoryBackend"]


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
        """The value under ``key`` (marking it recently used), or ``None`` if absent or expired."""
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
        """``(key, value)`` of the newest live result stored with ``pointer``, or ``None``."""
        with self._lock:
            store = self._models.get(ns)
            key = store.latest.get(pointer) if store is not None else None
        if key is None:
            return None
        value = self.get(ns, key)
        return None if value is None else (key, value)

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        """Store ``value`` for ``ttl_ms``; evict least recently used results beyond ``max_entries``."""
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
        """Remove one result."""
        with self._lock:
            store = self._models.get(ns)
            if store is not None:
                store.entries.pop(key, None)

    def invalidate(self, ns: str) -> int:
        """Remove every result of ``ns``; return how many live ones there were."""
        with self._lock:
            store = self._models.pop(ns, None)
            if store is None:
                return 0
            now = self._clock()
            return sum(1 for exp, _ in store.entries.values() if exp > now)

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        """Take the lock ``name`` for ``ttl_ms`` if free; return its token, else ``None``."""
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._locks[name] = (token, now + ttl_ms / 1000.0)
            return token

    def unlock(self, name: str, token: str) -> None:
        """Release the lock ``name`` if ``token`` still owns it."""
        with self._lock:
            held = self._locks.get(name)
            if held is not None and held[0] == token:
                del self._locks[name]

    def close(self) -> None:
        """Drop everything."""
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
