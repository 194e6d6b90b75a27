"""pytest-benchmark test of ``SimulationEngine.sweep`` (issue 13): 100 configs x 1 M twins vs 100 simulates.

The sweep and the loop of ``simulate`` calls it replaces run interleaved, round by round, on one numba
thread (:func:`benchmarks.cases.one_thread`), so a loaded machine slows both alike; the test asserts the
ratio of the medians against ``performance.min_sweep_speedup``, never seconds. It also asserts what was
computed: every row's ATE equals its ``simulate`` ATE. Cases come from :mod:`benchmarks.bench_sweep`.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_sweep import SEED, simulate_loop, sweep_configs
from benchmarks.cases import engine_for, hcp_population, interleaved_times, one_thread, performance_limits

pytestmark = [pytest.mark.xdist_group(name="sweep_benchmarks")]

ROUNDS = 3


@pytest.mark.slow
def test_sweep_100_configs_1m_twins_vs_simulate_loop(benchmark):
    engine = engine_for(hcp_population(1_000_000))
    configs = sweep_configs(100)
    with one_thread():
        engine.sweep(configs[:2], seed=SEED)
        engine.simulate(configs[0], seed=SEED)  # warm-up: compilation is not timed
        loop_ates: list[float] = []

        def loop() -> None:
            loop_ates[:] = simulate_loop(engine, configs, SEED)

        times = interleaved_times({"sweep": lambda: engine.sweep(configs, seed=SEED), "loop": loop}, ROUNDS)
        frame = benchmark.pedantic(engine.sweep, args=(configs,), kwargs={"seed": SEED}, rounds=1)
    assert frame.height == 100 and frame["status"].unique().to_list() == ["completed"]
    assert frame["ate"].to_list() == loop_ates
    ratio = float(np.median(times["loop"]) / np.median(times["sweep"]))
    benchmark.extra_info["speedup_vs_simulate_loop"] = ratio
    benchmark.extra_info["sweep_median_s"] = float(np.median(times["sweep"]))
    benchmark.extra_info["loop_median_s"] = float(np.median(times["loop"]))
    assert ratio >= performance_limits().min_sweep_speedup, times
