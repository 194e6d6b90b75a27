"""Keeping a failing backend from failing simulations: circuit breaker, outage log, keyed locks.

:class:`BackendGuard` runs every backend operation: an error is counted, logged once per outage (the
first failure at WARNING, later ones at DEBUG, recovery once at INFO on the ``twinkernel.cache`` logger)
and turned into :class:`Unavailable`, which the cache answers by running that call without the cache.
After ``circuit_breaker_failures`` consecutive errors the breaker keeps the backend out of use for
``circuit_breaker_reset_seconds``, then lets one trial call through.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["BackendGuard", "CircuitBreaker", "KeyedLocks", "Unavailable"]

logger = logging.getLogger("twinkernel.cache")

T = TypeVar("T")


class Unavailable(Exception):
    """The backend failed or the breaker is open: run this call without the cache."""


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive errors → one trial call after ``reset_seconds``.

    Examples
    --------
    >>> now = [0.0]
    >>> b = CircuitBreaker(failures=2, reset_seconds=10.0, clock=lambda: now[0])
    >>> b.failure(), b.failure(), b.allow()
    (False, True, False)
    >>> now[0] = 11.0
    >>> b.allow(), b.allow()
    (True, False)
    """

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
        """True while the backend is kept out of use (including while a trial call runs)."""
        with self._lock:
            return self._opened_at is not None

    def allow(self) -> bool:
        """May a call go to the backend now?"""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self._reset or self._trial_in_flight:
                return False
            self._trial_in_flight = True  # half-open: exactly one call probes the backend
            return True

    def success(self) -> None:
        """Record a successful call: the breaker closes."""
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


class BackendGuard:
    """Run backend operations through a circuit breaker, counting errors and logging once per outage.

    Parameters
    ----------
    backend_name
        Named in log messages.
    failures, reset_seconds, clock
        The circuit breaker's settings and clock.
    on_error
        Called once per failed operation (the cache counts ``errors`` with it).
    """

    def __init__(
        self,
        backend_name: str,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float],
        on_error: Callable[[], None],
    ) -> None:
        self._name = backend_name
        self._breaker = CircuitBreaker(failures, reset_seconds, clock)
        self._reset = reset_seconds
        self._on_error = on_error
        self._lock = threading.Lock()
        self._outage_failures = 0  # failed calls since the outage began; 0 when the backend answers

    @property
    def circuit_open(self) -> bool:
        """True while the circuit breaker keeps the backend out of use."""
        return self._breaker.is_open

    @property
    def in_outage(self) -> bool:
        """True from the first failure until the backend answers again."""
        with self._lock:
            return self._outage_failures > 0

    def call(self, op: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``; any error (or an open breaker) becomes :class:`Unavailable`."""
        if not self._breaker.allow():
            raise Unavailable("circuit breaker open")
        try:
            out = fn(*args)
        except Exception as exc:
            self._failed(exc, op)
            raise Unavailable(op) from exc
        self._succeeded()
        return out

    def _succeeded(self) -> None:
        self._breaker.success()
        if self._outage_failures == 0:  # unlocked fast path; the flip itself happens once, under the lock
            return
        with self._lock:
            failed, self._outage_failures = self._outage_failures, 0
        if failed > 0:
            logger.info(
                "simulation cache backend %r answers again (after %d failed calls)", self._name, failed
            )

    def _failed(self, exc: BaseException, op: str) -> None:
        opened = self._breaker.failure()
        self._on_error()
        with self._lock:
            self._outage_failures += 1
            first = self._outage_failures == 1
        if first:
            logger.warning(
                "simulation cache %s failed on backend %r (%s: %s); continuing without the cache "
                "(further failures of this outage are only counted)",
                op,
                self._name,
                type(exc).__name__,
                exc,
            )
        else:
            logger.debug("simulation cache %s failed again: %s: %s", op, type(exc).__name__, exc)
        if opened:
            logger.debug("simulation cache circuit breaker open for %.1f s", self._reset)


class KeyedLocks:
    """One ``threading.Lock`` per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, list[Any]] = {}

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        """Hold the lock of ``key`` for the ``with`` block; yields False if not acquired in ``timeout``."""
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

    def __len__(self) -> int:
        with self._lock:
            return len(self._locks)
