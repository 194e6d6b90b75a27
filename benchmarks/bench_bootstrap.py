"""asv benchmarks of the bootstrap CI kernels (issue 3, "Speed"), and the side-by-side table.

Targets on the 2-core machine: BCa with 2 000 resamples on 100 000 values under 0.3 s; 1 000 resamples on
1 000 000 values under 1.5 s exact and under 0.5 s with the Bag of Little Bootstraps; at least 20x faster
than ``scipy.stats.bootstrap`` (vectorised, ``batch`` set to fit memory) on the same data and method; the
engine's BCa intervals for 1 000 000 twins, overall and for every segment, within the 2 s simulation budget.

Inputs are seeded case builders defined here (shared with ``tests/performance/test_bootstrap_benchmarks.py``).
Every ``setup`` does one warm-up call so JIT compilation is never timed. scipy's BCa jackknife is O(n**2)
in time, so the side-by-side scipy benchmarks use smaller sizes.

Run offline::

    asv machine --yes
    asv run -E existing:/work/main/.venv/bin/python --quick --set-commit-hash $(git rev-parse HEAD) \\
        --bench bench_bootstrap

The Markdown tables of ``docs/bootstrap.md`` come from::

    /work/main/.venv/bin/python -m benchmarks.bench_bootstrap --rounds 5 --scipy-rounds 1
    /work/main/.venv/bin/python -m benchmarks.bench_bootstrap --blb-accuracy
"""

from __future__ import annotations

import argparse
import functools
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import numba
import numpy as np
from scipy import stats

from twinkernel.bootstrap import bootstrap_ci, engine_intervals
from twinkernel.kernels._rng import mix64

SEED = 20_251_127
ENGINE_DIMS = (8, 10, 5, 6)  # specialties, deciles, regions, adoption stages


