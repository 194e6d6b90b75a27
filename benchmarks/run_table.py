"""Measure issue 2's table side by side in one process and print it as Markdown.

    /work/main/.venv/bin/python -m benchmarks.run_table [--rounds 15] [--no-10m]

Every configuration is timed after a warm-up call, interleaved round by round with the configuration it is
compared with (heterogeneity on/off and, from 1 M twins, the bare effects pass at one size; the loop and
the kernel; the engine and its logging-removed variant), so a slow phase of a shared machine hits both
alike; the table gives medians and ratios. The peak RSS of a 10 000 000-twin simulation is measured in a
fresh subprocess (imports + building the population + one simulation), as ``VmHWM``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from benchmarks.baseline import simulate_per_twin, twins_from_population
from benchmarks.bench_simulation import bare_pass_call, simulate_over_bare
from benchmarks.cases import (
    EMAIL,
    engine_for,
    expected_ate,
    hcp_population,
    interleaved_times,
    logging_removed_engine,
    service_logging,
)

SEED = 20_251_127
REPO = Path(__file__).resolve().parents[1]
TARGETS_MS = {50_000: 10.0, 10_000_000: 1000.0}


def _vm_hwm() -> int:
    """This process image's peak RSS in bytes.

    Not ``ru_maxrss``: Linux carries that across fork + exec, so a child of a large parent would report
    the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def _peak_child() -> None:
    """In a fresh process: build 10 M twins, simulate once, print the process's peak RSS (JSON)."""
    population = hcp_population(10_000_000, cached=False)
    built = _vm_hwm()
    result = engine_for(population).simulate(EMAIL, seed=SEED)
    peak = _vm_hwm()
    print(json.dumps({"after_build": built, "peak": peak, "twin_count": result.twin_count}))


