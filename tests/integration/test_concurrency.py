"""Concurrency of the simulation cache (plan phase 4.1): 10 threads, no lost update, no torn read.

Each test runs on the in-process backend and on a real Redis (``TWINKERNEL_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/15``; the Redis cases skip with the reason when no server answers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_cache import make_cache, make_request, make_result, redis_available, redis_test_url
from twinkernel.models import InterventionConfig, SimulationResult, SimulationStatus
from twinkernel.simulation_cache import RedisBackend, SimulationCache

pytestmark = [pytest.mark.requires_redis, pytest.mark.xdist_group(name="digital_twin_concurrency")]

THREADS = 10


@pytest.fixture(params=["memory", "redis"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        url = redis_test_url()
        if not redis_available(url):
            pytest.skip(f"requires_redis: no redis-server answering PING within 0.2 s at {url}")
    return request.param


@pytest.fixture
def cache_factory(backend_kind: str) -> Iterator[Callable[..., SimulationCache]]:
    made: list[SimulationCache] = []

    def build(**overrides: Any) -> SimulationCache:
        c = make_cache(backend_kind, **overrides)
        made.append(c)
        return c

    yield build
    for c in made:
        if isinstance(c.backend, RedisBackend):
            keys = list(c.backend.client.scan_iter(match=f"{c.config.key_prefix}*", count=500))
            if keys:
                c.backend.client.delete(*keys)
        c.close()


def run_threads(fn: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; return the results in thread order."""
    barrier = threading.Barrier(n)

    def task(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(task, range(n)))


def live_keys(cache: SimulationCache, model_id: str = "model-a") -> int:
    ns = cache.model_namespace(model_id)
    if isinstance(cache.backend, RedisBackend):
        client = cache.backend.client
        return sum(1 for k in client.scan_iter(match=f"{ns}:*", count=1000) if b":~" not in k)
    return cache.backend.size(ns)  # type: ignore[attr-defined]


def test_concurrent_cache_reads(cache_factory: Callable[..., SimulationCache]) -> None:
    cache = cache_factory()
    requests = [make_request(seed=s) for s in range(5)]
    expected = {r.seed: make_result(seed=r.seed, ate=0.01 * (r.seed + 1), rng_seed=r.seed) for r in requests}
    for r in requests:
        assert cache.put_sync(expected[r.seed])

    def reader(i: int) -> list[bool]:
        rng = np.random.default_rng(i)
        ok = []
        for s in rng.integers(0, 5, 40):
            got = cache.get_sync(requests[int(s)])
            want = expected[int(s)]
            ok.append(got is not None and got == want.model_copy(update={"from_cache": True}))
        return ok

    results = run_threads(reader)
    assert all(all(r) for r in results)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (THREADS * 40, 0, 0)


def test_concurrent_cache_writes(cache_factory: Callable[..., SimulationCache]) -> None:
    cache = cache_factory(max_cached_results=50)
    # One key written by every thread, in another model so model-a's LRU accounting stays exact.
    shared = make_request(model_id="model-b", seed=1000)
    candidates = {
        i: make_result(model_id="model-b", seed=1000, ate=0.001 * (i + 1), rng_seed=i) for i in range(THREADS)
    }

    def writer(i: int) -> int:
        stored = 0
        for j in range(20):  # 20 distinct results per thread, 200 in all, bound 50
            seed = i * 100 + j
            stored += cache.put_sync(make_result(seed=seed, ate=seed / 1e4))
            if j % 5 == 0:
                stored += cache.put_sync(candidates[i])
        return stored

    assert sum(run_threads(writer)) == THREADS * 24
    stats = cache.stats()
    assert stats.errors == 0 and stats.stores == THREADS * 24
    # The bound holds exactly: every write beyond it evicted one result, none was lost or duplicated.
    assert live_keys(cache) == 50
    assert live_keys(cache, "model-b") == 1
    assert stats.evictions == THREADS * 20 - 50
    if isinstance(cache.backend, RedisBackend):
        assert cache.backend.client.zcard(f"{cache.model_namespace('model-a')}:~lru") == 50
    # Whatever survived is intact: each value is exactly the one written under its key.
    survivors = 0
    for i in range(THREADS):
        for j in range(20):
            seed = i * 100 + j
            got = cache.get_sync(make_request(seed=seed))
            if got is not None:
                survivors += 1
                assert got.seed == seed and got.simulated_ate == seed / 1e4
    assert survivors == 50
    got = cache.get_sync(shared)
    assert got is not None
    assert any(got == c.model_copy(update={"from_cache": True}) for c in candidates.values())