@functools.lru_cache(maxsize=8)
def bootstrap_values(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` seeded, right-skewed values (gamma, shape 2, mean 2); read-only like a Polars column."""
    x = np.random.default_rng(seed).gamma(2.0, size=n)
    x.flags.writeable = False
    return x


@functools.lru_cache(maxsize=4)
def engine_case(n: int, seed: int = SEED) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Per-twin effects (mean 0.05) and segment codes of four dimensions, like the engine passes them."""
    rng = np.random.default_rng(seed)
    effects = rng.normal(0.05, 0.02, n) * rng.gamma(4.0, 0.25, n)
    codes = tuple(rng.integers(0, g, n).astype(np.int8) for g in ENGINE_DIMS)
    return effects, codes


def run_engine(n: int, n_resamples: int = 2000, blb_min_n: int = 2_000_000, method: str = "bca") -> Any:
    """``engine_intervals`` on :func:`engine_case` with the engine's defaults."""
    effects, codes = engine_case(n)
    return engine_intervals(
        effects,
        codes,
        ENGINE_DIMS,
        method=method,
        n_resamples=n_resamples,
        confidence_level=0.95,
        seed=SEED,
        blb_min_n=blb_min_n,
    )


def scipy_interval(x: np.ndarray, method: str, n_resamples: int) -> tuple[float, float]:
    """``scipy.stats.bootstrap`` vectorised, with ``batch`` chosen so one batch holds about 2e7 values."""
    res = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        method={"bca": "BCa"}.get(method, method),
        batch=max(1, 20_000_000 // x.shape[0]),
        rng=np.random.default_rng(SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@numba.njit(parallel=True)  # no cache: the module is imported under different names by asv and pytest
def bare_hash_pass(n_hashes: int, n_resamples: int) -> np.ndarray:
    """The floor of any counter-based bootstrap: ``n_hashes`` splitmix64 hashes per replicate, xor-folded.

    A same-run reference for the regression gate (``tests/performance/test_regression_gate.py``): it does
    only the hashing a kernel needs, so ``kernel time / this`` measures the kernel, not the machine.
    """
    out = np.empty(n_resamples, dtype=np.uint64)
    for b in numba.prange(n_resamples):
        acc = np.uint64(0)
        x = np.uint64(b) << np.uint64(40)
        for _ in range(n_hashes):
            acc ^= mix64(x)
            x += np.uint64(1)
        out[b] = acc
    return out


def analytic_se(x: np.ndarray) -> float:
    """``s / sqrt(n)``, the standard error the bootstrap estimates."""
    return float(x.std(ddof=1) / np.sqrt(x.shape[0]))


def _resamples_for(n: int) -> int:
    return 1000 if n >= 1_000_000 else 2000


class TimeBootstrapCI:
    """``bootstrap_ci`` (BCa) by size and resampling scheme; 2 000 resamples (1 000 at 1 000 000 values)."""

    params = ([10_000, 100_000, 1_000_000], ["multinomial", "poisson", "blb"])
    param_names = ("n", "resampling")
    timeout = 300.0

    def setup(self, n: int, resampling: str) -> None:
        self.x = bootstrap_values(n)
        self.b = _resamples_for(n)
        self.result = bootstrap_ci(self.x, n_resamples=self.b, resampling=resampling, seed=SEED)

    def time_bootstrap_ci(self, n: int, resampling: str) -> None:
        bootstrap_ci(self.x, n_resamples=self.b, resampling=resampling, seed=SEED)

    def peakmem_bootstrap_ci(self, n: int, resampling: str) -> None:
        bootstrap_ci(self.x, n_resamples=self.b, resampling=resampling, seed=SEED)

    def track_se_ratio(self, n: int, resampling: str) -> float:
        """Bootstrap standard error over ``s / sqrt(n)`` (1 up to Monte-Carlo error)."""
        return self.result.standard_error / analytic_se(self.x)

    track_se_ratio.unit = "ratio"

    def track_true_mean_inside(self, n: int, resampling: str) -> float:
        """1.0 when the interval holds the population mean (2.0)."""
        lo, hi = self.result.confidence_interval
        return float(lo <= 2.0 <= hi)

    track_true_mean_inside.unit = "bool"


class TimeMethods:
    """The three interval methods on 100 000 values (2 000 Poisson resamples)."""

    params = (["percentile", "basic", "bca"],)
    param_names = ("method",)

    def setup(self, method: str) -> None:
        self.x = bootstrap_values(100_000)
        bootstrap_ci(self.x, n_resamples=2000, method=method, resampling="poisson", seed=SEED)

    def time_method(self, method: str) -> None:
        bootstrap_ci(self.x, n_resamples=2000, method=method, resampling="poisson", seed=SEED)


class TimeVersusScipy:
    """Side by side with ``scipy.stats.bootstrap`` on the same data and method (2 000 resamples)."""

    params = ([1_000, 10_000], ["percentile", "basic", "bca"])
    param_names = ("n", "method")
    timeout = 300.0

    def setup(self, n: int, method: str) -> None:
        self.x = bootstrap_values(n)
        self.ours = bootstrap_ci(self.x, n_resamples=2000, method=method, seed=SEED)
        self.theirs = scipy_interval(self.x, method, 2000)

    def time_twinkernel(self, n: int, method: str) -> None:
        bootstrap_ci(self.x, n_resamples=2000, method=method, seed=SEED)

    def time_scipy(self, n: int, method: str) -> None:
        scipy_interval(self.x, method, 2000)

    def peakmem_scipy(self, n: int, method: str) -> None:
        scipy_interval(self.x, method, 2000)

    def track_speedup(self, n: int, method: str) -> float:
        """Median scipy time over median twinkernel time, measured interleaved here."""
        times = interleaved_times(
            {
                "ours": lambda: bootstrap_ci(self.x, n_resamples=2000, method=method, seed=SEED),
                "scipy": lambda: scipy_interval(self.x, method, 2000),
            },
            3,
        )
        return float(np.median(times["scipy"]) / np.median(times["ours"]))

    track_speedup.unit = "x"

    def track_endpoint_gap_in_se(self, n: int, method: str) -> float:
        """Largest endpoint difference from scipy, in standard errors (Monte-Carlo error ~0.05-0.1)."""
        gap = np.abs(np.array(self.ours.confidence_interval) - np.array(self.theirs)).max()
        return float(gap / analytic_se(self.x))

    track_endpoint_gap_in_se.unit = "SE"


class TimeEngineIntervals:
    """``engine_intervals``: BCa for the ATE and all segments of four dimensions, 2 000 resamples."""

    params = ([100_000, 1_000_000],)
    param_names = ("n_twins",)
    timeout = 300.0

    def setup(self, n: int) -> None:
        self.result = run_engine(n)

    def time_engine_intervals(self, n: int) -> None:
        run_engine(n)

    def peakmem_engine_intervals(self, n: int) -> None:
        run_engine(n)

    def track_se_ratio(self, n: int) -> float:
        """Bootstrap standard error of the ATE over ``s / sqrt(n)``."""
        return self.result.standard_error / analytic_se(engine_case(n)[0])

    track_se_ratio.unit = "ratio"


class TrackBlbAccuracy:
    """Bag of Little Bootstraps against the exact (Poisson) bootstrap on the same data, in standard errors."""

    params = ([100_000, 1_000_000], ["percentile", "bca"])
    param_names = ("n", "method")
    timeout = 300.0

    def setup(self, n: int, method: str) -> None:
        x = bootstrap_values(n)
        self.se = analytic_se(x)
        self.exact = bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=SEED)
        self.blb = bootstrap_ci(x, n_resamples=2000, method=method, resampling="blb", seed=SEED)

    def track_endpoint_gap_in_se(self, n: int, method: str) -> float:
        gap = np.abs(np.array(self.blb.confidence_interval) - np.array(self.exact.confidence_interval)).max()
        return float(gap / self.se)

    track_endpoint_gap_in_se.unit = "SE"


# ----------------------------------------------------------------------------------------------------------
# The side-by-side table.


def interleaved_times(calls: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, np.ndarray]:
    """Time each callable ``repeats`` times, round by round (a slow phase of the machine hits all alike)."""
    names = list(calls)
    out = {name: np.empty(repeats) for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            calls[name]()
            out[name][r] = time.perf_counter() - t
    return out


def table_rows(rounds: int, scipy_rounds: int) -> list[tuple[str, float, float | None, str]]:
    """``(case, our median s, scipy median s or None, target)`` for every row of the README table."""
    x100k = bootstrap_values(100_000)
    x1m = bootstrap_values(1_000_000)
    x10k = bootstrap_values(10_000)

    def ours(x: np.ndarray, b: int, method: str = "bca", resampling: str = "poisson") -> Callable[[], Any]:
        return lambda: bootstrap_ci(x, n_resamples=b, method=method, resampling=resampling, seed=SEED)

    cases: dict[str, tuple[Callable[[], Any], str]] = {
        "BCa, 2 000 resamples, 100 000 values, poisson": (ours(x100k, 2000), "< 0.3 s"),
        "BCa, 2 000 resamples, 100 000 values, multinomial": (
            ours(x100k, 2000, resampling="multinomial"),
            "",
        ),
        "BCa, 1 000 resamples, 1 000 000 values, poisson": (ours(x1m, 1000), "< 1.5 s"),
        "BCa, 1 000 resamples, 1 000 000 values, multinomial": (
            ours(x1m, 1000, resampling="multinomial"),
            "< 1.5 s",
        ),
        "BCa, 1 000 resamples, 1 000 000 values, BLB": (ours(x1m, 1000, resampling="blb"), "< 0.5 s"),
        "engine_intervals BCa, 1 000 000 twins, ATE + 29 segments, 2 000 resamples": (
            lambda: run_engine(1_000_000),
            "< 2 s incl. simulation",
        ),
        "percentile, 2 000 resamples, 100 000 values, poisson": (ours(x100k, 2000, "percentile"), ""),
        "percentile, 2 000 resamples, 100 000 values, multinomial": (
            ours(x100k, 2000, "percentile", "multinomial"),
            "",
        ),
        "BCa, 2 000 resamples, 10 000 values, multinomial": (ours(x10k, 2000, resampling="multinomial"), ""),
    }
    scipy_for = {
        "percentile, 2 000 resamples, 100 000 values, poisson": (x100k, "percentile", 2000),
        "percentile, 2 000 resamples, 100 000 values, multinomial": (x100k, "percentile", 2000),
        "BCa, 2 000 resamples, 10 000 values, multinomial": (x10k, "bca", 2000),
        "BCa, 2 000 resamples, 100 000 values, poisson": (x100k, "bca", 2000),
        "BCa, 2 000 resamples, 100 000 values, multinomial": (x100k, "bca", 2000),
    }
    for fn, _ in cases.values():
        fn()  # warm-up: JIT compilation (or cache load) is not timed
    times = interleaved_times({k: fn for k, (fn, _) in cases.items()}, rounds)
    scipy_calls: dict[str, Callable[[], Any]] = {}
    for x, method, b in scipy_for.values():
        label = f"{method}:{x.shape[0]}:{b}"
        scipy_calls.setdefault(label, functools.partial(scipy_interval, x, method, b))
    scipy_times = interleaved_times(scipy_calls, scipy_rounds) if scipy_rounds else {}
    rows = []
    for key, (_, target) in cases.items():
        theirs = None
        if key in scipy_for and scipy_times:
            x, method, b = scipy_for[key]
            theirs = float(np.median(scipy_times[f"{method}:{x.shape[0]}:{b}"]))
        rows.append((key, float(np.median(times[key])), theirs, target))
    return rows


def multinomial_rows(rounds: int, scipy_bca_rounds: int) -> list[tuple[str, float, float | None, str]]:
    """``(case, our median s, scipy median s or None, target)`` for the exact multinomial goals (issue 13).

    Each case runs interleaved with its ``scipy.stats.bootstrap`` reference in the same rounds (ours,
    scipy, then scipy, ours, ...), so a busy phase of the shared machine hits both sides. scipy's BCa on
    100 000 values takes about a minute per call (an O(n**2) jackknife), so it gets its own round count.
    """
    x100k = bootstrap_values(100_000)
    x1m = bootstrap_values(1_000_000)

    def ours(x: np.ndarray, b: int, method: str) -> Callable[[], Any]:
        return lambda: bootstrap_ci(x, n_resamples=b, method=method, resampling="multinomial", seed=SEED)

    rows: list[tuple[str, float, float | None, str]] = []
    for method, n_scipy in (("percentile", rounds), ("bca", scipy_bca_rounds)):
        label = f"{'BCa' if method == 'bca' else method}, 2 000 resamples, 100 000 values, multinomial"
        mine = ours(x100k, 2000, method)
        mine()  # warm-up: JIT compilation (or cache load) is not timed
        if n_scipy:
            calls = {"ours": mine, "scipy": functools.partial(scipy_interval, x100k, method, 2000)}
            times = interleaved_times(calls, n_scipy)
            extra = interleaved_times({"ours": mine}, max(0, rounds - n_scipy))["ours"]
            ours_t = float(np.median(np.concatenate([times["ours"], extra])))
            rows.append((label, ours_t, float(np.median(times["scipy"])), ">= 20x scipy"))
        else:
            alone = interleaved_times({"ours": mine}, rounds)["ours"]
            rows.append((label, float(np.median(alone)), None, ""))
    big = ours(x1m, 1000, "bca")
    big()
    rows.append(
        (
            "BCa, 1 000 resamples, 1 000 000 values, multinomial",
            float(np.median(interleaved_times({"ours": big}, rounds)["ours"])),
            None,
            "< 1.5 s",
        )
    )
    return rows


def print_rows(rows: list[tuple[str, float, float | None, str]]) -> None:
    """The Markdown table of :func:`table_rows` or :func:`multinomial_rows`."""
    print("| case | twinkernel median (s) | scipy.stats.bootstrap median (s) | speed-up | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    for case, ours_s, theirs_s, target in rows:
        theirs = f"{theirs_s:.3f}" if theirs_s is not None else ""
        ratio = f"{theirs_s / ours_s:.0f}x" if theirs_s is not None else ""
        print(f"| {case} | {ours_s:.3f} | {theirs} | {ratio} | {target} |")


def blb_accuracy_rows(seeds: int = 5) -> list[str]:
    """Markdown rows: BLB against the exact Poisson bootstrap (2 000 resamples), endpoint gaps in SE."""
    rows = []
    for n in (100_000, 1_000_000):
        for dist in ("gamma(2)", "lognormal(0, 1)"):
            rng = np.random.default_rng(5)
            x = rng.gamma(2.0, size=n) if dist == "gamma(2)" else rng.lognormal(0.0, 1.0, n)
            se = analytic_se(x)
            for method in ("percentile", "bca"):
                gaps, ratios = [], []
                for seed in range(seeds):
                    exact = bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=seed)
                    blb = bootstrap_ci(x, n_resamples=2000, method=method, resampling="blb", seed=seed)
                    diff = np.array(blb.confidence_interval) - np.array(exact.confidence_interval)
                    gaps.append(np.abs(diff).max() / se)
                    ratios.append(blb.standard_error / exact.standard_error)
                a = bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=100)
                b = bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=101)
                floor = np.abs(np.array(a.confidence_interval) - np.array(b.confidence_interval)).max() / se
                size = f"{n:_}".replace("_", " ")
                rows.append(
                    f"| {size} | {dist} | {method} | {np.mean(gaps):.3f} | {np.max(gaps):.3f} | {floor:.3f} "
                    f"| {np.mean(ratios):.3f} |"
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scipy-rounds", type=int, default=1, help="0 skips scipy (100k BCa: ~90 s)")
    parser.add_argument("--blb-accuracy", action="store_true", help="print the BLB accuracy table instead")
    parser.add_argument(
        "--multinomial",
        action="store_true",
        help="only the exact multinomial goals, interleaved with scipy (--scipy-rounds: scipy BCa rounds)",
    )
    args = parser.parse_args()
    if args.blb_accuracy:
        print("| n | data | method | BLB vs exact, mean | max | exact vs exact | BLB SE / exact SE |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
        print("\n".join(blb_accuracy_rows()))
        return
    rows = (
        multinomial_rows(args.rounds, args.scipy_rounds)
        if args.multinomial
        else table_rows(args.rounds, args.scipy_rounds)
    )
    print(
        f"numba threads: {numba.get_num_threads()}, layer: {numba.threading_layer()}, "
        f"python {platform.python_version()}, numpy {np.__version__}, rounds {args.rounds} "
        f"(scipy {args.scipy_rounds})\n"
    )
    print_rows(rows)


if __name__ == "__main__":
    main()
