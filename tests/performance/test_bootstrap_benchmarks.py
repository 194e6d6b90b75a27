"""pytest-benchmark tests of the bootstrap CI kernels (issue 3, "Speed").

Each benchmark also asserts what it computed (the interval holds the population mean, the standard error
matches ``s / sqrt(n)``, BLB agrees with the exact bootstrap, segments are covered). No test asserts an
absolute time: speed is asserted only as a ratio measured side by side in this process, interleaved round
by round (against ``scipy.stats.bootstrap``, and BLB against the exact Poisson bootstrap), so a loaded
machine slows both sides alike. Absolute times are recorded by pytest-benchmark and gathered in
``docs/bootstrap.md``. Cases come from :mod:`benchmarks.bench_bootstrap`.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_bootstrap import (
    ENGINE_DIMS,
    analytic_se,
    bootstrap_values,
    engine_case,
    interleaved_times,
    run_engine,
    scipy_interval,
)
from benchmarks.cases import one_thread
from twinkernel.bootstrap import bootstrap_ci

pytestmark = [pytest.mark.xdist_group(name="bootstrap_benchmarks")]

SEED = 20_251_127
TRUE_MEAN = 2.0  # gamma(shape 2, scale 1)


def check_interval(result, x: np.ndarray, se_tolerance: float = 0.05) -> None:
    lo, hi = result.confidence_interval
    assert lo < result.estimate < hi
    assert lo <= TRUE_MEAN <= hi
    assert abs(result.standard_error / analytic_se(x) - 1.0) < se_tolerance


@pytest.mark.parametrize("resampling", ["multinomial", "poisson"])
def test_bca_2000_resamples_100k(benchmark, resampling):
    x = bootstrap_values(100_000)
    bootstrap_ci(x[:1000], n_resamples=10, resampling=resampling, seed=1)  # compile / load the cache
    result = benchmark.pedantic(
        bootstrap_ci,
        args=(x,),
        kwargs={"n_resamples": 2000, "resampling": resampling, "seed": SEED},
        rounds=3,
        warmup_rounds=1,
    )
    check_interval(result, x)


@pytest.mark.parametrize(("resampling", "rounds"), [("poisson", 3), ("multinomial", 3), ("blb", 3)])
def test_bca_1000_resamples_1m(benchmark, resampling, rounds):
    x = bootstrap_values(1_000_000)
    bootstrap_ci(x[:1000], n_resamples=10, resampling=resampling, seed=1)
    result = benchmark.pedantic(
        bootstrap_ci,
        args=(x,),
        kwargs={"n_resamples": 1000, "resampling": resampling, "seed": SEED},
        rounds=rounds,
        warmup_rounds=0,
    )
    check_interval(result, x, se_tolerance=0.1 if resampling == "blb" else 0.06)


def test_blb_matches_exact_at_1m_and_is_faster():
    x = bootstrap_values(1_000_000)
    exact = bootstrap_ci(x, n_resamples=1000, resampling="poisson", seed=SEED)
    blb = bootstrap_ci(x, n_resamples=1000, resampling="blb", seed=SEED)
    gap = np.abs(np.array(blb.confidence_interval) - np.array(exact.confidence_interval)).max()
    assert gap < 0.3 * analytic_se(x)
    assert blb.resampling == "blb" and exact.resampling == "poisson"
    times = interleaved_times(
        {
            "exact": lambda: bootstrap_ci(x, n_resamples=1000, resampling="poisson", seed=SEED),
            "blb": lambda: bootstrap_ci(x, n_resamples=1000, resampling="blb", seed=SEED),
        },
        3,
    )
    # Measured 3.4x (0.151 s against 0.508 s, docs/bootstrap.md); half of that leaves room for noise.
    ratio = float(np.median(times["exact"]) / np.median(times["blb"]))
    assert ratio >= 1.7, f"BLB only {ratio:.2f}x faster than the exact Poisson bootstrap"


def test_engine_intervals_1m_twins_all_segments(benchmark):
    effects, codes = engine_case(1_000_000)
    run_engine(10_000)
    out = benchmark.pedantic(run_engine, args=(1_000_000,), rounds=2, warmup_rounds=0)
    assert out.resampling == "poisson"
    assert out.ci_lower < effects.mean() < out.ci_upper
    for k, g in enumerate(ENGINE_DIMS):
        means = np.bincount(codes[k], weights=effects, minlength=g) / np.bincount(codes[k], minlength=g)
        assert (out.group_ci_lower[k] < means).all() and (means < out.group_ci_upper[k]).all()


@pytest.mark.parametrize(("n", "method"), [(10_000, "bca"), (100_000, "percentile")])
def test_speedup_against_scipy(n, method):
    x = bootstrap_values(n)
    bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=SEED)
    times = interleaved_times(
        {
            "ours": lambda: bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=SEED),
            "scipy": lambda: scipy_interval(x, method, 2000),
        },
        2,
    )
    speedup = float(np.median(times["scipy"]) / np.median(times["ours"]))
    ours = bootstrap_ci(x, n_resamples=2000, method=method, resampling="poisson", seed=SEED)
    theirs = scipy_interval(x, method, 2000)
    assert np.abs(np.array(ours.confidence_interval) - np.array(theirs)).max() < 0.25 * analytic_se(x)
    # a regression guard with head-room for a loaded machine (measured 19-380x; goals in docs/bootstrap.md)
    assert speedup >= (10.0 if method == "bca" else 5.0), f"speed-up {speedup:.1f}x"


def test_multinomial_speedup_against_scipy_one_thread():
    """Exact multinomial percentile, 100 000 values x 2 000 resamples, against scipy on one thread each.

    The issue's goal (20x scipy) is for the 2-core machine; on one thread the kernel measured 12-16x before
    the hashes-ahead drawing pass and 32x after it (regression gate recording, load 6-8; docs/bootstrap.md).
    The guard leaves room for a loaded machine; the regression gate (test_regression_gate.py) holds the
    recorded ratio to 25 %.
    """
    x = bootstrap_values(100_000)
    with one_thread():
        ours = bootstrap_ci(x, n_resamples=2000, method="percentile", resampling="multinomial", seed=SEED)
        times = interleaved_times(
            {
                "ours": lambda: bootstrap_ci(
                    x, n_resamples=2000, method="percentile", resampling="multinomial", seed=SEED
                ),
                "scipy": lambda: scipy_interval(x, "percentile", 2000),
            },
            3,
        )
    theirs = scipy_interval(x, "percentile", 2000)
    assert np.abs(np.array(ours.confidence_interval) - np.array(theirs)).max() < 0.25 * analytic_se(x)
    check_interval(ours, x)
    speedup = float(np.median(times["scipy"]) / np.median(times["ours"]))
    assert speedup >= 10.0, f"speed-up {speedup:.1f}x on one thread"
