"""Load tests for large twin populations (plan phase 3.1) and the speed comparisons of issue 2.

These are benchmarks, not timed tests: no test compares a duration with a fixed number of seconds. Every
test asserts what was computed (ATE within Monte-Carlo error of the NumPy reference, twin counts, status),
records its timings with pytest-benchmark, and checks speed only as a ratio against a reference measured
side by side in the same test (the original per-twin Python loop, one-twin-at-a-time generation, smaller
sizes, the same engine with its logging code removed). Ratios are measured with numba on one thread
(:func:`benchmarks.cases.one_thread`) so a loaded machine slows both sides alike. The limits come from
the configuration's ``performance`` section; cases from :mod:`benchmarks.cases`.
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
from benchmarks.bench_generator import per_twin_rate, trained
from benchmarks.cases import (
    EMAIL,
    SIX_INTERVENTIONS,
    SPEAKER,
    engine_for,
    expected_ate,
    hcp_population,
    interleaved_times,
    logging_removed_engine,
    one_thread,
    performance_limits,
    service_logging,
)
from twinkernel import SimulationEngine, SimulationResult, SimulationStatus, TwinPopulation

pytestmark = [pytest.mark.xdist_group(name="digital_twin_performance")]

SEED = 7
MB = 10**6  # the configuration's memory limits are in MB
GENERATOR_TRAINING_HCPS = 3_000  # a small synthetic world: generate() is timed, not training
PER_TWIN_GENERATED = 20  # twins generated one at a time for the generation ratio (about 0.1 s each)


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


def speedup_vs_per_twin_loop(population: TwinPopulation, rounds: int) -> dict[str, float]:
    """Medians (ms) of the per-twin Python loop and of ``simulate`` on the same twins, and their ratio.

    Both run on one thread, interleaved round by round in this process; the loop's ATE is checked
    against the NumPy reference first (the two compute the same quantity).
    """
    engine = engine_for(population)
    twins = twins_from_population(population.frame)
    baseline = simulate_per_twin(twins, EMAIL, seed=SEED)
    expected = expected_ate(population, EMAIL)
    assert baseline.twin_count == population.n
    assert abs(baseline.ate - expected.ate) < 5.0 * expected.mc_se
    with one_thread():
        engine.simulate(EMAIL, seed=SEED)
        times = interleaved_times(
            {
                "loop": lambda: simulate_per_twin(twins, EMAIL, seed=SEED),
                "kernel": lambda: engine.simulate(EMAIL, seed=SEED),
            },
            rounds,
        )
    loop_ms = float(np.median(times["loop"]) * 1e3)
    kernel_ms = float(np.median(times["kernel"]) * 1e3)
    return {"loop_ms": loop_ms, "kernel_ms": kernel_ms, "speedup": loop_ms / kernel_ms}


@pytest.mark.slow
def test_10k_twins_simulation(benchmark: Any) -> None:
    """10 000 twins: the expected ATE, faster than the per-twin loop by the configured ratio, traced memory
    of a call under the plan's limit."""
    limits = performance_limits()
    _simulate_benchmark(benchmark, 10_000, rounds=50)
    population = hcp_population(10_000)
    ratio = speedup_vs_per_twin_loop(population, rounds=7)
    benchmark.extra_info.update(ratio)
    print(f"\n10k twins, one thread: {ratio}")
    assert ratio["speedup"] >= limits.min_speedup_10k
    engine = engine_for(population)
    result, peak = _traced_peak(lambda: engine.simulate(SPEAKER, seed=SEED))
    check_simulation(result, population, 10_000, True)
    benchmark.extra_info["traced_peak_mb"] = peak / MB
    assert peak < limits.simulate_traced_peak_mb_10k * MB


