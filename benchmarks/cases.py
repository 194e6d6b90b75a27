"""One registry of seeded benchmark cases, shared by asv, pytest-benchmark and the tests.

Every case is a pure function of its arguments (``np.random.default_rng(seed)``, never the global
``np.random``), built vectorised: categorical columns come from integer codes turned into a
``pl.Enum`` with ``Series.cat.to``, so a 10 000 000-twin population never creates millions of Python
strings. Populations are memoised (a small LRU) so one process does not rebuild 10 M twins per benchmark;
:func:`clear_cache` releases them (memory tests call it).

:func:`expected_ate` is a plain NumPy reference of the SPEC §3 effect formula without noise: the
expectation of the simulated ATE *given the population*, against which the kernel (and the per-twin
baseline) must agree within Monte-Carlo error ``noise_sd / sqrt(n_active)``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from twinkernel import InterventionConfig, SimulationEngine, SimulationResult, TwinPopulation
from twinkernel.config import PerformanceConfig, TwinkernelConfig, get_config
from twinkernel.models import ADOPTION_STAGES
from twinkernel.simulation_engine import engine as _engine_module

__all__ = [
    "ADOPTION_PROBABILITIES",
    "CHANNELS",
    "EMAIL",
    "REGIONS",
    "SIX_INTERVENTIONS",
    "SPEAKER",
    "SPECIALTIES",
    "AteExpectation",
    "LoggingRemovedEngine",
    "clear_cache",
    "engine_for",
    "expected_ate",
    "hcp_columns",
    "hcp_population",
    "interleaved_times",
    "logging_removed_engine",
    "one_thread",
    "performance_limits",
    "service_logging",
]

SPECIALTIES: tuple[str, ...] = (
    "oncology",
    "hematology",
    "cardiology",
    "dermatology",
    "rheumatology",
    "endocrinology",
    "neurology",
    "primary_care",
)
SPECIALTY_PROBABILITIES = (0.14, 0.06, 0.14, 0.10, 0.08, 0.10, 0.08, 0.30)
REGIONS: tuple[str, ...] = ("northeast", "southeast", "midwest", "southwest", "west")
REGION_PROBABILITIES = (0.22, 0.24, 0.20, 0.14, 0.20)
CHANNELS: tuple[str, ...] = ("email", "digital", "in_person", "phone", "webinar")
CHANNEL_PROBABILITIES = (0.30, 0.25, 0.25, 0.12, 0.08)
ADOPTION_PROBABILITIES = (0.025, 0.135, 0.34, 0.34, 0.16)  # Rogers' diffusion curve
TIER_PROBABILITIES = (0.05, 0.15, 0.30, 0.30, 0.20)

SIX_INTERVENTIONS: dict[str, InterventionConfig] = {
    "email_campaign": InterventionConfig(
        intervention_type="email_campaign", channel="email", duration_weeks=8
    ),
    "call_frequency_increase": InterventionConfig(
        intervention_type="call_frequency_increase",
        duration_weeks=12,
        extra_params={"additional_calls": 2},
    ),
    "speaker_program_invitation": InterventionConfig(
        intervention_type="speaker_program_invitation", duration_weeks=4
    ),
    "sample_distribution": InterventionConfig(
        intervention_type="sample_distribution", duration_weeks=8, intensity_multiplier=1.5
    ),
    "peer_influence_activation": InterventionConfig(
        intervention_type="peer_influence_activation", duration_weeks=16
    ),
    "digital_engagement": InterventionConfig(
        intervention_type="digital_engagement", channel="digital", duration_weeks=6
    ),
}
"""One configuration per intervention type with a prior (the six in the configuration)."""

EMAIL = SIX_INTERVENTIONS["email_campaign"]
SPEAKER = SIX_INTERVENTIONS["speaker_program_invitation"]


def _codes(rng: np.random.Generator, n: int, p: tuple[float, ...]) -> np.ndarray:
    """``n`` category codes drawn with probabilities ``p`` (vectorised inverse CDF, uint8)."""
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(n), side="right").astype(np.uint8)


def _enum(name: str, codes: np.ndarray, labels: tuple[str, ...]) -> pl.Series:
    return pl.Series(name, codes).cat.to(pl.Enum(list(labels)))


def hcp_columns(n: int, seed: int = 0) -> dict[str, Any]:
    """The raw columns of ``n`` seeded HCP twins (categoricals as ``pl.Enum`` series, numbers as arrays).

    Parameters
    ----------
    n
        Number of twins.
    seed
        Seed of ``np.random.default_rng``; equal arguments give equal columns.
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0; got {n}")
    rng = np.random.default_rng(seed)
    decile = rng.integers(1, 11, size=n, dtype=np.int16)
    engagement = rng.beta(2.0, 3.0, size=n)
    # Propensity follows the configured heuristic shape (more likely to respond in high deciles and
    # when engaged) plus individual scatter, clipped to the open unit interval.
    propensity = np.clip(
        0.3 + 0.05 * (11 - decile) + 0.2 * engagement + rng.normal(0.0, 0.05, size=n), 0.01, 0.99
    )
    return {
        "twin_id": np.arange(n, dtype=np.int64),
        "specialty": _enum("specialty", _codes(rng, n, SPECIALTY_PROBABILITIES), SPECIALTIES),
        "decile": decile,
        "region": _enum("region", _codes(rng, n, REGION_PROBABILITIES), REGIONS),
        "digital_engagement_score": engagement,
        "adoption_stage": _enum("adoption_stage", _codes(rng, n, ADOPTION_PROBABILITIES), ADOPTION_STAGES),
        "priority_tier": (_codes(rng, n, TIER_PROBABILITIES) + 1).astype(np.int8),
        "peer_influence_score": rng.beta(2.0, 2.5, size=n),
        "preferred_channel": _enum("preferred_channel", _codes(rng, n, CHANNEL_PROBABILITIES), CHANNELS),
        "baseline_outcome": rng.normal(0.25, 0.08, size=n),
        "baseline_propensity": propensity,
    }


