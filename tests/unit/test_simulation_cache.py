"""Simulation result cache (plan phase 5.3), run for both backends.

The Redis cases need a server at ``TWINKERNEL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``);
without one they skip with the reason. Every test uses its own key prefix and removes its keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_cache import make_cache, make_request, make_result, redis_available, redis_test_url
from twinkernel.config import ConfigError, config_from_mapping, get_config
from twinkernel.models import InterventionConfig, PopulationFilter, SimulationResult, SimulationStatus
from twinkernel.simulation_cache import (
    CacheStats,
    MemoryBackend,
    RedisBackend,
    SimulationCache,
    SimulationCacheConfig,
)

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.requires_redis)]


def require_redis() -> str:
    url = redis_test_url()
    if not redis_available(url):
        pytest.skip(f"requires_redis: no redis-server answering PING within 0.2 s at {url}")
    return url


def drop_prefix(cache: SimulationCache) -> None:
    """Delete every key under the cache's prefix (Redis) so tests leave nothing behind."""
    if isinstance(cache.backend, RedisBackend):
        client = cache.backend.client
        keys = list(client.scan_iter(match=f"{cache.config.key_prefix}*", count=500))
        if keys:
            client.delete(*keys)
    cache.close()


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_redis()
    return request.param


@pytest.fixture
def cache_factory(backend_kind: str) -> Iterator[Any]:
    made: list[SimulationCache] = []

    def build(**overrides: Any) -> SimulationCache:
        c = make_cache(backend_kind, **overrides)
        made.append(c)
        return c

    yield build
    for c in made:
        drop_prefix(c)


@pytest.fixture
def cache(cache_factory: Any) -> SimulationCache:
    return cache_factory()


class Counter:
    """A ``compute`` callable that counts its calls and returns a fixed result."""

    def __init__(self, result: SimulationResult) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> SimulationResult:
        self.calls += 1
        return self.result


def without_flag(result: SimulationResult) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude={"from_cache"})


# --- the plan's five tests ---------------------------------------------------------------------------------
def test_cache_hit_returns_result(cache: SimulationCache) -> None:
    request, result = make_request(), make_result()
    compute = Counter(result)
    first = cache.get_or_compute(request, compute)
    second = cache.get_or_compute(request, compute)
    assert compute.calls == 1
    assert first.from_cache is False
    assert second.from_cache is True
    assert second.simulation_id == result.simulation_id
    assert without_flag(second) == without_flag(result)
    assert second.effect_heterogeneity.get_top_segments(3) == result.effect_heterogeneity.get_top_segments(3)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.stores, stats.errors) == (1, 1, 1, 0)
    assert stats.hit_rate == 0.5


def test_cache_miss_executes_simulation(cache: SimulationCache) -> None:
    request, result = make_request(), make_result()
    compute = Counter(result)
    assert cache.get_sync(request) is None
    out = cache.get_or_compute(request, compute)
    assert compute.calls == 1
    assert out is result and out.from_cache is False
    stored = cache.get_sync(request)
    assert stored is not None and stored.simulation_id == result.simulation_id
    # A failed simulation is returned but not stored: the next call computes again.
    failed_request = make_request(seed=99)
    failed = Counter(make_result(status=SimulationStatus.FAILED, seed=99))
    assert cache.get_or_compute(failed_request, failed).status == SimulationStatus.FAILED
    assert cache.get_or_compute(failed_request, failed).status == SimulationStatus.FAILED
    assert failed.calls == 2
    assert cache.get_sync(failed_request) is None
    assert cache.stats().stores == 1


KEY_VARIANTS: dict[str, dict[str, Any]] = {
    "model_id": {"model_id": "model-b"},
    "no_model": {"model_id": None},
    "fingerprint": {"population_fingerprint": "pop-fingerprint-2"},
    "intervention": {"intervention_config": InterventionConfig(intervention_type="sample_distribution")},
    "duration": {
        "intervention_config": InterventionConfig(intervention_type="email_campaign", duration_weeks=9)
    },
    "filter": {"population_filter": PopulationFilter(deciles=[1, 2])},
    "confidence": {"confidence_level": 0.9},
    "ci_method": {"ci_method": "bca", "n_resamples": 1000},
    "n_resamples": {"ci_method": "bca", "n_resamples": 2000},
    "seed": {"seed": 8},
    "kernel_version": {"kernel_version": "test-kernel-2"},
}