def test_cache_invalidation_during_read(cache_factory: Callable[..., SimulationCache]) -> None:
    cache = cache_factory()
    requests = [make_request(seed=s) for s in range(4)]
    versions = {r.seed: make_result(seed=r.seed, ate=0.02 + r.seed / 100, rng_seed=r.seed) for r in requests}
    stop = threading.Event()
    invalidated: list[int] = []

    def invalidator() -> None:
        while not stop.is_set():
            for r in requests:
                cache.put_sync(versions[r.seed])
            invalidated.append(cache.invalidate_model_cache_sync("model-a"))

    def reader(i: int) -> tuple[int, int, int]:
        seen = missing = bad = 0
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            r = requests[i % 4]
            got = cache.get_sync(r)
            if got is None:
                missing += 1
            elif got == versions[r.seed].model_copy(update={"from_cache": True}):
                seen += 1
            else:
                bad += 1
        return seen, missing, bad

    t = threading.Thread(target=invalidator)
    t.start()
    try:
        counts = run_threads(reader, THREADS - 1)
    finally:
        stop.set()
        t.join()
    assert sum(c[2] for c in counts) == 0  # never a torn or foreign value
    assert sum(c[0] + c[1] for c in counts) > 0
    assert len(invalidated) > 0 and all(0 <= n <= 4 for n in invalidated)
    # Consistent end state: the index and the data agree.
    assert live_keys(cache) == 0
    assert cache.invalidate_model_cache_sync("model-a") == 0
    for r in requests:
        cache.put_sync(versions[r.seed])
    assert cache.invalidate_model_cache_sync("model-a") == 4
    assert cache.stats().errors == 0


class SlowCompute:
    """Counts calls; holds each call long enough for the other threads to arrive."""

    def __init__(self, result: SimulationResult, delay: float = 0.05) -> None:
        self.result, self.delay, self.calls = result, delay, 0
        self._lock = threading.Lock()

    def __call__(self) -> SimulationResult:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.result


def test_concurrent_simulations(cache_factory: Callable[..., SimulationCache]) -> None:
    cache = cache_factory()
    # 10 identical requests: computed once, the others wait and reuse it.
    request = make_request(seed=42)
    compute = SlowCompute(make_result(seed=42))
    outs = run_threads(lambda i: cache.get_or_compute(request, compute))
    assert compute.calls == 1
    assert {o.simulation_id for o in outs} == {compute.result.simulation_id}
    assert sorted(o.from_cache for o in outs) == [False] + [True] * (THREADS - 1)
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.stores) == (1, THREADS - 1, 1)
    # 10 different requests at once: independent, each equal to its sequential run.
    sequential = {s: make_result(seed=s, ate=s / 1000, rng_seed=s) for s in range(THREADS)}
    computes = {s: SlowCompute(sequential[s], delay=0.01) for s in range(THREADS)}
    outs = run_threads(lambda i: cache.get_or_compute(make_request(seed=i), computes[i]))
    for i, out in enumerate(outs):
        assert out == sequential[i] and computes[i].calls == 1