def _build(n: int, seed: int, config: TwinkernelConfig | None) -> TwinPopulation:
    columns = hcp_columns(n, seed)
    frame = pl.DataFrame(
        [v if isinstance(v, pl.Series) else pl.Series(name, v) for name, v in columns.items()]
    )
    return TwinPopulation.from_frame(frame, brand="Kisqali", model_id=f"bench-hcp-{seed}", config=config)


@functools.lru_cache(maxsize=2)
def _cached(n: int, seed: int) -> TwinPopulation:
    return _build(n, seed, None)


def hcp_population(n: int, seed: int = 0, *, cached: bool = True) -> TwinPopulation:
    """``n`` seeded HCP twins as a :class:`TwinPopulation` (memoised unless ``cached=False``)."""
    return _cached(int(n), int(seed)) if cached else _build(int(n), int(seed), None)


def clear_cache() -> None:
    """Drop the memoised populations."""
    _cached.cache_clear()


def engine_for(population: TwinPopulation) -> SimulationEngine:
    """A simulation engine without a result cache (benchmarks time the computation, not cache hits)."""
    engine = SimulationEngine(population)
    engine.cache = None
    return engine


class _RemovedLogger:
    """Stands in for a logger whose calls were deleted from the source: every call does nothing."""

    def isEnabledFor(self, level: int) -> bool:
        return False

    def debug(self, *args: Any, **kwargs: Any) -> None:
        return None

    info = warning = debug


_REMOVED = _RemovedLogger()


class LoggingRemovedEngine(SimulationEngine):
    """:class:`SimulationEngine` with its logging code taken out: the "no logging" side of DEBUG-off overhead.

    ``_emit_trace`` does nothing and, for the duration of each call, the engine module's ``logger`` and
    ``trace_logger`` are replaced by :class:`_RemovedLogger` (the ``isEnabledFor(DEBUG)`` guard is
    constant False, ``logger.info`` is a no-op). What remains of the logging code is a call to an empty
    method (tens of nanoseconds), well below what the comparison resolves. Not thread-safe: benchmarks only.
    """

    def _emit_trace(self, *args: Any, **kwargs: Any) -> None:
        return None

    def simulate(self, *args: Any, **kwargs: Any) -> SimulationResult:
        saved = _engine_module.logger, _engine_module.trace_logger
        _engine_module.logger = _engine_module.trace_logger = _REMOVED  # type: ignore[assignment]
        try:
            return super().simulate(*args, **kwargs)
        finally:
            _engine_module.logger, _engine_module.trace_logger = saved


def logging_removed_engine(population: TwinPopulation) -> LoggingRemovedEngine:
    """Like :func:`engine_for`, with the logging code removed."""
    engine = LoggingRemovedEngine(population)
    engine.cache = None
    return engine


@contextlib.contextmanager
def service_logging(level: int = logging.INFO) -> Iterator[logging.Logger]:
    """The ``twinkernel`` logger as a service runs it: INFO on, DEBUG off, one (discarding) handler.

    Log records are created and dispatched (that cost is part of the overhead measured) but nothing is
    written, and nothing propagates to the root logger (pytest's capture handler would format every record).
    """
    log = logging.getLogger("twinkernel")
    saved = log.level, log.propagate, list(log.handlers)
    handler = logging.NullHandler()
    log.setLevel(level)
    log.propagate = False
    log.handlers = [handler]
    try:
        yield log
    finally:
        log.setLevel(saved[0])
        log.propagate = saved[1]
        log.handlers = saved[2]


