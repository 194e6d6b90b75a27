"""Load tests for large twin populations (plan phase 3.1) and the speed comparisons of issue 2.

These are benchmarks, not timed tests: every test asserts what was computed (ATE within Monte-Carlo error
of the NumPy reference, twin counts, status) and compares speeds only as ratios measured side by side in
this process. Absolute budgets are the plan's timeouts. Cases come from :mod:`benchmarks.cases`.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from benchmarks.baseline import simulate_per_twin, twins_from_population
from benchmarks.cases import (
    EMAIL,
    SIX_INTERVENTIONS,
    SPEAKER,
    engine_for,
    expected_ate,
    hcp_population,
    interleaved_times,
    logging_removed_engine,
    service_logging,
)
from twinkernel import SimulationEngine, SimulationResult, SimulationStatus, TwinPopulation

pytestmark = [pytest.mark.xdist_group(name="digital_twin_performance")]

SEED = 7
MB = 2**20


def check_simulation(
    result: SimulationResult, population: TwinPopulation, n: int, heterogeneity: bool
) -> None:
    """The value every benchmark asserts: a completed simulation of all n twins with the expected ATE."""
    assert result.status == SimulationStatus.COMPLETED
    assert result.twin_count == n
    expected = expected_ate(population, result.intervention_config)
    assert abs(result.simulated_ate - expected.ate) < 5.0 * expected.mc_se, (result.simulated_ate, expected)
    assert result.simulated_ci_lower < result.simulated_ate < result.simulated_ci_upper
    segments = result.effect_heterogeneity.by_decile
    if heterogeneity:
        assert sorted(segments, key=int) == [str(d) for d in range(1, 11)]
        assert sum(int(s["n"]) for s in segments.values()) == n
    else:
        assert not segments


def _traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak of memory traced by tracemalloc during it (NumPy buffers are traced)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def _simulate_benchmark(benchmark: Any, n: int, rounds: int, heterogeneity: bool = True) -> SimulationResult:
    population = hcp_population(n)
    engine = engine_for(population)
    result = benchmark.pedantic(
        engine.simulate,
        args=(EMAIL,),
        kwargs={"seed": SEED, "calculate_heterogeneity": heterogeneity},
        rounds=rounds,
        iterations=1,
        warmup_rounds=1,
    )
    check_simulation(result, population, n, heterogeneity)
    benchmark.extra_info["timings_ms"] = result.timings_ms
    return result


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_10k_twins_simulation(benchmark: Any) -> None:
    """10 000 twins: completes with the expected ATE, traced memory of a call far below the plan's 512 MB."""
    _simulate_benchmark(benchmark, 10_000, rounds=50)
    engine = engine_for(hcp_population(10_000))
    result, peak = _traced_peak(lambda: engine.simulate(SPEAKER, seed=SEED))
    check_simulation(result, engine.population, 10_000, True)
    assert peak < 512 * MB
    benchmark.extra_info["traced_peak_mb"] = peak / MB


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_50k_twins_simulation(benchmark: Any) -> None:
    """50 000 twins with heterogeneity (issue 2's headline case); all six types give their expected ATE."""
    _simulate_benchmark(benchmark, 50_000, rounds=30)
    engine = engine_for(hcp_population(50_000))
    for config in SIX_INTERVENTIONS.values():
        check_simulation(engine.simulate(config, seed=SEED), engine.population, 50_000, True)
    result, peak = _traced_peak(lambda: engine.simulate(EMAIL, seed=SEED))
    assert result.twin_count == 50_000
    assert peak < 2048 * MB


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_100k_twins_generation(benchmark: Any) -> None:
    """Building 100 000 seeded twins (the registry builder until the twin generator replaces it)."""
    population = benchmark.pedantic(
        hcp_population, args=(100_000,), kwargs={"seed": 3, "cached": False}, rounds=3, iterations=1
    )
    assert population.n == 100_000
    frame = population.frame
    assert frame["decile"].min() == 1 and frame["decile"].max() == 10
    assert frame["priority_tier"].min() == 1 and frame["priority_tier"].max() == 5
    for name in ("specialty", "region", "preferred_channel", "adoption_stage"):
        assert frame[name].dtype == pl.Enum
    assert frame["adoption_stage"].n_unique() == 5
    assert not population.has_defaults
    assert population.fingerprint() == hcp_population(100_000, seed=3, cached=False).fingerprint()
    assert population.fingerprint() != hcp_population(100_000, seed=4, cached=False).fingerprint()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_scaling_behavior(benchmark: Any) -> None:
    """1 K → 50 K twins: per-call time grows at most linearly (log-log slope ≤ 1.15, ratio ≤ 50 × 1.5).

    All sizes are timed interleaved in one process (medians of 15 calls each); a fixed per-call cost makes
    small sizes relatively expensive, so the slope is usually well below 1.
    """
    sizes = [1_000, 5_000, 10_000, 50_000]
    engines = {n: engine_for(hcp_population(n)) for n in sizes}
    for n, engine in engines.items():
        check_simulation(engine.simulate(EMAIL, seed=SEED), engine.population, n, True)

    def sweep() -> dict[int, float]:
        times = interleaved_times(
            {str(n): (lambda e=e: e.simulate(EMAIL, seed=SEED)) for n, e in engines.items()}, 15
        )
        return {n: float(np.median(times[str(n)])) for n in sizes}

    medians = benchmark.pedantic(sweep, rounds=1, iterations=1)
    slope = float(np.polyfit(np.log(sizes), np.log([medians[n] for n in sizes]), 1)[0])
    ratio = medians[50_000] / medians[1_000]
    benchmark.extra_info.update(
        median_ms={n: t * 1e3 for n, t in medians.items()}, loglog_slope=slope, ratio_50k_1k=ratio
    )
    print(f"\nscaling: median ms { ({n: round(t * 1e3, 3) for n, t in medians.items()}) }, slope {slope:.2f}")
    assert ratio < 50 * 1.5
    assert slope < 1.15


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_10m_twins_simulation(benchmark: Any) -> None:
    """10 000 000 twins with heterogeneity (target: under 1 s on 2 cores; see docs/performance.md)."""
    population = hcp_population(10_000_000, cached=False)  # not kept in the memo after the test
    engine = engine_for(population)
    result = benchmark.pedantic(
        engine.simulate,
        args=(EMAIL,),
        kwargs={"seed": SEED},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    check_simulation(result, population, 10_000_000, True)
    benchmark.extra_info["timings_ms"] = result.timings_ms
    print(f"\n10M twins: timings_ms {result.timings_ms}")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_debug_off_overhead() -> None:
    """With DEBUG off, the logging code costs under 1 ms per 50 000-twin simulation.

    The shipped engine and :class:`~benchmarks.cases.LoggingRemovedEngine` (same computation, logging
    code removed) run interleaved on the same population; the median of the paired differences is the
    overhead. INFO is on with a discarding handler, as in a service.
    """
    population = hcp_population(50_000)
    engines = {"engine": engine_for(population), "removed": logging_removed_engine(population)}
    with service_logging():
        results = {name: e.simulate(EMAIL, seed=SEED) for name, e in engines.items()}
        times = interleaved_times(
            {name: (lambda e=e: e.simulate(EMAIL, seed=SEED)) for name, e in engines.items()}, 201
        )
    assert results["engine"].simulated_ate == results["removed"].simulated_ate
    check_simulation(results["engine"], population, 50_000, True)
    overhead_ms = float(np.median(times["engine"] - times["removed"]) * 1e3)
    medians = {name: float(np.median(t) * 1e3) for name, t in times.items()}
    print(f"\nDEBUG-off: median ms {medians}, overhead {overhead_ms:.4f} ms")
    assert abs(overhead_ms) < 1.0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_per_twin_baseline_vs_kernel(benchmark: Any) -> None:
    """The original per-twin Python loop vs the kernel at 50 000 twins, in the same run.

    Both compute the same expected ATE (they agree within Monte-Carlo error); the kernel must be at least
    10 times faster (measured on a quiet machine: about 90×; the issue's targets are ~0.6 s vs < 10 ms;
    the bound leaves room for a loaded shared machine, where 2-thread kernels stall).
    """
    n = 50_000
    population = hcp_population(n)
    engine = engine_for(population)
    twins = twins_from_population(population.frame)
    kernel_result = engine.simulate(EMAIL, seed=SEED)
    baseline_result = benchmark.pedantic(
        simulate_per_twin, args=(twins, EMAIL), kwargs={"seed": SEED}, rounds=3, iterations=1
    )

    # Side by side: each round times one baseline call and 7 kernel calls (kernel spikes on a shared
    # machine are short; medians over more kernel calls are robust).
    def baseline_call() -> None:
        simulate_per_twin(twins, EMAIL, seed=SEED)

    def kernel_call() -> None:
        engine.simulate(EMAIL, seed=SEED)

    baseline_times: list[float] = []
    kernel_times: list[float] = []
    for _ in range(3):
        baseline_times.extend(interleaved_times({"baseline": baseline_call}, 1)["baseline"])
        kernel_times.extend(interleaved_times({"kernel": kernel_call}, 7)["kernel"])
    expected = expected_ate(population, EMAIL)
    assert baseline_result.twin_count == kernel_result.twin_count == n
    assert abs(baseline_result.ate - expected.ate) < 5.0 * expected.mc_se
    assert abs(baseline_result.ate - kernel_result.simulated_ate) < 5.0 * math.sqrt(2.0) * expected.mc_se
    for label, seg in baseline_result.segments["decile"].items():
        assert seg["n"] == kernel_result.effect_heterogeneity.by_decile[label]["n"]
    kernel_ms = float(np.median(kernel_times) * 1e3)
    baseline_ms = float(np.median(baseline_times) * 1e3)
    ratio = baseline_ms / kernel_ms
    benchmark.extra_info.update(baseline_ms=baseline_ms, kernel_ms=kernel_ms, speedup=ratio)
    print(f"\nper-twin loop {baseline_ms:.1f} ms vs kernel {kernel_ms:.2f} ms at {n} twins: {ratio:.0f}x")
    assert ratio > 10.0


def test_engine_variants_agree() -> None:
    """The logging-removed variant computes exactly what the shipped engine computes (fast check)."""
    population = hcp_population(2_000)
    a = engine_for(population).simulate(SPEAKER, seed=SEED)
    b = logging_removed_engine(population).simulate(SPEAKER, seed=SEED)
    assert isinstance(engine_for(population), SimulationEngine)
    assert a.simulated_ate == b.simulated_ate
    assert a.simulated_ci_lower == b.simulated_ci_lower
    check_simulation(a, population, 2_000, True)