def test_cache_key_uniqueness(cache: SimulationCache) -> None:
    base = make_request(intervention_config=InterventionConfig(intervention_type="email_campaign"))
    keys = {"base": cache.key_for(base)}
    for name, change in KEY_VARIANTS.items():
        keys[name] = cache.key_for(
            make_request(
                **{"intervention_config": InterventionConfig(intervention_type="email_campaign"), **change}
            )
        )
    assert len(set(keys.values())) == len(keys), keys
    assert keys["base"].startswith(f"{cache.config.key_prefix}model-a:")
    assert keys["no_model"].startswith(f"{cache.config.key_prefix}none:")
    # List order does not matter, neither in the config nor in the filter.
    a = make_request(
        intervention_config=InterventionConfig(intervention_type="email_campaign", target_deciles=[3, 1, 2]),
        population_filter=PopulationFilter(specialties=["oncology", "cardiology"], deciles=[5, 4]),
    )
    b = make_request(
        intervention_config=InterventionConfig(intervention_type="email_campaign", target_deciles=[1, 2, 3]),
        population_filter=PopulationFilter(specialties=["cardiology", "oncology"], deciles=[4, 5]),
    )
    assert cache.key_for(a) == cache.key_for(b)
    # Distinct keys hold distinct values on the backend.
    for i, (_name, change) in enumerate(list(KEY_VARIANTS.items())[:4]):
        cache.put_sync(make_result(request=make_request(**change), ate=0.01 * (i + 1), rng_seed=i))
    for i, (_name, change) in enumerate(list(KEY_VARIANTS.items())[:4]):
        got = cache.get_sync(make_request(**change))
        assert got is not None and got.simulated_ate == pytest.approx(0.01 * (i + 1))
    assert cache.get_sync(base) is None


def test_cache_expiration(backend_kind: str, cache_factory: Any) -> None:
    request, result = make_request(), make_result()
    if backend_kind == "memory":
        now = [1000.0]
        cache = SimulationCache(SimulationCacheConfig(ttl_seconds=60), MemoryBackend(clock=lambda: now[0]))
        assert cache.put_sync(result)
        now[0] += 59.9
        assert cache.get_sync(request) is not None
        now[0] += 0.2
        assert cache.get_sync(request) is None
        # A per-call TTL overrides the configured one.
        assert cache.put_sync(result, ttl_seconds=5)
        now[0] += 4.9
        assert cache.get_sync(request) is not None
        now[0] += 0.2
        assert cache.get_sync(request) is None
        assert cache.stats().misses == 2
        return
    cache = cache_factory(ttl_seconds=1)
    assert cache.put_sync(result)
    key = cache.key_for(request)
    client = cache.backend.client  # type: ignore[attr-defined]
    pttl = client.pttl(key)
    assert 0 < pttl <= 1000
    index = f"{cache.model_namespace('model-a')}:~lru"
    assert client.pexpiretime(index) >= client.pexpiretime(key)  # the index outlives its results
    assert cache.get_sync(request) is not None
    time.sleep(pttl / 1000 + 0.05)
    assert cache.get_sync(request) is None
    assert client.exists(key) == 0


def test_cache_invalidation_on_model_update(cache: SimulationCache) -> None:
    for seed in (1, 2, 3):
        assert cache.put_sync(make_result(model_id="model-a", seed=seed))
    for seed in (1, 2):
        assert cache.put_sync(make_result(model_id="model-b", seed=seed))
    cfg = make_request().intervention_config
    assert cache.get_latest_sync(cfg, None, "model-a") is not None
    assert cache.invalidate_model_cache_sync("model-a") == 3
    for seed in (1, 2, 3):
        assert cache.get_sync(make_request(model_id="model-a", seed=seed)) is None
    assert cache.get_latest_sync(cfg, None, "model-a") is None
    for seed in (1, 2):
        assert cache.get_sync(make_request(model_id="model-b", seed=seed)) is not None
    assert cache.invalidate_model_cache_sync("model-a") == 0
    assert asyncio.run(cache.invalidate_model_cache("model-b")) == 2
    assert cache.stats().invalidations == 5
    # After a model update the next call computes afresh.
    compute = Counter(make_result(model_id="model-a", seed=1, ate=0.09))
    out = cache.get_or_compute(make_request(model_id="model-a", seed=1), compute)
    assert compute.calls == 1 and out.simulated_ate == 0.09


