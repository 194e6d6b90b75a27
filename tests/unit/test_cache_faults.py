"""Cache faults: a simulation never fails because of the cache (plan 4.2 ``test_redis_connection_timeout``).

Refused connections, a server that hangs past the socket timeout, a server answering garbage, junk
values, and a Redis that dies mid-run (a throwaway ``redis-server`` on a free port, never the shared one)
all make the call run without the cache; the error is counted and logged once, and the circuit breaker
stops further attempts until it resets.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.bench_cache import make_request, make_result, redis_available, redis_test_url
from twinkernel.models import SimulationResult
from twinkernel.simulation_cache import MemoryBackend, RedisBackend, SimulationCache, SimulationCacheConfig

TIMEOUT = SimulationCacheConfig().socket_timeout_seconds  # the configured socket timeout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    def __init__(self, result: SimulationResult | None = None) -> None:
        self.result = result or make_result()
        self.calls = 0

    def __call__(self) -> SimulationResult:
        self.calls += 1
        return self.result


class FakeServer:
    """A TCP server on 127.0.0.1 that accepts connections and either never answers or answers junk."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.02)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            if self.reply is not None:
                with _suppress_os():
                    conn.recv(4096)
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for c in [*self.conns, self.sock]:
            with _suppress_os():
                c.close()


class _suppress_os:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


def redis_cache(url: str, **overrides: Any) -> SimulationCache:
    settings: dict[str, Any] = {
        "redis_url": url,
        "socket_timeout_seconds": TIMEOUT,
        "socket_connect_timeout_seconds": TIMEOUT,
        "key_prefix": "twin_sim_faults:",
        **overrides,
    }
    cfg = SimulationCacheConfig(**settings)
    return SimulationCache(cfg)  # the backend the config selects: Redis with the configured timeouts


@pytest.fixture
def hanging_server() -> Iterator[FakeServer]:
    server = FakeServer(reply=None)
    yield server
    server.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "twinkernel.cache" and r.levelno == logging.WARNING]


def test_redis_connection_refused_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    cache = redis_cache(f"redis://127.0.0.1:{free_port()}/0", circuit_breaker_failures=3)
    assert isinstance(cache.backend, RedisBackend)
    compute = Counter()
    with caplog.at_level(logging.DEBUG, logger="twinkernel.cache"):
        results = [cache.get_or_compute(make_request(), compute) for _ in range(6)]
    assert compute.calls == 6
    assert all(r.simulation_id == compute.result.simulation_id and not r.from_cache for r in results)
    stats = cache.stats()
    assert stats.errors == 3  # then the breaker stopped trying
    assert stats.bypassed == 6 and stats.hits == 0 and stats.misses == 0
    assert cache.circuit_open
    assert len(warnings_of(caplog)) == 1
    assert "ConnectionError" in warnings_of(caplog)[0].getMessage()
    assert records_at(caplog, logging.INFO) == []  # no recovery, and an opening breaker is only DEBUG
    assert len(records_at(caplog, logging.DEBUG)) >= 2  # the later failures, counted and at DEBUG
    assert cache.put_sync(make_result()) is False
    assert cache.get_sync(make_request()) is None
    assert cache.invalidate_model_cache_sync("model-a") == 0