def performance_limits(config: TwinkernelConfig | None = None) -> PerformanceConfig:
    """The ``performance`` section of the configuration (the limits the performance tests assert)."""
    limits = (config or get_config()).performance
    if limits is None:
        raise LookupError(
            "the configuration has no `performance` section (see config/digital_twin_config.yaml)"
        )
    return limits


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run numba's parallel kernels on the calling thread only, for the duration of the block.

    Speed ratios against a single-threaded reference (the per-twin loop, a NumPy pass) compare like with
    like this way: on a loaded machine a 2-thread kernel waits for its slowest thread, a 1-thread
    reference does not, and the ratio would measure the machine's load rather than the code.
    """
    import numba

    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(saved)


def interleaved_times(calls: Mapping[str, Any], repeats: int) -> dict[str, np.ndarray]:
    """Time every callable of ``calls`` ``repeats`` times, interleaved (side by side), in this process.

    Interleaving makes slow phases of a shared machine hit every variant alike. Returns the per-call
    times in seconds (``repeats`` values per name); take medians, or medians of paired differences.
    """
    names = list(calls)
    out = {name: np.empty(repeats, dtype=np.float64) for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t = time.perf_counter()
            calls[name]()
            out[name][r] = time.perf_counter() - t
    return out


@dataclass(frozen=True)
class AteExpectation:
    """The expected ATE of one simulation given its population and its Monte-Carlo standard error."""

    ate: float
    mc_se: float  # noise_sd * sqrt(n_active) / n
    n: int
    n_active: int  # twins that receive noise (not gated out by the peer threshold)


def _column(pop_or_columns: TwinPopulation | Mapping[str, Any], name: str) -> np.ndarray:
    if isinstance(pop_or_columns, TwinPopulation):
        s = pop_or_columns.frame[name]
    else:
        s = pop_or_columns[name]
    if isinstance(s, pl.Series):
        if s.dtype == pl.Enum:
            return np.asarray(s.cast(pl.String).to_numpy())
        return s.to_numpy()
    return np.asarray(s)


def expected_ate(
    population: TwinPopulation | Mapping[str, Any],
    intervention: InterventionConfig,
    config: TwinkernelConfig | None = None,
) -> AteExpectation:
    """NumPy reference of SPEC §3 (no noise): the ATE's expectation given the twins, and its MC error.

    Written independently of the kernels and of :class:`~twinkernel.effect_model.EffectModel`; only the
    numbers come from the configuration (one source of truth). The effect cap is assumed not to bind
    (|effect| stays far below it for the benchmark populations; the engine reports capped effects).
    """
    eff = (config or get_config()).simulation.intervention_effects
    t = eff.types.get(intervention.intervention_type)
    base = eff.unknown_type.base_effect if t is None else t.base_effect
    noise_sd = eff.unknown_type.noise_sd if t is None else t.noise_sd
    if t is not None and t.per_additional_call is not None:
        base += t.per_additional_call * int(intervention.extra_params.get("additional_calls", 0))
    d = np.clip(_column(population, "decile").astype(np.float64), eff.decile.low, eff.decile.high)
    m = eff.decile.intercept - eff.decile.slope * (d - eff.decile.low)
    e = np.clip(_column(population, "digital_engagement_score"), 0.0, 1.0)
    m = m * (eff.engagement.intercept + eff.engagement.slope * e)
    stages = _column(population, "adoption_stage")
    labels, inverse = np.unique(stages, return_inverse=True)
    table = np.array([eff.adoption_stage.get(str(s), eff.unknown_adoption_multiplier) for s in labels])
    m = m * table[inverse]
    m = m * intervention.intensity_multiplier
    m = m * math.log1p(intervention.duration_weeks) / math.log1p(eff.duration_reference_weeks)
    if t is not None and intervention.channel is not None:
        m = m * t.channel_multipliers.get(intervention.channel.lower(), 1.0)
    if t is not None and t.use_priority_tier:
        tiers = np.clip(_column(population, "priority_tier").astype(np.int64), 1, 5)
        tier_table = np.array([1.0] + [eff.priority_tier.get(k, 1.0) for k in range(1, 6)])
        m = m * tier_table[tiers]
    p = np.clip(_column(population, "baseline_propensity"), 0.0, 1.0)
    m = m * (eff.propensity.intercept + eff.propensity.slope * p)
    n = int(m.shape[0])
    n_active = n
    if t is not None and t.peer_influence_threshold is not None:
        active = np.clip(_column(population, "peer_influence_score"), 0.0, 1.0) >= t.peer_influence_threshold
        m = np.where(active, m, 0.0)
        n_active = int(np.count_nonzero(active))
    ate = float(base * m.mean()) if n else 0.0
    mc_se = noise_sd * math.sqrt(n_active) / n if n else math.inf
    return AteExpectation(ate=ate, mc_se=mc_se, n=n, n_active=n_active)