# --- eviction, the plan's async interface, values ----------------------------------------------------------
def test_lru_bound_evicts_least_recently_used(cache_factory: Any) -> None:
    cache = cache_factory(max_cached_results=3)
    requests = [make_request(seed=s) for s in range(4)]
    for req in requests[:3]:
        cache.put_sync(make_result(request=req))
    assert cache.get_sync(requests[0]) is not None  # seed 0 is now the most recently used
    cache.put_sync(make_result(request=requests[3]))
    present = [cache.get_sync(r) is not None for r in requests]
    assert present == [True, False, True, True]
    assert cache.stats().evictions == 1
    # The bound is per model: another model's results do not count.
    cache.put_sync(make_result(model_id="model-b"))
    assert [cache.get_sync(r) is not None for r in requests] == [True, False, True, True]
    if isinstance(cache.backend, RedisBackend):
        assert cache.backend.client.zcard(f"{cache.model_namespace('model-a')}:~lru") == 3


def test_async_interface_uses_latest_pointer(cache: SimulationCache) -> None:
    cfg = InterventionConfig(intervention_type="email_campaign", target_regions=["west", "midwest"])
    pf = PopulationFilter(deciles=[3, 1])

    async def scenario() -> tuple[Any, ...]:
        empty = await cache.get_cached_result(cfg, pf, "model-a")
        older = make_result(intervention_config=cfg, population_filter=pf, seed=1, ate=0.03)
        newer = make_result(intervention_config=cfg, population_filter=pf, seed=2, ate=0.04)
        stored = (await cache.cache_result(older), await cache.cache_result(newer, ttl_seconds=60))
        same_cfg = InterventionConfig(intervention_type="email_campaign", target_regions=["midwest", "west"])
        got = await cache.get_cached_result(same_cfg, PopulationFilter(deciles=[1, 3]), "model-a")
        other_model = await cache.get_cached_result(cfg, pf, "model-b")
        other_filter = await cache.get_cached_result(cfg, None, "model-a")
        return empty, stored, got, newer, other_model, other_filter

    empty, stored, got, newer, other_model, other_filter = asyncio.run(scenario())
    assert empty is None and stored == (True, True)
    assert got is not None and got.from_cache and got.simulation_id == newer.simulation_id
    assert other_model is None and other_filter is None
    # Stored under the key of the request each result answers (its request_digest): exact lookups hit.
    exact = cache.get_sync(make_request(intervention_config=cfg, population_filter=pf, seed=1))
    assert exact is not None and exact.simulated_ate == 0.03


def test_cache_result_refuses_unseeded_and_unfinished(cache_factory: Any) -> None:
    cache = cache_factory()
    assert cache.put_sync(make_result(seed=None)) is False
    assert cache.put_sync(make_result(status=SimulationStatus.FAILED)) is False
    assert asyncio.run(cache.cache_result(make_result(seed=None))) is False
    assert cache.stats().stores == 0
    permissive = cache_factory(cache_unseeded=True)
    assert permissive.put_sync(make_result(seed=None)) is True
    assert permissive.get_sync(make_request(seed=0, seed_was_given=False)) is not None
    assert permissive.get_latest_sync(make_result().intervention_config, None, "model-a") is not None


def test_result_without_request_digest_is_refused(cache: SimulationCache) -> None:
    # Defect: the key used to be rebuilt from the result with an empty population fingerprint.
    assert not hasattr(SimulationCache, "request_from_result")
    orphan = make_result().model_copy(update={"request_digest": None})
    message = r"`result\.request_digest` must be set to cache a result .*; got None"
    with pytest.raises(ValueError, match=message):
        cache.put_sync(orphan)
    with pytest.raises(ValueError, match=message):
        asyncio.run(cache.cache_result(orphan))
    assert cache.stats().stores == 0
    # With the digest, the key is exactly the one of the request the result answers.
    request = make_request(seed=11)
    assert cache.key_for_result(make_result(request=request)) == cache.key_for(request)


def test_unseeded_requests_bypass_by_default(cache_factory: Any) -> None:
    request = make_request(seed_was_given=False)
    compute = Counter(make_result())
    cache = cache_factory()
    cache.get_or_compute(request, compute)
    cache.get_or_compute(request, compute)
    assert compute.calls == 2 and cache.stats().stores == 0
    permissive = cache_factory(cache_unseeded=True)
    permissive.get_or_compute(request, compute)
    assert permissive.get_or_compute(request, compute).from_cache is True
    assert compute.calls == 3