def measure_peak_10m() -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_table", "--peak-child"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    data: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds per configuration")
    ap.add_argument("--no-10m", action="store_true", help="skip the 10 M-twin rows (quick look)")
    ap.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak_child:
        _peak_child()
        return 0

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    sizes = [10_000, 50_000, 1_000_000] + ([] if args.no_10m else [10_000_000])
    engines = {n: engine_for(hcp_population(n, seed=0)) for n in sizes}
    sim_times: dict[str, np.ndarray] = {}
    for n, engine in engines.items():
        calls: dict[str, Any] = {}
        for het in (True, False):
            result = engine.simulate(EMAIL, seed=SEED, calculate_heterogeneity=het)  # warm-up + check
            expected = expected_ate(engine.population, EMAIL)
            assert result.twin_count == n
            assert abs(result.simulated_ate - expected.ate) < 5 * expected.mc_se
            calls[f"{n}|{het}"] = lambda e=engine, h=het: e.simulate(
                EMAIL, seed=SEED, calculate_heterogeneity=h
            )
        if n >= 1_000_000:  # issue 13's reference: the bare effects pass, in the same rounds
            bare = bare_pass_call(engine.population, EMAIL)
            assert abs(bare() / n - expected.ate) < 5 * expected.mc_se
            calls[f"{n}|bare"] = bare
        # Heterogeneity on/off interleaved per size; sizes in blocks (interleaving 10 k-twin calls with
        # 10 M-twin calls slowed the small ones many-fold on the loaded machine).
        sim_times.update(interleaved_times(calls, args.rounds))

    # The per-twin baseline at 50 000 twins, interleaved with the kernel on the same twins.
    pop50 = engines[50_000].population
    twins = twins_from_population(pop50.frame)
    base = simulate_per_twin(twins, EMAIL, seed=SEED)
    assert abs(base.ate - expected_ate(pop50, EMAIL).ate) < 5 * expected_ate(pop50, EMAIL).mc_se
    # Per round: one loop call, then 7 kernel calls (kernel stalls on a loaded machine are short).
    pair: dict[str, list[float]] = {"baseline": [], "kernel": []}
    for _ in range(5):
        pair["baseline"].extend(
            interleaved_times({"b": lambda: simulate_per_twin(twins, EMAIL, seed=SEED)}, 1)["b"]
        )
        pair["kernel"].extend(
            interleaved_times({"k": lambda: engines[50_000].simulate(EMAIL, seed=SEED)}, 7)["k"]
        )

    # DEBUG-off overhead at 50 000 twins: shipped engine vs logging code removed, paired.
    removed = logging_removed_engine(pop50)
    with service_logging():
        removed.simulate(EMAIL, seed=SEED)
        dbg = interleaved_times(
            {
                "engine": lambda: engines[50_000].simulate(EMAIL, seed=SEED),
                "removed": lambda: removed.simulate(EMAIL, seed=SEED),
            },
            201,
        )
    # simulate ÷ bare pass on one thread (the regression gate's setting), at the largest size.
    n_big = sizes[-1]
    one_ratio = simulate_over_bare(
        engines[n_big], bare_pass_call(engines[n_big].population, EMAIL), args.rounds, one=True
    )
    breakdown = {n: engines[n].simulate(EMAIL, seed=SEED).timings_ms for n in sizes if n >= 1_000_000}
    engines.clear()
    twins.clear()
    peak = None if args.no_10m else measure_peak_10m()
    load_end = os.getloadavg()

    def ms(v: np.ndarray | list[float]) -> float:
        return float(np.median(v) * 1e3)

    lines = [
        "| configuration | median ms | target | per twin |",
        "|---|---:|---:|---:|",
    ]
    for n in sizes:
        for het in (True, False):
            med = ms(sim_times[f"{n}|{het}"])
            target = TARGETS_MS.get(n)
            target_s = f"< {target:g} ms" if target is not None and (het or n == 10_000_000) else ""
            label = f"`simulate` {n:,} twins, heterogeneity {'on' if het else 'off'}"
            lines.append(f"| {label} | {med:.2f} | {target_s} | {med * 1e6 / n:.1f} ns |")
    for n in sizes:
        if f"{n}|bare" not in sim_times:
            continue
        bare_ms, het_ms = ms(sim_times[f"{n}|bare"]), ms(sim_times[f"{n}|True"])
        lines.append(
            f"| bare effects pass {n:,} twins (same rounds) | {bare_ms:.2f} | | {bare_ms * 1e6 / n:.1f} ns |"
        )
        lines.append(
            f"| **`simulate` {n:,} twins with heterogeneity ÷ bare effects pass** "
            f"| **{het_ms / bare_ms:.2f}×** | ≤ 1.5× | |"
        )
    lines.append(
        f"| `simulate` {n_big:,} twins with heterogeneity ÷ bare pass, one thread "
        f"({one_ratio[1] * 1e3:.0f} vs {one_ratio[2] * 1e3:.0f} ms) | {one_ratio[0]:.2f}× | ≤ 1.5× | |"
    )
    b_ms, k_ms = ms(pair["baseline"]), ms(pair["kernel"])  # 5 loop calls, 35 kernel calls
    lines.append(
        f"| per-twin Python loop (pydantic twin + call per twin), 50,000 twins | {b_ms:.1f} | ~600 (issue) "
        f"| {b_ms * 1e6 / 50_000:.0f} ns |"
    )
    lines.append(f"| `simulate` 50,000 twins, same rounds as the loop | {k_ms:.2f} | | |")
    lines.append(f"| **speed-up, loop ÷ kernel (50,000 twins)** | **{b_ms / k_ms:.0f}×** | | |")
    overhead = float(np.median(dbg["engine"] - dbg["removed"]) * 1e3)
    lines.append(
        f"| DEBUG-off overhead (median paired difference, 201 pairs, 50,000 twins: engine "
        f"{ms(dbg['engine']):.2f} vs logging removed {ms(dbg['removed']):.2f}) | {overhead:+.3f} | < 1 ms | |"
    )
    if peak is not None:
        lines.append(
            f"| peak RSS, fresh process: imports + build 10,000,000 twins + `simulate` | "
            f"{peak['peak'] / 1e6:,.0f} MB (after build {peak['after_build'] / 1e6:,.0f}) | < 1,500 MB "
            f"| {peak['peak'] / 1e7:.0f} B |"
        )
    print("\n".join(lines))
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"numba {numba.__version__} ({numba.threading_layer()} layer, {numba.get_num_threads()} threads), "
        f"numpy {np.__version__}; load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"{args.rounds} interleaved rounds; wall time {time.perf_counter() - t0:.0f} s."
    )
    for n, timings in breakdown.items():
        print(f"timings_ms at {n:,} twins: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