def test_redis_connection_timeout(hanging_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    cache = redis_cache(f"redis://127.0.0.1:{hanging_server.port}/0", circuit_breaker_failures=2)
    compute = Counter()
    durations = []
    with caplog.at_level(logging.WARNING, logger="twinkernel.cache"):
        for _ in range(5):
            t0 = time.perf_counter()
            out = cache.get_or_compute(make_request(), compute)
            durations.append(time.perf_counter() - t0)
            assert out.simulation_id == compute.result.simulation_id and out.from_cache is False
    assert compute.calls == 5
    assert cache.stats().errors == 2 and cache.circuit_open
    # The first call waited out the socket timeout (a lower bound, safe on a loaded machine); redis-py's
    # retries are off, so each failing call opened at most one connection and the open breaker none.
    assert durations[0] >= TIMEOUT * 0.8
    assert hanging_server.accepted <= 2
    accepted = hanging_server.accepted
    assert [cache.get_or_compute(make_request(), compute).from_cache for _ in range(3)] == [False] * 3
    assert hanging_server.accepted == accepted and cache.stats().errors == 2
    assert len(warnings_of(caplog)) == 1
    assert "Timeout" in warnings_of(caplog)[0].getMessage()


def test_async_interface_times_out_to_none(hanging_server: FakeServer) -> None:
    cache = redis_cache(f"redis://127.0.0.1:{hanging_server.port}/0", circuit_breaker_failures=5)
    cfg = make_request().intervention_config

    async def scenario() -> tuple[Any, bool, int, int]:
        ticks = 0

        async def ticker() -> None:  # proves the event loop kept running while Redis hung
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        got = await cache.get_cached_result(cfg, None, "model-a")
        stored = await cache.cache_result(make_result())
        removed = await cache.invalidate_model_cache("model-a")
        task.cancel()
        return got, stored, removed, ticks

    got, stored, removed, ticks = asyncio.run(scenario())
    assert (got, stored, removed) == (None, False, 0)
    stats = cache.stats()
    assert (stats.errors, stats.bypassed) == (3, 3)
    assert ticks > 3


def test_redis_returning_garbage_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer(reply=b"?this is not RESP\r\n")
    try:
        cache = redis_cache(f"redis://127.0.0.1:{server.port}/0")
        compute = Counter()
        with caplog.at_level(logging.WARNING, logger="twinkernel.cache"):
            out = cache.get_or_compute(make_request(), compute)
        assert out.simulation_id == compute.result.simulation_id and compute.calls == 1
        assert cache.stats().errors == 1
        assert len(warnings_of(caplog)) == 1
    finally:
        server.close()


class FlakyBackend(MemoryBackend):
    """A memory backend whose "client" starts failing when ``down`` is set (a server stopped mid-run)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    def _check(self) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("server went away")

    def get(self, ns: str, key: str) -> bytes | None:
        self._check()
        return super().get(ns, key)

    def put(self, ns: str, key: str, value: bytes, ttl_ms: int, max_entries: int, pointer: str | None) -> int:
        self._check()
        return super().put(ns, key, value, ttl_ms, max_entries, pointer)

    def try_lock(self, name: str, ttl_ms: int) -> str | None:
        self._check()
        return super().try_lock(name, ttl_ms)


def test_backend_failing_mid_run_and_circuit_breaker_recovery(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    backend = FlakyBackend()
    cfg = SimulationCacheConfig(circuit_breaker_failures=2, circuit_breaker_reset_seconds=30.0)
    cache = SimulationCache(cfg, backend, clock=lambda: now[0])
    request, compute = make_request(), Counter()
    assert cache.get_or_compute(request, compute).from_cache is False
    assert cache.get_or_compute(request, compute).from_cache is True
    backend.down = True
    with caplog.at_level(logging.INFO, logger="twinkernel.cache"):
        outs = [cache.get_or_compute(request, compute) for _ in range(4)]
        assert [o.from_cache for o in outs] == [False] * 4 and compute.calls == 5
        # 5 attempts by the two good calls (get, get again under the lock, lock, put; get), then one
        # failing get per call until the breaker opens after 2.
        assert cache.circuit_open and backend.attempts == 5 + 2
        now[0] += 31.0  # half-open: exactly one trial call
        cache.get_or_compute(request, compute)
        assert backend.attempts == 8 and cache.circuit_open
        cache.get_or_compute(request, compute)
        assert backend.attempts == 8  # reopened, no new attempt
        backend.down = False
        now[0] += 31.0
        out = cache.get_or_compute(request, compute)
    assert out.from_cache is True and not cache.circuit_open
    assert len(warnings_of(caplog)) == 1
    assert [r.getMessage() for r in records_at(caplog, logging.INFO)] == [
        "simulation cache backend 'memory' answers again (after 3 failed calls)"
    ]
    assert cache.stats().errors == 3


def records_at(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "twinkernel.cache" and r.levelno == level]


def test_one_warning_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    # Defect: with the backend dead, every re-opening of the breaker logged again (INFO), and a new outage
    # after a recovery must warn again: one WARNING and one INFO per outage, the rest DEBUG and counted.
    now = [0.0]
    backend = FlakyBackend()
    cfg = SimulationCacheConfig(circuit_breaker_failures=2, circuit_breaker_reset_seconds=10.0)
    cache = SimulationCache(cfg, backend, clock=lambda: now[0])
    request, compute = make_request(), Counter()
    with caplog.at_level(logging.DEBUG, logger="twinkernel.cache"):
        for outage in range(2):
            backend.down = True
            for _ in range(4):  # trial calls re-open the breaker each time
                for _ in range(3):
                    assert cache.get_or_compute(request, compute).from_cache is False
                now[0] += 11.0
            assert cache.circuit_open
            backend.down = False
            cache.get_or_compute(request, compute)
            assert not cache.circuit_open
            assert len(records_at(caplog, logging.WARNING)) == outage + 1
            assert len(records_at(caplog, logging.INFO)) == outage + 1
    stats = cache.stats()
    # Per outage: 2 errors open the breaker, then 3 failed trial calls re-open it.
    assert stats.errors == 2 * 5
    assert len(records_at(caplog, logging.DEBUG)) >= stats.errors - 2
    assert stats.bypassed == 2 * 12
    warnings = [r.getMessage() for r in records_at(caplog, logging.WARNING)]
    assert all("ConnectionError: server went away" in m for m in warnings)


def test_compute_exception_propagates_and_releases_lock() -> None:
    cache = SimulationCache(SimulationCacheConfig(lock_wait_seconds=0.5), MemoryBackend())
    request = make_request()

    def boom() -> SimulationResult:
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):
        cache.get_or_compute(request, boom)
    # Both locks are free again: the backend's single-flight lock and the in-process one.
    lock_name = f"{cache.model_namespace(request.model_id)}:~lock:{request.digest()}"
    token = cache.backend.try_lock(lock_name, 1000)
    assert token is not None
    cache.backend.unlock(lock_name, token)
    assert len(cache._keyed) == 0
    compute = Counter()
    assert cache.get_or_compute(request, compute).from_cache is False
    assert compute.calls == 1 and cache.stats().errors == 0
    assert cache.get_or_compute(request, compute).from_cache is True


# --- junk values and a real server dying mid-run ------------------------------------------------------------
@pytest.mark.requires_redis
def test_garbage_value_in_redis_is_deleted() -> None:
    url = redis_test_url()
    if not redis_available(url):
        pytest.skip(f"requires_redis: no redis-server answering PING within 0.2 s at {url}")
    cache = SimulationCache(SimulationCacheConfig(redis_url=url, key_prefix=f"twin_sim_junk:{free_port()}:"))
    request = make_request()
    key = cache.key_for(request)
    client = cache.backend.client  # type: ignore[attr-defined]
    try:
        client.set(key, b"\x00\xffgarbage", px=60_000)
        compute = Counter()
        out = cache.get_or_compute(request, compute)
        assert out.from_cache is False and compute.calls == 1
        stats = cache.stats()
        assert (stats.decode_errors, stats.misses, stats.errors) == (1, 1, 0)
        assert cache.get_or_compute(request, compute).from_cache is True  # replaced by a valid value
    finally:
        keys = list(client.scan_iter(match=f"{cache.config.prefix}*"))
        if keys:
            client.delete(*keys)
        cache.close()


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    assert exe is not None
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5.0
    while not redis_available(f"redis://127.0.0.1:{port}/0", timeout=0.1):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.skip(f"requires_redis: could not start a throwaway redis-server on port {port}")
        time.sleep(0.01)
    return proc


@pytest.mark.requires_redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="requires_redis: no redis-server binary")
def test_redis_stopped_mid_run(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    proc = _start_redis(port)
    try:
        cache = redis_cache(
            f"redis://127.0.0.1:{port}/0",
            circuit_breaker_failures=2,
            circuit_breaker_reset_seconds=0.2,
            socket_timeout_seconds=0.5,
        )
        request, compute = make_request(), Counter()
        assert cache.get_or_compute(request, compute).from_cache is False
        assert cache.get_or_compute(request, compute).from_cache is True
        proc.kill()
        proc.wait(5)
        with caplog.at_level(logging.INFO, logger="twinkernel.cache"):
            outs = [cache.get_or_compute(request, compute) for _ in range(5)]
            assert all(o.simulation_id == compute.result.simulation_id for o in outs)
            assert [o.from_cache for o in outs] == [False] * 5 and compute.calls == 6
            assert cache.stats().errors == 2 and cache.circuit_open
            proc = _start_redis(port)  # back, empty (no persistence)
            time.sleep(0.25)
            assert cache.get_or_compute(request, compute).from_cache is False  # computed and stored again
            assert cache.get_or_compute(request, compute).from_cache is True
        assert not cache.circuit_open
        assert len(warnings_of(caplog)) == 1
        assert any("answers again" in r.getMessage() for r in caplog.records)
        cache.close()
    finally:
        proc.kill()
        proc.wait(5)