@pytest.mark.slow
def test_50k_twins_simulation(benchmark: Any) -> None:
    """50 000 twins with heterogeneity (issue 2's headline case): all six types give their expected ATE,
    faster than the per-twin loop by the configured ratio, traced memory under the plan's limit."""
    limits = performance_limits()
    _simulate_benchmark(benchmark, 50_000, rounds=30)
    population = hcp_population(50_000)
    engine = engine_for(population)
    for config in SIX_INTERVENTIONS.values():
        check_simulation(engine.simulate(config, seed=SEED), population, 50_000, True)
    ratio = speedup_vs_per_twin_loop(population, rounds=5)
    benchmark.extra_info.update(ratio)
    print(f"\n50k twins, one thread: {ratio}")
    assert ratio["speedup"] >= limits.min_speedup_50k
    result, peak = _traced_peak(lambda: engine.simulate(EMAIL, seed=SEED))
    assert result.twin_count == 50_000
    benchmark.extra_info["traced_peak_mb"] = peak / MB
    assert peak < limits.simulate_traced_peak_mb_50k * MB


@pytest.fixture(scope="module")
def generator() -> Any:
    """A twin generator trained on a small seeded synthetic world, kernels compiled (memoised)."""
    return trained(GENERATOR_TRAINING_HCPS)


@pytest.mark.slow
def test_100k_twins_generation(benchmark: Any, generator: Any) -> None:
    """``TwinGenerator.generate(100_000)`` (copula draws and outcome prediction) is what is timed.

    The population is complete and seeded; one-twin-at-a-time generation with the same model, measured
    in the same test, is slower by at least the configured ratio.
    """
    limits = performance_limits()
    population = benchmark.pedantic(
        generator.generate, args=(100_000,), kwargs={"seed": 3}, rounds=3, iterations=1
    )
    assert population.n == 100_000
    frame = population.frame
    assert frame["decile"].min() == 1 and frame["decile"].max() == 10
    assert frame["priority_tier"].min() == 1 and frame["priority_tier"].max() == 5
    for name in ("specialty", "region", "preferred_channel", "adoption_stage"):
        assert frame[name].dtype == pl.Enum
    assert frame["adoption_stage"].n_unique() == 5
    assert frame.null_count().sum_horizontal().item() == 0
    assert not population.has_defaults
    assert population.fingerprint() == generator.generate(100_000, seed=3).fingerprint()
    assert population.fingerprint() != generator.generate(100_000, seed=4).fingerprint()
    with one_thread():
        seconds = interleaved_times({"generate": lambda: generator.generate(100_000, seed=5)}, 3)
        per_twin_per_second = per_twin_rate(generator, PER_TWIN_GENERATED)
    batched_per_second = 100_000 / float(np.median(seconds["generate"]))
    speedup = batched_per_second / per_twin_per_second
    benchmark.extra_info.update(
        batched_per_second=batched_per_second, per_twin_per_second=per_twin_per_second, speedup=speedup
    )
    print(
        f"\ngenerate: {batched_per_second:,.0f} twins/s batched vs {per_twin_per_second:,.1f} one at a time"
    )
    assert speedup >= limits.min_generation_speedup


@pytest.mark.slow
def test_scaling_behavior(benchmark: Any) -> None:
    """Above 1e5 twins, simulate's time is linear in n: the fitted log-log slope of the median time over
    ``performance.scaling_sizes`` (5e5 … 4e6) lies in [``min_scaling_slope``, ``max_scaling_slope``].

    The sizes start at 5e5 because a fixed per-call cost (decisions, segment probabilities, the result:
    about 2 ms quiet, 12 ms at a load average of 13) bends the fit: over 2e5 … 2e6 it measured 0.91–0.97.

    All sizes are timed interleaved on one thread in one process (medians of 7 calls each), so a loaded
    machine slows every size alike. Each size's result is checked against the NumPy reference first.
    """
    limits = performance_limits()
    sizes = list(limits.scaling_sizes)
    assert min(sizes) > 100_000 and limits.min_scaling_slope <= 1.0 <= limits.max_scaling_slope
    engines = {n: engine_for(hcp_population(n, cached=False)) for n in sizes}
    for n, engine in engines.items():
        check_simulation(engine.simulate(EMAIL, seed=SEED), engine.population, n, True)

    def sweep() -> dict[int, float]:
        with one_thread():
            times = interleaved_times(
                {str(n): (lambda e=e: e.simulate(EMAIL, seed=SEED)) for n, e in engines.items()}, 7
            )
        return {n: float(np.median(times[str(n)])) for n in sizes}

    medians = benchmark.pedantic(sweep, rounds=1, iterations=1)
    slope = float(np.polyfit(np.log(sizes), np.log([medians[n] for n in sizes]), 1)[0])
    benchmark.extra_info.update(median_ms={n: t * 1e3 for n, t in medians.items()}, loglog_slope=slope)
    print(f"\nscaling: median ms { ({n: round(t * 1e3, 2) for n, t in medians.items()}) }, slope {slope:.3f}")
    assert limits.min_scaling_slope <= slope <= limits.max_scaling_slope


