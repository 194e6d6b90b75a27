"""Performance regression gate: each kernel's time relative to a same-run reference, against a recorded ratio.

A case times a twinkernel call and its reference (``scipy.stats.bootstrap`` on the same data, a bare
Numba pass that only generates the counter-based hashes the kernel needs, or for ``simulate`` a bare pass
that only computes and sums the same effects) interleaved round by round in
this process, takes the median of each, and compares ``ours / reference`` with the ratio recorded in
``tests/performance/regression_ratios.json`` for this CPU (:func:`recorded_ratio`: vector width and scipy's
speed move the ratios by up to 2.5x between machines, so each CPU name LLVM reports keeps its own
recording; one without a recording is held to the largest). The test fails when the ratio grew by more than
the file's ``tolerance`` (0.25: 25 %).

Noise, and why this does not flake:

- only ratios are compared, never seconds, and both sides run interleaved (a slow phase of the shared
  machine hits both);
- numba runs on one thread (:func:`benchmarks.cases.one_thread`): the references are single-threaded, and
  a 2-thread kernel on a loaded machine would measure the load, not the code;
- medians of ``ROUNDS`` rounds after a warm-up call (no JIT time);
- a case over the limit is measured again with ``RETRY_ROUNDS`` rounds and fails only if that median ratio
  is over the limit too: a real regression persists, a burst of load does not.

The gate runs in CI's "performance gate" step (``TWINKERNEL_PERF_GATE=1``); elsewhere it is skipped so the
ordinary test run stays short. Record new ratios after an intended change (a faster kernel, a different
reference) with ``TWINKERNEL_PERF_GATE=1 TWINKERNEL_UPDATE_RATIOS=1 pytest
tests/performance/test_regression_gate.py`` (it writes this CPU's recording) and commit the JSON file.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
import numpy as np
import pytest

from benchmarks.bench_bootstrap import SEED, bare_hash_pass, bootstrap_values, scipy_interval
from benchmarks.bench_simulation import SEED as SIM_SEED
from benchmarks.bench_simulation import bare_pass_call
from benchmarks.cases import EMAIL, engine_for, hcp_population, interleaved_times, one_thread
from twinkernel import SimulationEngine, TwinPopulation
from twinkernel.bootstrap import bootstrap_ci

RATIOS_PATH = Path(__file__).with_name("regression_ratios.json")
ROUNDS = 5
RETRY_ROUNDS = 9
UPDATE = os.environ.get("TWINKERNEL_UPDATE_RATIOS") == "1"

pytestmark = pytest.mark.xdist_group(name="regression_gate")
gate = pytest.mark.skipif(
    os.environ.get("TWINKERNEL_PERF_GATE") != "1" and not UPDATE,
    reason="performance gate: run by CI's gate step (set TWINKERNEL_PERF_GATE=1)",
)
"""Marks the measuring tests; the checks of the recorded file run in every test run."""


def _ours(n: int, b: int, method: str, resampling: str) -> Callable[[], Any]:
    x = bootstrap_values(n)
    return lambda: bootstrap_ci(x, n_resamples=b, method=method, resampling=resampling, seed=SEED)


def _scipy(n: int, b: int, method: str) -> Callable[[], Any]:
    x = bootstrap_values(n)
    return lambda: scipy_interval(x, method, b)


def _bare(n: int, b: int, draws_per_hash: int) -> Callable[[], Any]:
    return lambda: bare_hash_pass(n // draws_per_hash, b)


@functools.cache
def _engine_and_bare(n: int) -> tuple[Any, Callable[[], float]]:
    population = hcp_population(n)
    return engine_for(population), bare_pass_call(population, EMAIL)


def _simulate(n: int) -> Callable[[], Any]:
    # Built on the first (warm-up) call, not at import: the gate is skipped outside CI's gate step.
    return lambda: _engine_and_bare(n)[0].simulate(EMAIL, seed=SIM_SEED)


def _bare_effects(n: int) -> Callable[[], Any]:
    return lambda: _engine_and_bare(n)[1]()


CASES: dict[str, tuple[Callable[[], Any], Callable[[], Any], str]] = {
    "multinomial_percentile_100k_x2000_vs_scipy": (
        _ours(100_000, 2000, "percentile", "multinomial"),
        _scipy(100_000, 2000, "percentile"),
        "scipy.stats.bootstrap percentile, same data and resamples",
    ),
    "poisson_percentile_100k_x2000_vs_scipy": (
        _ours(100_000, 2000, "percentile", "poisson"),
        _scipy(100_000, 2000, "percentile"),
        "scipy.stats.bootstrap percentile, same data and resamples",
    ),
    "multinomial_bca_1m_x1000_vs_bare_hashes": (
        _ours(1_000_000, 1000, "bca", "multinomial"),
        _bare(1_000_000, 1000, 5),
        "bare Numba pass generating n/5 hashes per replicate (the kernel's hash budget)",
    ),
    "poisson_bca_1m_x1000_vs_bare_hashes": (
        _ours(1_000_000, 1000, "bca", "poisson"),
        _bare(1_000_000, 1000, 4),
        "bare Numba pass generating n/4 hashes per replicate (the kernel's hash budget)",
    ),
    "simulate_1m_heterogeneity_vs_bare_effects_pass": (
        _simulate(1_000_000),
        _bare_effects(1_000_000),
        "bare Numba pass computing and summing the same 1 M effects (benchmarks.bench_simulation)",
    ),
}


def measure_ratio(
    ours: Callable[[], Any], reference: Callable[[], Any], rounds: int
) -> tuple[float, float, float]:
    """``(median ours / median reference, median ours s, median reference s)``, one thread, interleaved."""
    with one_thread():
        ours()
        reference()  # warm-up: compilation and caches are not timed
        times = interleaved_times({"ours": ours, "reference": reference}, rounds)
    mine = float(np.median(times["ours"]))
    ref = float(np.median(times["reference"]))
    return mine / ref, mine, ref


def _load() -> dict[str, Any]:
    """``{"tolerance": fraction, "cases": {case: record}, "machines": {cpu: {case: record}}}``."""
    return json.loads(RATIOS_PATH.read_text())


def host_cpu() -> str:
    """The CPU name LLVM compiles the kernels for (``znver5``, ``skylake-avx512``, ...): the machine class a
    ratio belongs to, since vector width moves kernel and reference apart."""
    return str(llvm.get_host_cpu_name())


def recorded_ratio(stored: dict[str, Any], case: str, cpu: str) -> tuple[float, str]:
    """The ratio ``case`` is held to on ``cpu`` and where it comes from: the record of that CPU when there
    is one, else the largest recorded for any machine (``cases`` and every entry of ``machines``)."""
    own = stored.get("machines", {}).get(cpu, {})
    if case in own:
        return float(own[case]["ratio"]), f"recorded on {cpu}"
    known = [stored["cases"].get(case), *(m.get(case) for m in stored.get("machines", {}).values())]
    ratios = [float(entry["ratio"]) for entry in known if entry is not None]
    assert ratios, f"no recorded ratio for {case!r}: record it with TWINKERNEL_UPDATE_RATIOS=1"
    return max(ratios), f"largest recorded ({cpu} has no record)"


def check_ratio(case: str, ours: Callable[[], Any], reference: Callable[[], Any], what: str) -> None:
    """Measure ``case``; record it for this CPU (``TWINKERNEL_UPDATE_RATIOS=1``) or hold it to its limit."""
    ratio, mine, ref = measure_ratio(ours, reference, ROUNDS)
    stored = _load()
    cpu = host_cpu()
    if UPDATE:
        stored.setdefault("machines", {}).setdefault(cpu, {})[case] = {
            "ratio": round(ratio, 4),
            "ours_s": round(mine, 4),
            "reference_s": round(ref, 4),
            "reference": what,
            "recorded": dt.date.today().isoformat(),
            "rounds": ROUNDS,
            "python": platform.python_version(),
        }
        RATIOS_PATH.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        return
    recorded, source = recorded_ratio(stored, case, cpu)
    tolerance = float(stored["tolerance"])
    limit = recorded * (1.0 + tolerance)
    if ratio > limit:  # measure again before failing: load bursts pass, regressions stay
        ratio, mine, ref = measure_ratio(ours, reference, RETRY_ROUNDS)
    assert ratio <= limit, (
        f"{case}: time / reference = {ratio:.4f} ({mine:.4f} s against {ref:.4f} s, {what}); "
        f"{source} {recorded:.4f}, limit {limit:.4f} (+{tolerance:.0%})"
    )


@gate
@pytest.mark.parametrize("case", sorted(CASES))
def test_ratio_did_not_regress(case: str) -> None:
    ours, reference, what = CASES[case]
    check_ratio(case, ours, reference, what)


# --- from_frame beside one simulate of the same population (issue 13) -------------------------------------
FRAME_ROWS = 1_000_000
FRAME_CASES = {
    f"from_frame_{flavour}_1m_vs_simulate": flavour for flavour in ("polars_strings", "pandas")
}  # fmt: skip


@gate
@pytest.mark.parametrize("case", sorted(FRAME_CASES))
def test_from_frame_ratio_did_not_regress(case: str) -> None:
    """``from_frame`` of 1 M user rows (string columns) over one ``simulate`` of that population."""
    from benchmarks.bench_population import raw_frame

    df = raw_frame(FRAME_ROWS, flavour=FRAME_CASES[case])
    built = TwinPopulation.from_frame(df)
    engine = SimulationEngine(built, cache=False)
    assert built.n == FRAME_ROWS and built.kernel_columns.specialty_labels[0] == "cardiology"
    ours = lambda: TwinPopulation.from_frame(df)  # noqa: E731
    reference = lambda: engine.simulate(EMAIL, seed=SEED)  # noqa: E731
    what = "simulate (heterogeneity on) of the population built from that frame"
    check_ratio(case, ours, reference, what)


def test_recorded_ratios_cover_every_case() -> None:
    stored = _load()
    assert 0.0 < stored["tolerance"] <= 0.5
    every = sorted([*CASES, *FRAME_CASES])
    assert sorted(stored["cases"]) == every
    for cpu, cases in stored["machines"].items():
        assert sorted(cases) == every, cpu
    for entries in [stored["cases"], *stored["machines"].values()]:
        for case, entry in entries.items():
            assert entry["ratio"] > 0.0, case


def test_recorded_ratio_is_the_cpus_own_else_the_largest() -> None:
    rec = lambda r: {"ratio": r}  # noqa: E731
    stored = {
        "cases": {"a": rec(2.0), "b": rec(1.0)},
        "machines": {"znver3": {"a": rec(1.5), "b": rec(3.0)}, "znver5": {"a": rec(0.5)}},
    }
    assert recorded_ratio(stored, "a", "znver5") == (0.5, "recorded on znver5")
    assert recorded_ratio(stored, "b", "znver3") == (3.0, "recorded on znver3")
    # no record of this CPU (or of this case on it): the loosest of all recordings
    assert recorded_ratio(stored, "a", "skylake") == (2.0, "largest recorded (skylake has no record)")
    assert recorded_ratio(stored, "b", "znver5")[0] == 3.0
    assert recorded_ratio({"cases": {"a": rec(2.0)}}, "a", "znver5")[0] == 2.0
    with pytest.raises(AssertionError, match="no recorded ratio for 'c'"):
        recorded_ratio(stored, "c", "znver5")
    assert host_cpu() == llvm.get_host_cpu_name() and host_cpu() != ""
