"""asv benchmarks of ``SimulationEngine.simulate`` (issue 2, "Speed").

Targets on the 2-core machine, after JIT warm-up: 50 000 twins with heterogeneity under 10 ms (the
per-twin Python loop, :class:`TimeBaselineLoop`, takes about 0.6 s there); 10 000 000 twins under 1 s
with peak memory under 1.5 GB; DEBUG-off overhead under 1 ms against the same call with the logging
code removed (:class:`TimeDebugOverhead`). Issue 13: 10 000 000 twins with heterogeneity in at most 1.5×
the bare effects pass over the same twins (:func:`bare_effects_pass`, :class:`TrackSimulateOverBarePass`).

Inputs come from :mod:`benchmarks.cases` (seeded, memoised). Every ``setup`` does one warm-up call so
JIT compilation is never timed. Engines run without a result cache: the computation is timed, not a
cache hit.

Run offline::

    asv machine --yes
    asv run -E existing:/work/main/.venv/bin/python --quick --set-commit-hash $(git rev-parse HEAD) \\
        --bench bench_simulation
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numba
import numpy as np

from benchmarks.baseline import simulate_per_twin, twins_from_population
from benchmarks.cases import (
    EMAIL,
    SIX_INTERVENTIONS,
    engine_for,
    expected_ate,
    hcp_population,
    interleaved_times,
    logging_removed_engine,
    one_thread,
    service_logging,
)
from twinkernel import InterventionConfig, SimulationEngine, TwinPopulation
from twinkernel.kernels import effects as K
from twinkernel.kernels._rng import STREAM_EFFECT_NOISE, STREAM_EFFECT_NOISE_ANGLE, key_for, twin_normal

SEED = 20_251_127


@numba.njit(parallel=True)  # no cache: the module is imported under different names by asv and pytest
def bare_effects_pass(
    decile: np.ndarray,
    engagement: np.ndarray,
    adoption: np.ndarray,
    tier: np.ndarray,
    peer: np.ndarray,
    propensity: np.ndarray,
    twin_key: np.ndarray,
    params: np.ndarray,
    adoption_mult: np.ndarray,
    tier_mult: np.ndarray,
    seed: np.uint64,
) -> float:
    """The floor of any simulation: every twin's effect (SPEC §3, noise drawn by twin key), summed.

    The same-run reference of ``simulate`` (issue 13: at most 1.5× this pass with heterogeneity). It reads
    the same columns and computes the same effects as :func:`twinkernel.kernels.effects.simulate_pass`, in
    the same order of operations, and does nothing else: no selection, no clamp counters, no stored
    effects, no squares, no baseline moments, no segments, and a plain ``prange`` reduction (whose last bits
    depend on the thread count; the engine's fixed-slot sums do not).
    """
    key_radius = key_for(seed, STREAM_EFFECT_NOISE)
    key_angle = key_for(seed, STREAM_EFFECT_NOISE_ANGLE)
    d_low = params[K.P_DECILE_LOW]
    d_high = params[K.P_DECILE_HIGH]
    cap = params[K.P_CAP]
    threshold = params[K.P_PEER_THRESHOLD]
    use_tier = params[K.P_USE_TIER] > 0.5
    last_adoption = adoption_mult.shape[0] - 1
    total_sum = 0.0
    for i in numba.prange(decile.shape[0]):
        d = min(max(np.float64(decile[i]), d_low), d_high)
        e = min(max(engagement[i], 0.0), 1.0)
        m = (params[K.P_DECILE_INTERCEPT] - params[K.P_DECILE_SLOPE] * (d - d_low)) * (
            params[K.P_ENGAGEMENT_INTERCEPT] + params[K.P_ENGAGEMENT_SLOPE] * e
        )
        m *= adoption_mult[min(np.int64(adoption[i]), last_adoption)]
        m *= params[K.P_INTENSITY]
        m *= params[K.P_DURATION]
        m *= params[K.P_CHANNEL]
        if use_tier:
            m *= tier_mult[np.int64(min(max(np.float64(tier[i]), 1.0), 5.0))]
        m *= params[K.P_PROPENSITY_INTERCEPT] + params[K.P_PROPENSITY_SLOPE] * min(
            max(propensity[i], 0.0), 1.0
        )
        if threshold < 0.0 or min(max(peer[i], 0.0), 1.0) >= threshold:
            effect = params[K.P_BASE] * m + params[K.P_NOISE_SD] * twin_normal(
                key_radius, key_angle, twin_key[i]
            )
            total_sum += min(max(effect, -cap), cap)
    return total_sum


def bare_pass_call(
    population: TwinPopulation, intervention: InterventionConfig, seed: int = SEED
) -> Callable[[], float]:
    """A zero-argument call of :func:`bare_effects_pass` over every twin of ``population``."""
    c = population.kernel_columns
    p = engine_for(population).effect_model.parameters(intervention)
    args = (
        c.decile,
        c.engagement,
        c.adoption,
        c.tier,
        c.peer,
        c.propensity,
        c.twin_key,
        p.params,
        p.adoption_multipliers,
        p.tier_multipliers,
        np.uint64(seed),
    )
    return lambda: bare_effects_pass(*args)


class TimeSimulate:
    """``simulate`` (analytic CI) on n seeded HCP twins, with and without heterogeneity."""

    params = ([10_000, 50_000, 1_000_000, 10_000_000], [True, False])
    param_names = ("n_twins", "heterogeneity")
    timeout = 300.0  # building 10 M twins takes several seconds per process

    def setup(self, n: int, heterogeneity: bool) -> None:
        self.population = hcp_population(n)
        self.engine = engine_for(self.population)
        self.result = self.engine.simulate(EMAIL, seed=SEED, calculate_heterogeneity=heterogeneity)

    def time_simulate(self, n: int, heterogeneity: bool) -> None:
        self.engine.simulate(EMAIL, seed=SEED, calculate_heterogeneity=heterogeneity)

    def peakmem_simulate(self, n: int, heterogeneity: bool) -> None:
        """Peak RSS of the benchmark process.

        asv's ``peakmem_*`` is the process's maximum resident set size, so it INCLUDES ``setup``: building
        the population (and its transient copies) and the imports, not only the simulation. That is the
        number the 1.5 GB target is about (a process that simulates 10 M twins).
        """
        self.engine.simulate(EMAIL, seed=SEED, calculate_heterogeneity=heterogeneity)

    def track_ate_error(self, n: int, heterogeneity: bool) -> float:
        """|simulated ATE − expected ATE| in Monte-Carlo standard errors (expected: about 0.8; alarm > 4).

        The expectation is the NumPy reference of the effect formula given the population
        (:func:`benchmarks.cases.expected_ate`); the only difference left is the noise's mean.
        """
        expected = expected_ate(self.population, EMAIL)
        return abs(self.result.simulated_ate - expected.ate) / expected.mc_se

    track_ate_error.unit = "MC standard errors"  # type: ignore[attr-defined]


class TimeBareEffectsPass:
    """The same-run reference of ``simulate``: :func:`bare_effects_pass` over n twins (EMAIL)."""

    params = ([1_000_000, 10_000_000],)
    param_names = ("n_twins",)
    timeout = 300.0

    def setup(self, n: int) -> None:
        self.bare = bare_pass_call(hcp_population(n), EMAIL)
        self.bare()

    def time_bare_pass(self, n: int) -> None:
        self.bare()


class TrackSimulateOverBarePass:
    """``simulate`` with heterogeneity ÷ the bare effects pass on the same twins (issue 13 goal: ≤ 1.5).

    Medians of interleaved calls at the default thread count and on one thread (the regression gate's
    setting, ``tests/performance/test_regression_gate.py``).
    """

    params = ([1_000_000, 10_000_000], ["default", "one"])
    param_names = ("n_twins", "threads")
    timeout = 600.0

    def setup(self, n: int, threads: str) -> None:
        population = hcp_population(n)
        self.engine = engine_for(population)
        self.bare = bare_pass_call(population, EMAIL)
        self.engine.simulate(EMAIL, seed=SEED)
        self.bare()

    def track_ratio(self, n: int, threads: str) -> float:
        return simulate_over_bare(self.engine, self.bare, 5, one=threads == "one")[0]

    track_ratio.unit = "x"  # type: ignore[attr-defined]


def simulate_over_bare(
    engine: SimulationEngine, bare: Callable[[], float], rounds: int, one: bool = False
) -> tuple[float, float, float]:
    """``(ratio, simulate s, bare s)``: medians of ``rounds`` interleaved calls, EMAIL with heterogeneity."""
    with one_thread() if one else contextlib.nullcontext():
        times = interleaved_times(
            {"simulate": lambda: engine.simulate(EMAIL, seed=SEED), "bare": bare}, rounds
        )
    sim, ref = float(np.median(times["simulate"])), float(np.median(times["bare"]))
    return sim / ref, sim, ref


class TimeSimulateInterventions:
    """``simulate`` at 1 M twins for each of the six intervention types (the tier and peer paths differ)."""

    params = (list(SIX_INTERVENTIONS),)
    param_names = ("intervention_type",)

    def setup(self, intervention_type: str) -> None:
        self.engine = engine_for(hcp_population(1_000_000))
        self.config = SIX_INTERVENTIONS[intervention_type]
        self.engine.simulate(self.config, seed=SEED)

    def time_simulate(self, intervention_type: str) -> None:
        self.engine.simulate(self.config, seed=SEED)


class TimeBaselineLoop:
    """The original's approach: a pydantic twin per row and a Python call per twin (the baseline).

    Building the ``DigitalTwin`` list is setup (the original held it already); the loop, the mean, the
    normal CI and the per-segment dictionaries are timed.
    """

    params = ([2_000, 50_000], [True, False])
    param_names = ("n_twins", "heterogeneity")
    timeout = 300.0
    number = 1
    repeat = (1, 5, 30.0)

    def setup(self, n: int, heterogeneity: bool) -> None:
        self.twins = twins_from_population(hcp_population(n).frame)

    def time_per_twin_loop(self, n: int, heterogeneity: bool) -> None:
        simulate_per_twin(self.twins, EMAIL, seed=SEED, calculate_heterogeneity=heterogeneity)


class TrackSpeedup:
    """The per-twin Python loop's median time over ``simulate``'s, side by side on one thread.

    The same ratio the performance tests assert (``performance.min_speedup_10k`` / ``_50k`` in the
    configuration); tracking it in asv shows a regression of the kernel against a fixed reference even
    when the machine's speed changes between runs.
    """

    params = ([10_000, 50_000],)
    param_names = ("n_twins",)
    timeout = 300.0

    def setup(self, n: int) -> None:
        population = hcp_population(n)
        self.engine = engine_for(population)
        self.twins = twins_from_population(population.frame)
        self.engine.simulate(EMAIL, seed=SEED)

    def track_speedup_vs_per_twin_loop(self, n: int) -> float:
        with one_thread():
            times = interleaved_times(
                {
                    "loop": lambda: simulate_per_twin(self.twins, EMAIL, seed=SEED),
                    "kernel": lambda: self.engine.simulate(EMAIL, seed=SEED),
                },
                5,
            )
        return float(np.median(times["loop"]) / np.median(times["kernel"]))

    track_speedup_vs_per_twin_loop.unit = "x"  # type: ignore[attr-defined]


class TimeDebugOverhead:
    """DEBUG off: ``simulate`` as shipped vs the same call with the logging code removed, 50 000 twins.

    ``time_simulate`` times each variant in its own process (asv compares the two params);
    ``track_overhead_ms`` times both side by side, interleaved in one process, and reports the median
    paired difference in milliseconds (target: under 1 ms).
    """

    params = (["engine", "logging_removed"],)
    param_names = ("variant",)
    n = 50_000

    def setup(self, variant: str) -> None:
        self.logging = service_logging()  # DEBUG off, INFO on, a discarding handler
        self.logging.__enter__()
        population = hcp_population(self.n)
        self.engines = {
            "engine": engine_for(population),
            "logging_removed": logging_removed_engine(population),
        }
        for engine in self.engines.values():
            engine.simulate(EMAIL, seed=SEED)
        self.engine = self.engines[variant]

    def teardown(self, variant: str) -> None:
        self.logging.__exit__(None, None, None)

    def time_simulate(self, variant: str) -> None:
        self.engine.simulate(EMAIL, seed=SEED)

    def track_overhead_ms(self, variant: str) -> float:
        times = interleaved_times(
            {name: (lambda e=e: e.simulate(EMAIL, seed=SEED)) for name, e in self.engines.items()}, 101
        )
        return float(np.median(times["engine"] - times["logging_removed"]) * 1e3)

    track_overhead_ms.unit = "ms"  # type: ignore[attr-defined]