@pytest.mark.slow
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
def test_debug_off_overhead() -> None:
    """With DEBUG off, the logging code costs a small fraction of a 50 000-twin simulation.

    The shipped engine and :class:`~benchmarks.cases.LoggingRemovedEngine` (same computation, logging
    code removed) run interleaved on one thread on the same population; the median of the paired
    differences, relative to the logging-removed call's median, is the overhead (issue 2's target is
    under 1 ms per call, measured about 0.05 ms of 3 ms). INFO is on with a discarding handler, as in a
    service.
    """
    limits = performance_limits()
    population = hcp_population(50_000)
    engines = {"engine": engine_for(population), "removed": logging_removed_engine(population)}
    with service_logging(), one_thread():
        results = {name: e.simulate(EMAIL, seed=SEED) for name, e in engines.items()}
        times = interleaved_times(
            {name: (lambda e=e: e.simulate(EMAIL, seed=SEED)) for name, e in engines.items()}, 201
        )
    assert results["engine"].simulated_ate == results["removed"].simulated_ate
    check_simulation(results["engine"], population, 50_000, True)
    overhead = float(np.median(times["engine"] - times["removed"]))
    fraction = overhead / float(np.median(times["removed"]))
    medians = {name: float(np.median(t) * 1e3) for name, t in times.items()}
    print(f"\nDEBUG-off: median ms {medians}, overhead {overhead * 1e3:.4f} ms ({fraction:.1%})")
    assert abs(fraction) <= limits.max_debug_overhead_fraction


@pytest.mark.slow
def test_per_twin_baseline_vs_kernel(benchmark: Any) -> None:
    """The original per-twin Python loop vs the kernel at 50 000 twins, in the same run.

    Both compute the same expected ATE (they agree within Monte-Carlo error and give the same segment
    sizes); the loop is recorded by pytest-benchmark and the kernel must be faster by the configured
    ratio, both measured on one thread (quiet machine: about 80x; the issue's targets are ~0.6 s vs
    < 10 ms).
    """
    limits = performance_limits()
    n = 50_000
    population = hcp_population(n)
    engine = engine_for(population)
    twins = twins_from_population(population.frame)
    kernel_result = engine.simulate(EMAIL, seed=SEED)
    baseline_result = benchmark.pedantic(
        simulate_per_twin, args=(twins, EMAIL), kwargs={"seed": SEED}, rounds=3, iterations=1
    )
    expected = expected_ate(population, EMAIL)
    assert baseline_result.twin_count == kernel_result.twin_count == n
    assert abs(baseline_result.ate - expected.ate) < 5.0 * expected.mc_se
    assert abs(baseline_result.ate - kernel_result.simulated_ate) < 5.0 * math.sqrt(2.0) * expected.mc_se
    for label, seg in baseline_result.segments["decile"].items():
        assert seg["n"] == kernel_result.effect_heterogeneity.by_decile[label]["n"]
    ratio = speedup_vs_per_twin_loop(population, rounds=3)
    benchmark.extra_info.update(ratio)
    print(
        f"\nper-twin loop {ratio['loop_ms']:.1f} ms vs kernel {ratio['kernel_ms']:.2f} ms: "
        f"{ratio['speedup']:.0f}x"
    )
    assert ratio["speedup"] >= limits.min_speedup_50k


def test_engine_variants_agree() -> None:
    """The logging-removed variant computes exactly what the shipped engine computes (fast check)."""
    population = hcp_population(2_000)
    a = engine_for(population).simulate(SPEAKER, seed=SEED)
    b = logging_removed_engine(population).simulate(SPEAKER, seed=SEED)
    assert isinstance(engine_for(population), SimulationEngine)
    assert a.simulated_ate == b.simulated_ate
    assert a.simulated_ci_lower == b.simulated_ci_lower
    check_simulation(a, population, 2_000, True)
