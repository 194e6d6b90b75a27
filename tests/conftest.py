"""Shared fixtures and named tolerances."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from twinkernel import SimulationEngine, TwinPopulation, get_config
from twinkernel.models import ADOPTION_STAGES

# Kernel vs plain-Python reference: both use the same counter RNG; the only difference is libm rounding.
KERNEL_RTOL = 1e-12
KERNEL_ATOL = 1e-14
# Golden values (tests/unit/test_golden.py) vs the same kernels later: only libm's last bits may differ.
GOLDEN_RTOL = 1e-12
# ATE of the same twins in another row order / selection: fixed-slot sums differ only in rounding.
ROW_ORDER_ATE_RTOL = 1e-12

SPECIALTIES = ("cardiology", "dermatology", "endocrinology", "oncology", "primary_care")
REGIONS = ("midwest", "northeast", "south", "west")
CHANNELS = ("digital", "email", "in_person")


EMPTY_INDEX = np.empty(0, dtype=np.int64)


def kernel_pass(
    columns,
    params,
    adoption_multipliers,
    tier_multipliers,
    *,
    codes,
    offsets,
    index=None,
    seed=7,
    chunk=64,
    with_groups=False,
    effect_shift=0.0,
    baseline_shift=0.0,
    store_effects=True,
    invariants=True,
):
    """``simulate_pass`` on ``columns`` (``KernelColumns`` or anything with its ``decile`` .. ``twin_key``
    attributes): ``(effects, counts, sums, groups)``. ``store_effects`` False passes an empty ``out``
    (``effects`` is then empty); segments are the ``codes`` arrays with group ``offsets``."""
    from twinkernel.kernels import effects as K

    c = columns
    n = c.decile.shape[0] if index is None else index.shape[0]
    out = np.empty(n if store_effects else 0)
    counts, sums, groups = K.simulate_pass(
        c.decile,
        c.engagement,
        c.adoption,
        c.tier,
        c.peer,
        c.propensity,
        c.baseline,
        c.twin_key,
        EMPTY_INDEX if index is None else index,
        index is not None,
        params,
        adoption_multipliers,
        tier_multipliers,
        np.uint64(seed),
        chunk,
        codes,
        offsets,
        int(offsets[-1]),
        with_groups,
        effect_shift,
        baseline_shift,
        out,
        invariants,
    )
    return out, counts, sums, groups


def fused_pass(
    population,
    effect_params,
    index=None,
    seed=7,
    chunk=64,
    params=None,
    with_groups=False,
    effect_shift=0.0,
    baseline_shift=0.0,
    store_effects=True,
    invariants=True,
):
    """Run the engine's fused kernel on a population: ``(effects, counts, sums, groups)`` per chunk, with
    the population's segments.

    ``params`` replaces the parameter vector (to drive the kernel below the API's validation bounds).
    """
    return kernel_pass(
        population.kernel_columns,
        effect_params.params if params is None else params,
        effect_params.adoption_multipliers,
        effect_params.tier_multipliers,
        index=index,
        seed=seed,
        chunk=chunk,
        codes=population.kernel_columns.segment_codes,
        offsets=population.segment_offsets,
        with_groups=with_groups,
        effect_shift=effect_shift,
        baseline_shift=baseline_shift,
        store_effects=store_effects,
        invariants=invariants,
    )


def kernel_effects(population, effect_params, index=None, seed=7, chunk=64, params=None):
    """Per-twin effects and per-chunk clamp counters from the engine's fused kernel."""
    out, counts, _, _ = fused_pass(population, effect_params, index, seed, chunk, params)
    return out, counts


def make_population_frame(n: int, seed: int = 0) -> pl.DataFrame:
    """A seeded HCP frame with every recognised column, all values valid."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "twin_id": [f"hcp-{i:06d}" for i in range(n)],
            "specialty": rng.choice(SPECIALTIES, n),
            "decile": rng.integers(1, 11, n),
            "region": rng.choice(REGIONS, n),
            "digital_engagement_score": rng.random(n),
            "adoption_stage": rng.choice(ADOPTION_STAGES, n),
            "priority_tier": rng.integers(1, 6, n),
            "peer_influence_score": rng.random(n),
            "preferred_channel": rng.choice(CHANNELS, n),
            "baseline_outcome": rng.normal(0.30, 0.08, n),
            "baseline_propensity": rng.uniform(0.1, 0.9, n),
        }
    )


@pytest.fixture(scope="session")
def config():
    return get_config()


@pytest.fixture
def make_population():
    def build(n: int = 2000, seed: int = 0, **overrides) -> TwinPopulation:
        frame = make_population_frame(n, seed)
        if overrides:
            frame = frame.with_columns(
                [pl.Series(k, v) if not np.isscalar(v) else pl.lit(v).alias(k) for k, v in overrides.items()]
            )
        return TwinPopulation.from_frame(frame, brand="Kisqali", model_id="test-model")

    return build


@pytest.fixture
def make_engine(make_population):
    """An engine without a cache (caching has its own tests)."""

    def build(n: int = 2000, seed: int = 0, **kwargs) -> SimulationEngine:
        engine = SimulationEngine(make_population(n, seed), **kwargs)
        engine.cache = None
        return engine

    return build