def test_disabled_cache_is_a_no_op(cache_factory: Any) -> None:
    cache = cache_factory(enabled=False)
    request, compute = make_request(), Counter(make_result())
    assert [cache.get_or_compute(request, compute).from_cache for _ in range(2)] == [False, False]
    assert compute.calls == 2
    assert cache.put_sync(make_result()) is False
    assert cache.get_sync(request) is None
    assert cache.stats() == CacheStats()


def test_values_are_json(cache: SimulationCache) -> None:
    request, result = make_request(), make_result()
    cache.put_sync(result.model_copy(update={"from_cache": True}))
    raw = cache.backend.get(cache.model_namespace("model-a"), cache.key_for(request))
    assert raw is not None
    data = json.loads(raw)
    assert data["simulation_id"] == str(result.simulation_id)
    assert data["from_cache"] is False  # stored as computed
    assert len(data["effect_heterogeneity"]["by_decile"]) == 10
    assert SimulationResult.model_validate_json(raw) == result


def test_undecodable_value_is_a_counted_miss_and_deleted(
    cache: SimulationCache, caplog: pytest.LogCaptureFixture
) -> None:
    request = make_request()
    ns, key = cache.model_namespace("model-a"), cache.key_for(request)
    cache.backend.put(ns, key, b"\x80not json{", 60_000, 10, None)
    compute = Counter(make_result())
    with caplog.at_level(logging.WARNING, logger="twinkernel.cache"):
        out = cache.get_or_compute(request, compute)
    assert compute.calls == 1 and out.from_cache is False
    stats = cache.stats()
    assert (stats.decode_errors, stats.misses, stats.errors, stats.hits) == (1, 1, 0, 0)
    assert any("undecodable" in r.getMessage() for r in caplog.records)
    # Replaced by the freshly computed result.
    assert cache.get_sync(request).simulation_id == compute.result.simulation_id  # type: ignore[union-attr]
    cache.backend.put(ns, key, b'{"simulation_id": "nope"}', 60_000, 10, None)
    assert cache.get_sync(request) is None
    assert cache.backend.get(ns, key) is None
    assert cache.stats().decode_errors == 2


def test_stats_snapshot_is_frozen_and_json_safe() -> None:
    stats = CacheStats(hits=3, misses=1, errors=2)
    assert stats.hit_rate == 0.75
    data = stats.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "hits": 3,
        "misses": 1,
        "errors": 2,
        "evictions": 0,
        "invalidations": 0,
        "decode_errors": 0,
        "stores": 0,
        "bypassed": 0,
        "hit_rate": 0.75,
    }
    assert not hasattr(stats, "as_dict")  # one name for serialisation across the API: to_dict
    assert CacheStats().hit_rate == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.hits = 4  # type: ignore[misc]
    assert hash(stats) == hash(CacheStats(hits=3, misses=1, errors=2))


# --- configuration and backend selection -------------------------------------------------------------------
def _mapping_with(**cache_section: Any) -> dict[str, Any]:
    data = get_config().model_dump(mode="json")
    data["simulation_cache"].update(cache_section)
    return data


def test_config_defaults_come_from_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # Defect: SimulationCacheConfig() used its own defaults and ignored the configuration.
    assert SimulationCacheConfig().model_dump() == get_config().simulation_cache.model_dump()
    custom = config_from_mapping(_mapping_with(ttl_seconds=77, key_prefix="custom:", lock_wait_seconds=1.5))
    monkeypatch.setattr("twinkernel.config._cached", custom)
    cfg = SimulationCacheConfig()
    assert (cfg.ttl_seconds, cfg.key_prefix, cfg.prefix, cfg.lock_wait_seconds) == (
        77,
        "custom:",
        "custom:",
        1.5,
    )
    assert SimulationCacheConfig(max_cached_results=5).ttl_seconds == 77  # overrides only what is given
    assert SimulationCache().config.ttl_seconds == 77
    assert SimulationCacheConfig.from_config(get_config()) == cfg