def test_single_flight_across_processes_uses_redis_lock() -> None:
    url = redis_test_url()
    if not redis_available(url):
        pytest.skip(f"requires_redis: no redis-server answering PING within 0.2 s at {url}")
    # Two cache objects with their own in-process locks stand for two processes sharing one Redis.
    first = make_cache("redis")
    second = make_cache("redis", prefix=first.config.key_prefix)
    try:
        request = make_request(seed=5)
        compute = SlowCompute(make_result(seed=5), delay=0.1)
        outs = run_threads(lambda i: (first if i % 2 else second).get_or_compute(request, compute))
        assert compute.calls == 1
        assert {o.simulation_id for o in outs} == {compute.result.simulation_id}
        assert first.stats().hits + second.stats().hits == THREADS - 1
    finally:
        first.invalidate_model_cache_sync("model-a")
        first.close()
        second.close()


def test_bounded_wait_falls_back_to_computing(cache_factory: Callable[..., SimulationCache]) -> None:
    cache = cache_factory(lock_wait_seconds=0.2, lock_ttl_ms=60_000)
    request = make_request(seed=6)
    digest = request.digest()
    # A holder that died without storing: its lock stays until lock_ttl_ms.
    assert cache.backend.try_lock(f"{cache.model_namespace('model-a')}:~lock:{digest}", 60_000) is not None
    compute = SlowCompute(make_result(seed=6), delay=0.0)
    t0 = time.perf_counter()
    out = cache.get_or_compute(request, compute)
    waited = time.perf_counter() - t0
    assert compute.calls == 1 and out.from_cache is False
    assert 0.18 <= waited < 1.0
    assert cache.get_sync(request) is not None  # stored anyway


# --- with the real engine ----------------------------------------------------------------------------------
def engine_population() -> Any:
    from twinkernel import TwinPopulation

    rng = np.random.default_rng(11)
    n = 2000
    return TwinPopulation.from_numpy(
        {
            "decile": rng.integers(1, 11, n),
            "digital_engagement_score": rng.random(n),
            "adoption_stage": np.array(
                ["innovator", "early_adopter", "early_majority", "late_majority", "laggard"]
            )[rng.integers(0, 5, n)],
            "priority_tier": rng.integers(1, 6, n),
            "peer_influence_score": rng.random(n),
            "baseline_propensity": rng.uniform(0.1, 0.9, n),
            "baseline_outcome": rng.normal(0.3, 0.08, n),
            "specialty": np.array(["oncology", "cardiology", "primary_care"])[rng.integers(0, 3, n)],
            "region": np.array(["northeast", "south", "west"])[rng.integers(0, 3, n)],
        },
        model_id="concurrency-model",
    )


def _numbers(r: SimulationResult) -> tuple[Any, ...]:
    return (r.simulated_ate, r.simulated_ci_lower, r.simulated_ci_upper, r.twin_count, r.effect_heterogeneity)


def test_concurrent_engine_simulations(cache_factory: Callable[..., SimulationCache]) -> None:
    from twinkernel import SimulationEngine

    cache = cache_factory()
    population = engine_population()
    engine = SimulationEngine(population, cache=cache)
    reference_engine = SimulationEngine(population)
    cfg = InterventionConfig(intervention_type="speaker_program_invitation", duration_weeks=4)
    reference = {s: reference_engine.simulate(cfg, seed=s, use_cache=False) for s in (7, 8, 9)}
    # 10 threads, one identical seeded request: computed once.
    outs = run_threads(lambda i: engine.simulate(cfg, seed=7))
    assert all(o.status == SimulationStatus.COMPLETED for o in outs)
    assert len({o.simulation_id for o in outs}) == 1
    assert sum(not o.from_cache for o in outs) == 1
    assert all(_numbers(o) == _numbers(reference[7]) for o in outs)
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.stores) == (1, THREADS - 1, 1)
    # Mixed seeds: each result equals its sequential run.
    outs = run_threads(lambda i: (i, engine.simulate(cfg, seed=(7, 8, 9)[i % 3])))
    for i, out in outs:
        assert _numbers(out) == _numbers(reference[(7, 8, 9)[i % 3]])
    assert cache.stats().stores == 3
