"""Issue 13's benchmark table: every goal measured in one process, each beside its same-run reference.

    PYTHONPATH=. python -m benchmarks.issue13_table [--rounds N] [--scipy-bca-rounds K] [--quick]

Each row times a twinkernel call and its reference interleaved round by round (A, B, then B, A, ...) with
:func:`benchmarks.cases.interleaved_times`, after one warm-up call of each (no JIT time), and reports the
medians, ``ratio = time / reference`` and whether the goal is met. The cases are the existing benchmarks'
builders, imported (``bench_bootstrap``, ``bench_simulation``, ``bench_population``, ``bench_sweep``):

- exact multinomial bootstrap, percentile and BCa, 100 000 values x 2 000 resamples, against
  ``scipy.stats.bootstrap`` on the same data (goal: at least 20x faster). scipy's BCa runs an O(n**2)
  jackknife (about 1-4 minutes a call here), so it gets ``--scipy-bca-rounds`` rounds (default 1),
  interleaved with the first rounds of ours; ours runs ``--rounds`` rounds in all;
- BCa multinomial, 1 000 000 values x 1 000 (goal: under 1.5 s), beside a percentile run on the same data;
- ``simulate`` of 10 000 000 twins with heterogeneity against the bare effects pass (goal: at most 1.5x),
  at the default thread count and on one thread (the regression gate's setting);
- ``TwinPopulation.from_frame`` of 10 000 000 rows (Polars with string columns, pandas with ``object``
  columns) against one ``simulate`` of the population it builds (goal: at most 2x);
- ``SimulationEngine.sweep`` of 100 configs over 1 000 000 twins against the 100 ``simulate`` calls it
  replaces, untargeted and over four target selections, numba on one thread as in ``bench_sweep`` (goal:
  at least 10x faster; the configuration's ``performance.min_sweep_speedup`` is CI's guard below it).

The goals are read from the configuration's ``performance.issue13_goals`` into :data:`ISSUE13_GOALS`.
``--quick`` runs every row at small sizes for one round: a check that the script runs, whose "met?"
column means nothing. A full run took 290 s on the 2-core machine (load 3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import polars as pl
import scipy

from benchmarks.bench_bootstrap import bootstrap_values, scipy_interval
from benchmarks.bench_population import build, raw_frame
from benchmarks.bench_simulation import SEED, bare_pass_call, simulate_over_bare
from benchmarks.bench_sweep import simulate_loop, sweep_configs
from benchmarks.cases import EMAIL, clear_cache, engine_for, hcp_population, interleaved_times, one_thread
from benchmarks.cases import performance_limits as _performance_limits
from twinkernel.bootstrap import bootstrap_ci

__all__ = [
    "FULL",
    "ISSUE13_GOALS",
    "QUICK",
    "Goal",
    "Row",
    "Sizes",
    "bootstrap_rows",
    "from_frame_rows",
    "markdown_table",
    "simulate_rows",
    "sweep_rows",
]


@dataclass(frozen=True)
class Goal:
    """One goal of issue 13: ``kind`` is ``"min_speedup"`` (reference / time >= value), ``"max_ratio"``
    (time / reference <= value) or ``"max_seconds"`` (median time < value); ``guard`` is a lower CI limit of
    the same kind, shown when the goal is missed (the sweep's ``performance.min_sweep_speedup``)."""

    kind: str
    value: float
    guard: float | None = None

    def met(self, time_s: float, ref_s: float) -> bool:
        return self._holds(self.value, time_s, ref_s)

    def guard_met(self, time_s: float, ref_s: float) -> bool | None:
        return None if self.guard is None else self._holds(self.guard, time_s, ref_s)

    def _holds(self, value: float, time_s: float, ref_s: float) -> bool:
        if self.kind == "min_speedup":
            return ref_s / time_s >= value
        if self.kind == "max_ratio":
            return time_s / ref_s <= value
        if self.kind == "max_seconds":
            return time_s < value
        raise ValueError(f"`kind` must be min_speedup, max_ratio or max_seconds; got {self.kind!r}")

    @property
    def text(self) -> str:
        if self.kind == "min_speedup":
            out = f"≥ {self.value:g}× faster (ratio ≤ {1.0 / self.value:.3g})"
        elif self.kind == "max_ratio":
            out = f"ratio ≤ {self.value:g}"
        else:
            out = f"< {self.value:g} s"
        return out if self.guard is None else f"{out}; CI guard {self.guard:g}×"


_GOAL_KINDS: dict[str, str] = {
    "bootstrap_vs_scipy": "min_speedup",  # multinomial percentile and BCa, 100 000 x 2 000
    "bca_1m_seconds": "max_seconds",  # BCa multinomial, 1 000 000 x 1 000
    "simulate_over_bare": "max_ratio",  # 10 M twins with heterogeneity / bare effects pass
    "from_frame_over_simulate": "max_ratio",  # 10 M rows / one simulate of them
    "sweep_speedup": "min_speedup",  # 100 configs x 1 M twins vs 100 simulate calls
}
ISSUE13_GOALS: dict[str, tuple[str, float]] = {
    name: (kind, float(getattr(_performance_limits().issue13_goals, name)))
    for name, kind in _GOAL_KINDS.items()
}
"""Issue 13's goals ("What to build"): kinds here, values from ``performance.issue13_goals`` in the config."""


def goal(name: str) -> Goal:
    """The :class:`Goal` of :data:`ISSUE13_GOALS` ``name`` (the sweep's carries the configured CI guard)."""
    kind, value = ISSUE13_GOALS[name]
    guard = _performance_limits().min_sweep_speedup if name == "sweep_speedup" else None
    return Goal(kind, value, guard)


@dataclass(frozen=True)
class Row:
    """One measured row: medians in seconds of ``rounds`` calls of the case and ``ref_rounds`` of its
    reference, interleaved in the same rounds."""

    case: str
    time_s: float
    reference: str
    ref_s: float
    rounds: int
    ref_rounds: int
    goal: Goal

    @property
    def ratio(self) -> float:
        return self.time_s / self.ref_s

    @property
    def met(self) -> bool:
        return self.goal.met(self.time_s, self.ref_s)


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of every row (:data:`FULL` are issue 13's)."""

    boot_n: int = 100_000
    boot_resamples: int = 2000
    big_n: int = 1_000_000
    big_resamples: int = 1000
    twins: int = 10_000_000
    frame_rows: int = 10_000_000
    sweep_twins: int = 1_000_000
    sweep_configs: int = 100


FULL = Sizes()
QUICK = Sizes(
    boot_n=10_000,
    boot_resamples=500,
    big_n=100_000,
    big_resamples=200,
    twins=200_000,
    frame_rows=200_000,
    sweep_twins=100_000,
    sweep_configs=20,
)


def _n(v: int) -> str:
    """``1 000 000``: the thin-space-free grouping the README uses."""
    return f"{v:,}".replace(",", " ")


def _median(times: np.ndarray) -> float:
    return float(np.median(times))


def _ours(x: np.ndarray, b: int, method: str) -> Callable[[], Any]:
    return lambda: bootstrap_ci(x, n_resamples=b, method=method, resampling="multinomial", seed=SEED)


def bootstrap_rows(sizes: Sizes, rounds: int, scipy_bca_rounds: int) -> list[Row]:
    """Exact multinomial percentile and BCa against scipy, and the large BCa beside a percentile run.

    scipy's BCa runs for the first ``scipy_bca_rounds`` rounds (interleaved with ours); ours runs
    ``rounds`` rounds in all, the rest alone right after.
    """
    if not 1 <= scipy_bca_rounds <= rounds:
        raise ValueError(f"`scipy_bca_rounds` must be in [1, rounds={rounds}]; got {scipy_bca_rounds}")
    x = bootstrap_values(sizes.boot_n)
    b = sizes.boot_resamples
    size = f"{_n(sizes.boot_n)} values × {_n(b)} resamples"
    rows = []
    for method, ref_rounds in (("percentile", rounds), ("bca", scipy_bca_rounds)):
        mine = _ours(x, b, method)
        theirs = functools.partial(scipy_interval, x, method, b)
        mine()  # warm-up: compilation (or the cache load) is not timed
        times = interleaved_times({"ours": mine, "scipy": theirs}, ref_rounds)
        alone = interleaved_times({"ours": mine}, rounds - ref_rounds)["ours"]
        label = "BCa" if method == "bca" else method
        rows.append(
            Row(
                case=f"`bootstrap_ci` exact multinomial {label}, {size}",
                time_s=_median(np.concatenate([times["ours"], alone])),
                reference=f"`scipy.stats.bootstrap` {label}, same data and resamples",
                ref_s=_median(times["scipy"]),
                rounds=rounds,
                ref_rounds=ref_rounds,
                goal=goal("bootstrap_vs_scipy"),
            )
        )
    big = bootstrap_values(sizes.big_n)
    big_size = f"{_n(sizes.big_n)} values × {_n(sizes.big_resamples)} resamples"
    calls = {
        "bca": _ours(big, sizes.big_resamples, "bca"),
        "pct": _ours(big, sizes.big_resamples, "percentile"),
    }
    for fn in calls.values():
        fn()
    times = interleaved_times(calls, rounds)
    rows.append(
        Row(
            case=f"`bootstrap_ci` exact multinomial BCa, {big_size}",
            time_s=_median(times["bca"]),
            reference="`bootstrap_ci` multinomial percentile, same data and resamples (no goal on the ratio)",
            ref_s=_median(times["pct"]),
            rounds=rounds,
            ref_rounds=rounds,
            goal=goal("bca_1m_seconds"),
        )
    )
    return rows


def simulate_rows(sizes: Sizes, rounds: int) -> list[Row]:
    """``simulate`` (EMAIL, heterogeneity on) against the bare effects pass, default and one thread."""
    population = hcp_population(sizes.twins)
    engine = engine_for(population)
    bare = bare_pass_call(population, EMAIL)
    result = engine.simulate(EMAIL, seed=SEED)  # warm-up, and both sides compute the same effects:
    total = bare()
    if not math.isclose(total / sizes.twins, result.simulated_ate, rel_tol=1e-9, abs_tol=1e-12):
        raise AssertionError(
            f"bare pass mean {total / sizes.twins!r} != simulate ATE {result.simulated_ate!r}"
        )
    rows = []
    for one, threads in ((False, f"{numba.get_num_threads()} threads"), (True, "1 thread")):
        _, sim_s, bare_s = simulate_over_bare(engine, bare, rounds, one=one)
        rows.append(
            Row(
                case=f"`simulate` {_n(sizes.twins)} twins with heterogeneity, {threads}",
                time_s=sim_s,
                reference=f"bare effects pass over the same twins, {threads}",
                ref_s=bare_s,
                rounds=rounds,
                ref_rounds=rounds,
                goal=goal("simulate_over_bare"),
            )
        )
    clear_cache()  # the memoised population (10 M twins: about 0.7 GB) is not needed again
    return rows


def from_frame_rows(sizes: Sizes, rounds: int) -> list[Row]:
    """``from_frame`` of a user's frame (Polars strings, pandas objects) against one ``simulate`` of it."""
    rows = []
    for flavour, label in (
        ("polars_strings", "Polars, string columns"),
        ("pandas", "pandas, `object` columns"),
    ):
        df = raw_frame(sizes.frame_rows, flavour=flavour)
        population = build(df)  # warm-up
        if population.frame.height != sizes.frame_rows:
            raise AssertionError(f"from_frame kept {population.frame.height} of {sizes.frame_rows} rows")
        engine = engine_for(population)
        engine.simulate(EMAIL, seed=SEED)
        times = interleaved_times(
            {
                "from_frame": lambda df=df: build(df),
                "simulate": lambda e=engine: e.simulate(EMAIL, seed=SEED),
            },
            rounds,
        )
        rows.append(
            Row(
                case=f"`TwinPopulation.from_frame`, {_n(sizes.frame_rows)} rows, {label}",
                time_s=_median(times["from_frame"]),
                reference="one `simulate` (heterogeneity on) of the population it builds",
                ref_s=_median(times["simulate"]),
                rounds=rounds,
                ref_rounds=rounds,
                goal=goal("from_frame_over_simulate"),
            )
        )
        del df, population, engine
    return rows


def sweep_rows(sizes: Sizes, rounds: int) -> list[Row]:
    """``sweep`` of k configs against the k ``simulate`` calls, untargeted and over 4 target selections."""
    engine = engine_for(hcp_population(sizes.sweep_twins))
    k = sizes.sweep_configs
    rows = []
    for targeted in (False, True):
        configs = sweep_configs(k, targeted)
        with one_thread():
            frame = engine.sweep(configs, seed=SEED)  # warm-up, and the rows equal simulate's:
            check = configs[:: max(1, k // 4)]
            if frame["ate"].to_list()[:: max(1, k // 4)] != simulate_loop(engine, check, SEED):
                raise AssertionError("a sweep row's ATE differs from its simulate ATE")
            times = interleaved_times(
                {
                    "sweep": lambda c=configs: engine.sweep(c, seed=SEED),
                    "loop": lambda c=configs: simulate_loop(engine, c, SEED),
                },
                rounds,
            )
        where = ", 4 target selections (4 passes)" if targeted else ", one pass"
        rows.append(
            Row(
                case=f"`sweep` {k} configs × {_n(sizes.sweep_twins)} twins{where}, 1 thread",
                time_s=_median(times["sweep"]),
                reference=f"{k} `simulate` calls, same configs and seed, 1 thread",
                ref_s=_median(times["loop"]),
                rounds=rounds,
                ref_rounds=rounds,
                goal=goal("sweep_speedup"),
            )
        )
    return rows


def _ratio_cell(row: Row) -> str:
    faster = row.goal.kind == "min_speedup" and row.ratio > 0.0
    return f"{row.ratio:.4g}" + (f" ({1.0 / row.ratio:.1f}× faster)" if faster else "")


def _met_cell(row: Row) -> str:
    if row.met:
        return "yes"
    guard = row.goal.guard_met(row.time_s, row.ref_s)
    return "**no**" + ("" if guard is None else f" (CI guard {'met' if guard else 'missed'})")


def markdown_table(rows: Sequence[Row]) -> str:
    """The Markdown table: case | time (median) | reference (median, same run) | ratio | goal | met?"""
    lines = [
        "| case | time (median) | reference (median, same run) | ratio | goal | met? |",
        "|---|---:|---|---:|---|---|",
    ]
    for r in rows:
        rounds = f"{r.rounds} round{'s' * (r.rounds != 1)}"
        ref_rounds = f"{r.ref_rounds} round{'s' * (r.ref_rounds != 1)}"
        lines.append(
            f"| {r.case} ({rounds}) | {r.time_s:.4g} s | {r.ref_s:.4g} s: {r.reference} ({ref_rounds}) "
            f"| {_ratio_cell(r)} | {r.goal.text} | {_met_cell(r)} |"
        )
    return "\n".join(lines)


def environment_line(load_before: Sequence[float], load_after: Sequence[float]) -> str:
    """Versions, threads, load averages (1, 5, 15 min) before and after, and the UTC date."""
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs; "
        f"{platform.python_implementation()} {platform.python_version()}, numba {numba.__version__} "
        f"({numba.threading_layer()} layer, {numba.get_num_threads()} threads), numpy {np.__version__}, "
        f"scipy {scipy.__version__}, polars {pl.__version__}; load average before "
        f"{' / '.join(f'{v:.2f}' for v in load_before)}, after {' / '.join(f'{v:.2f}' for v in load_after)}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds per row (default 5; 1 quick)"
    )
    ap.add_argument("--scipy-bca-rounds", type=int, default=1, help="rounds of scipy's BCa (default 1)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one round: checks the script runs")
    args = ap.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if rounds < 1:
        ap.error(f"--rounds must be a positive integer; got {rounds}")
    sizes = QUICK if args.quick else FULL
    scipy_bca_rounds = min(args.scipy_bca_rounds, rounds)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows: list[Row] = []
    for part in (
        lambda: bootstrap_rows(sizes, rounds, scipy_bca_rounds),
        lambda: simulate_rows(sizes, rounds),
        lambda: from_frame_rows(sizes, rounds),
        lambda: sweep_rows(sizes, rounds),
    ):
        rows.extend(part())
        print(f"... {len(rows)} rows measured, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    command = f"PYTHONPATH=. python -m benchmarks.issue13_table {' '.join(argv or sys.argv[1:])}"
    print(f"Command: `{command.rstrip()}`")
    print()
    print(markdown_table(rows))
    print()
    print(environment_line(load_before, load_after) + f"; wall time {time.perf_counter() - t0:.0f} s.")
    print(
        "ratio = time / reference (medians of rounds interleaved with the reference in this process); "
        f"scipy's BCa: {scipy_bca_rounds} round(s), interleaved with the first of ours."
    )
    if args.quick:
        print("--quick: small sizes, so the goals (stated for the full sizes) are not judged by this run.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