def test_config_overrides_use_the_config_files_bounds() -> None:
    # Defect: the dataclass had its own bounds (any ttl >= 1); the file allows at most 30 days.
    with pytest.raises(
        ConfigError, match=r"simulation_cache\.ttl_seconds: .*\(got 1000000000\); allowed range \[1, "
    ):
        SimulationCacheConfig(ttl_seconds=10**9)
    with pytest.raises(
        ConfigError,
        match=r"simulation_cache\.max_cached_results: Input should be greater than or equal to 1 \(got 0\)",
    ):
        SimulationCacheConfig(max_cached_results=0)
    with pytest.raises(ConfigError, match=r"simulation_cache\.backend: .*'memory'.*\(got 'disk'\)"):
        SimulationCacheConfig(backend="disk")
    with pytest.raises(ConfigError, match=r"simulation_cache\.unknown_key: Extra inputs are not permitted"):
        SimulationCacheConfig(unknown_key=1)
    with pytest.raises(ConfigError, match=r"lock_poll_initial_seconds \(1\.0\) must not exceed"):
        SimulationCacheConfig(lock_poll_initial_seconds=1.0, lock_poll_max_seconds=0.5)
    with pytest.raises(ConfigError, match=r"simulation_cache\.ttl_seconds: .*\(got -1\)"):
        SimulationCache(backend=MemoryBackend()).put_sync(make_result(), ttl_seconds=-1)
    base = SimulationCacheConfig()
    with pytest.raises(ConfigError, match=r"simulation_cache\.circuit_breaker_failures: .*\(got 0\)"):
        base.with_overrides(circuit_breaker_failures=0)
    assert base.with_overrides(ttl_seconds=5).ttl_seconds == 5 and base.ttl_seconds != 5


def test_backend_selection(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("TWINKERNEL_REDIS_URL", raising=False)
    assert SimulationCache.from_config(config_from_mapping(_mapping_with())).backend.name == "memory"
    url = "redis://127.0.0.1:6399/3"
    auto = SimulationCache.from_config(config_from_mapping(_mapping_with(redis_url=url)))
    assert isinstance(auto.backend, RedisBackend) and auto.backend.url == url
    forced = SimulationCache.from_config(config_from_mapping(_mapping_with(redis_url=url)), backend="memory")
    assert forced.backend.name == "memory"
    monkeypatch.setenv("TWINKERNEL_REDIS_URL", "redis://127.0.0.1:6398/4")
    env = SimulationCache.from_config(config_from_mapping(_mapping_with(redis_url=url)))
    assert env.config.redis_url == "redis://127.0.0.1:6398/4" and env.backend.name == "redis"
    override = SimulationCache.from_config(
        get_config(), backend="redis", redis_url="redis://127.0.0.1:6397/0"
    )
    assert override.backend.url == "redis://127.0.0.1:6397/0"  # type: ignore[attr-defined]
    monkeypatch.delenv("TWINKERNEL_REDIS_URL")
    with caplog.at_level(logging.WARNING, logger="twinkernel.cache"):
        fallback = SimulationCache.from_config(config_from_mapping(_mapping_with(backend="redis")))
    assert fallback.backend.name == "memory"
    assert "no redis_url" in caplog.text
    for c in (auto, env, override):
        c.close()


# --- engine integration ------------------------------------------------------------------------------------
def hcp_population(n: int = 2000, seed: int = 3) -> Any:
    from twinkernel import TwinPopulation

    rng = np.random.default_rng(seed)
    stages = np.array(["innovator", "early_adopter", "early_majority", "late_majority", "laggard"])
    return TwinPopulation.from_numpy(
        {
            "decile": rng.integers(1, 11, n),
            "digital_engagement_score": rng.random(n),
            "adoption_stage": stages[rng.integers(0, 5, n)],
            "priority_tier": rng.integers(1, 6, n),
            "peer_influence_score": rng.random(n),
            "baseline_propensity": rng.uniform(0.1, 0.9, n),
            "baseline_outcome": rng.normal(0.3, 0.08, n),
            "specialty": np.array(["oncology", "cardiology", "primary_care", "dermatology"])[
                rng.integers(0, 4, n)
            ],
            "region": np.array(["northeast", "south", "midwest", "west"])[rng.integers(0, 4, n)],
        },
        model_id="engine-model",
    )


def test_engine_second_call_is_served_from_cache(cache: SimulationCache) -> None:
    from twinkernel import SimulationEngine

    engine = SimulationEngine(hcp_population(), cache=cache)
    cfg = InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8)
    first = engine.simulate(cfg, seed=7)
    second = engine.simulate(cfg, seed=7)
    assert first.status == SimulationStatus.COMPLETED and first.from_cache is False
    assert second.from_cache is True and second.simulation_id == first.simulation_id
    assert second.simulated_ate == first.simulated_ate
    assert (second.simulated_ci_lower, second.simulated_ci_upper) == (
        first.simulated_ci_lower,
        first.simulated_ci_upper,
    )
    assert second.effect_heterogeneity == first.effect_heterogeneity
    # A different seed, use_cache=False and an unseeded call all compute.
    assert engine.simulate(cfg, seed=8).from_cache is False
    assert engine.simulate(cfg, seed=7, use_cache=False).from_cache is False
    unseeded = [engine.simulate(cfg) for _ in range(2)]
    assert [r.from_cache for r in unseeded] == [False, False]
    assert unseeded[0].simulation_id != unseeded[1].simulation_id
    assert cache.stats().stores == 2
    # Invalidation for the population's model makes the next call compute again, with the same numbers.
    assert cache.invalidate_model_cache_sync("engine-model") == 2
    third = engine.simulate(cfg, seed=7)
    assert third.from_cache is False and third.simulated_ate == first.simulated_ate


