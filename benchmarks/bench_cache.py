"""Simulation result cache: lookup latency (memory and Redis) and hit rate on a replayed workload.

The case builders here (a realistic completed result, its request, the replayed workload and the Redis
URL used by tests) are shared by asv, ``tests/performance/test_cache_benchmarks.py`` and the cache tests.

Run with asv (see ``STACK-NOTES.md``)::

    asv run -E existing:$(which python) --quick --bench bench_cache --set-commit-hash $(git rev-parse HEAD)

The Redis cases need a server at ``TWINKERNEL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``);
without one they are skipped (``NotImplementedError`` in ``setup``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np

from twinkernel.models import (
    EffectHeterogeneity,
    InterventionConfig,
    PopulationFilter,
    SimulationRecommendation,
    SimulationRequest,
    SimulationResult,
    SimulationStatus,
)
from twinkernel.simulation_cache import MemoryBackend, RedisBackend, SimulationCache, SimulationCacheConfig

__all__ = [
    "DEFAULT_TEST_REDIS_URL",
    "WORKLOAD_CONFIGS",
    "WORKLOAD_REQUESTS",
    "make_cache",
    "make_request",
    "make_result",
    "redis_available",
    "redis_test_url",
    "replay_workload",
    "workload",
]

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
WORKLOAD_REQUESTS = 200
WORKLOAD_CONFIGS = 20

_SPECIALTIES = ("oncology", "hematology", "cardiology", "dermatology", "rheumatology", "endocrinology")
_SPECIALTIES += ("neurology", "primary_care")
_REGIONS = ("northeast", "southeast", "midwest", "southwest", "west")
_STAGES = ("innovator", "early_adopter", "early_majority", "late_majority", "laggard")


def redis_test_url() -> str:
    """The Redis URL tests and benchmarks use: ``$TWINKERNEL_TEST_REDIS_URL`` or db 15 on localhost."""
    return os.environ.get("TWINKERNEL_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


def redis_available(url: str | None = None, timeout: float = 0.2) -> bool:
    """True when a server at ``url`` answers ``PING`` within ``timeout`` seconds (raw RESP, no client)."""
    parsed = urlparse(url or redis_test_url())
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    # "+PONG", or "-NOAUTH ..." from a password-protected server (the client then authenticates).
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def _segments(rng: np.random.Generator, labels: tuple[str, ...], ate: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label in labels:
        seg_ate = float(ate + rng.normal(0.0, 0.01))
        std = float(abs(rng.normal(0.03, 0.005)))
        n = float(rng.integers(50, 900))
        half = 1.96 * std / np.sqrt(n)
        out[label] = {
            "ate": seg_ate,
            "std": std,
            "n": n,
            "ci_lower": seg_ate - half,
            "ci_upper": seg_ate + half,
        }
    return out


def make_result(
    *,
    model_id: str | None = "model-a",
    intervention_config: InterventionConfig | None = None,
    population_filter: PopulationFilter | None = None,
    seed: int | None = 7,
    ate: float | None = None,
    status: SimulationStatus = SimulationStatus.COMPLETED,
    rng_seed: int = 0,
    request: SimulationRequest | None = None,
) -> SimulationResult:
    """A completed result with full heterogeneity: 4 dimensions, 28 segments (a realistic value size).

    It answers ``request``, or else :func:`make_request` with the same model, config, filter and seed
    (``request_digest`` is that request's digest), so the cache stores it under that request's key.
    """
    if request is None:
        request = make_request(
            model_id=model_id,
            intervention_config=intervention_config,
            population_filter=population_filter,
            seed=seed if seed is not None else 0,
            seed_was_given=seed is not None,
        )
    else:
        model_id, seed = request.model_id, request.seed if request.seed_was_given else None
        intervention_config, population_filter = request.intervention_config, request.population_filter
    rng = np.random.default_rng(rng_seed)
    cfg = intervention_config or InterventionConfig(intervention_type="email_campaign", channel="email")
    ate = float(0.05 + rng.normal(0.0, 0.01)) if ate is None else ate
    se = 0.002
    het = EffectHeterogeneity(
        by_specialty=_segments(rng, _SPECIALTIES, ate),
        by_decile=_segments(rng, tuple(str(d) for d in range(1, 11)), ate),
        by_region=_segments(rng, _REGIONS, ate),
        by_adoption_stage=_segments(rng, _STAGES, ate),
    )
    return SimulationResult(
        model_id=model_id,
        intervention_config=cfg,
        population_filter=population_filter or PopulationFilter(),
        brand="Kisqali",
        twin_count=10_000,
        population_size=10_000,
        targeted_count=10_000,
        simulated_ate=ate,
        simulated_ci_lower=ate - 1.96 * se,
        simulated_ci_upper=ate + 1.96 * se,
        simulated_std_error=se,
        confidence_level=0.95,
        effect_heterogeneity=het,
        recommendation=SimulationRecommendation.DEPLOY,
        recommendation_rationale=f"ATE {ate:.4f} above the deploy threshold 0.05 with a CI excluding 0",
        recommended_sample_size=1200,
        recommended_duration_weeks=8,
        simulation_confidence=0.81,
        status=status,
        execution_time_ms=42.0,
        timings_ms={"filter": 1.0, "effects": 30.0, "heterogeneity": 11.0},
        seed=seed,
        effect_size_cohens_d=0.21,
        statistical_power=0.8,
        outcome_std=0.24,
        kernel_version=request.kernel_version,
        data_quality={"decile": {"missing": 0}},
        request_digest=request.digest(),
    )


def make_request(
    *,
    model_id: str | None = "model-a",
    intervention_config: InterventionConfig | None = None,
    population_filter: PopulationFilter | None = None,
    seed: int = 7,
    seed_was_given: bool = True,
    population_fingerprint: str = "pop-fingerprint-1",
    confidence_level: float = 0.95,
    ci_method: str = "analytic",
    n_resamples: int | None = None,
    kernel_version: str = "test-kernel-1",
) -> SimulationRequest:
    """A resolved request as the engine builds it."""
    return SimulationRequest(
        model_id=model_id,
        population_fingerprint=population_fingerprint,
        intervention_config=intervention_config
        or InterventionConfig(intervention_type="email_campaign", channel="email"),
        population_filter=population_filter or PopulationFilter(),
        confidence_level=confidence_level,
        ci_method=ci_method,
        n_resamples=n_resamples,
        seed=seed,
        seed_was_given=seed_was_given,
        calculate_heterogeneity=True,
        kernel_version=kernel_version,
    )


def make_cache(kind: str, prefix: str | None = None, **overrides: object) -> SimulationCache:
    """A cache on the ``"memory"`` or ``"redis"`` backend with a unique key prefix."""
    prefix = prefix or f"twin_sim_test:{uuid.uuid4().hex[:12]}:"
    url = redis_test_url()
    cfg = SimulationCacheConfig(key_prefix=prefix, redis_url=url if kind == "redis" else None, **overrides)
    if kind == "redis":
        # A loaded test machine can stall a local call past the shipped 50 ms: allow a slower server.
        slow = max(cfg.socket_timeout_seconds, 0.5)
        backend: MemoryBackend | RedisBackend = RedisBackend(
            url, socket_timeout=slow, socket_connect_timeout=slow
        )
    else:
        backend = MemoryBackend()
    return SimulationCache(cfg, backend)


def workload(
    n_requests: int = WORKLOAD_REQUESTS, n_configs: int = WORKLOAD_CONFIGS, seed: int = 0
) -> list[SimulationRequest]:
    """``n_requests`` seeded requests over ``n_configs`` distinct configurations (uniform, seeded)."""
    rng = np.random.default_rng(seed)
    types = ("email_campaign", "call_frequency_increase", "sample_distribution", "digital_engagement")
    configs = [
        InterventionConfig(
            intervention_type=types[i % len(types)], duration_weeks=4 + (i // len(types)), channel="email"
        )
        for i in range(n_configs)
    ]
    picks = rng.integers(0, n_configs, n_requests)
    return [make_request(intervention_config=configs[int(i)]) for i in picks]


def replay_workload(cache: SimulationCache, requests: list[SimulationRequest]) -> tuple[float, int]:
    """Replay ``requests`` through ``get_or_compute``; return (hit rate, number of computations)."""
    computed = 0

    def compute_for(req: SimulationRequest) -> Callable[[], SimulationResult]:
        def compute() -> SimulationResult:
            nonlocal computed
            computed += 1
            return make_result(request=req)

        return compute

    hits = 0
    for req in requests:
        hits += cache.get_or_compute(req, compute_for(req)).from_cache
    return hits / len(requests), computed


# --- asv ---------------------------------------------------------------------------------------------------
class TimeCacheLookup:
    """Latency of one cache hit (``get_sync``: lookup, LRU touch, JSON decode) and one store."""

    params: ClassVar[list[str]] = ["memory", "redis"]
    param_names: ClassVar[list[str]] = ["backend"]

    def setup(self, backend: str) -> None:
        if backend == "redis" and not redis_available():
            raise NotImplementedError(f"no redis-server at {redis_test_url()}")
        self.cache = make_cache(backend)
        self.request = make_request()
        self.miss_request = make_request(seed=8)
        self.result = make_result()
        self.cache.put_sync(self.result)
        self.cache.get_sync(self.request)  # warm-up (connection, script load)

    def teardown(self, backend: str) -> None:
        self.cache.invalidate_model_cache_sync("model-a")
        self.cache.close()

    def time_hit(self, backend: str) -> None:
        self.cache.get_sync(self.request)

    def time_miss(self, backend: str) -> None:
        self.cache.get_sync(self.miss_request)

    def time_store(self, backend: str) -> None:
        self.cache.put_sync(self.result)


class TrackCacheHitRate:
    """Hit rate of 200 replayed requests over 20 configurations (plan phase 5: above 50 %)."""

    params: ClassVar[list[str]] = ["memory", "redis"]
    param_names: ClassVar[list[str]] = ["backend"]
    unit = "fraction"

    def setup(self, backend: str) -> None:
        if backend == "redis" and not redis_available():
            raise NotImplementedError(f"no redis-server at {redis_test_url()}")
        self.requests = workload()

    def track_hit_rate(self, backend: str) -> float:
        cache = make_cache(backend)
        try:
            rate, _ = replay_workload(cache, self.requests)
        finally:
            cache.invalidate_model_cache_sync("model-a")
            cache.close()
        return rate