# --- one key: the plan's API and simulate hit each other's entries -----------------------------------------
ENGINE_CFG = InterventionConfig(intervention_type="call_frequency_increase", duration_weeks=6)
ENGINE_FILTER = PopulationFilter(regions=["south", "west"])


@pytest.mark.parametrize("api", ["put_sync", "cache_result"])
def test_result_stored_through_the_plan_api_is_a_hit_for_simulate(cache: SimulationCache, api: str) -> None:
    from twinkernel import SimulationEngine

    engine = SimulationEngine(hcp_population(), cache=cache)
    computed = engine.simulate(ENGINE_CFG, ENGINE_FILTER, seed=5, use_cache=False)
    assert computed.request_digest is not None and cache.stats().stores == 0
    stored = cache.put_sync(computed) if api == "put_sync" else asyncio.run(cache.cache_result(computed))
    assert stored is True
    again = engine.simulate(ENGINE_CFG, ENGINE_FILTER, seed=5)
    assert again.from_cache is True and again.simulation_id == computed.simulation_id
    assert again.simulated_ate == computed.simulated_ate
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.stores) == (1, 0, 1)
    # Another seed is another request: not served from the stored entry.
    assert engine.simulate(ENGINE_CFG, ENGINE_FILTER, seed=6).from_cache is False


def test_result_stored_by_simulate_is_found_through_the_plan_api(cache: SimulationCache) -> None:
    from twinkernel import SimulationEngine

    population = hcp_population()
    engine = SimulationEngine(population, cache=cache)
    first = engine.simulate(ENGINE_CFG, ENGINE_FILTER, seed=5)
    assert first.from_cache is False
    same_filter = PopulationFilter(regions=["west", "south"])  # list order does not matter
    found = asyncio.run(cache.get_cached_result(ENGINE_CFG, same_filter, population.model_id))
    assert found is not None and found.from_cache is True
    assert found.simulation_id == first.simulation_id and found.simulated_ate == first.simulated_ate
    assert cache.get_latest_sync(ENGINE_CFG, None, population.model_id) is None  # another filter
    # Storing the engine's result again through the plan's API overwrites the same entry, not a new one.
    assert cache.put_sync(first) is True
    assert cache.invalidate_model_cache_sync(population.model_id) == 1


# --- sharing one cache between engines ---------------------------------------------------------------------
def test_engines_sharing_one_cache(cache: SimulationCache) -> None:
    from twinkernel import SimulationEngine

    population = hcp_population(seed=3)
    other_population = hcp_population(seed=4)  # same model id, different twins
    assert population.model_id == other_population.model_id
    assert population.fingerprint() != other_population.fingerprint()
    a, b = SimulationEngine(population, cache=cache), SimulationEngine(population, cache=cache)
    c = SimulationEngine(other_population, cache=cache)
    first = a.simulate(ENGINE_CFG, seed=9)
    shared = b.simulate(ENGINE_CFG, seed=9)
    assert first.from_cache is False
    assert shared.from_cache is True and shared.simulation_id == first.simulation_id
    other = c.simulate(ENGINE_CFG, seed=9)
    assert other.from_cache is False and other.simulation_id != first.simulation_id
    assert other.simulated_ate != first.simulated_ate
    # Each population keeps its own entry.
    assert a.simulate(ENGINE_CFG, seed=9).simulation_id == first.simulation_id
    assert c.simulate(ENGINE_CFG, seed=9).simulation_id == other.simulation_id
    stats = cache.stats()
    assert (stats.stores, stats.hits, stats.misses) == (2, 3, 2)
