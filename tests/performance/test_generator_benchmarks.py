"""Twin generation speed and memory (pytest-benchmark).

Case builders are shared with ``benchmarks/bench_generator.py``. No absolute time is asserted (a loaded
machine would fail it): each speed check is a ratio against a reference measured in the same test —
``train`` against one bare fit of the same scikit-learn model on the same rows, ``generate(1_000_000)``
against scikit-learn's own ``predict`` on the same 1 000 000 feature rows, batched generation against the
original per-twin approach. The seconds are recorded (pytest-benchmark, ``extra_info``), not asserted.
Peak memory of ``generate(1_000_000)`` stays under 1 GB.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks.bench_generator import (
    bare_fit_seconds,
    per_twin_rate,
    sklearn_predict_seconds,
    train_generator,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_50k():
    gen, seconds = train_generator(50_000)
    gen.generate(1000, seed=0)  # warm-up: kernels compiled before anything is timed
    gen.generate(1000, constraints={"decile": 3}, seed=0)
    return gen, seconds


# A bare fit is one of the 1 + cv_folds fits train does; the rest (importances, NORTA) is small next to it.
TRAIN_VS_BARE_FIT_MAX = 40.0
# generate(n) = one batched tree walk (the numba kernel, faster than scikit-learn) + sampling + frame.
GENERATE_VS_SKLEARN_PREDICT_MAX = 4.0


def test_train_50k_rows_relative_to_a_bare_fit(benchmark, trained_50k):
    gen, seconds = trained_50k
    bare = benchmark.pedantic(bare_fit_seconds, args=(gen,), rounds=1, iterations=1)
    benchmark.extra_info.update({"train_seconds": seconds, "bare_fit_seconds": bare, "ratio": seconds / bare})
    assert gen.metrics.training_rows == 40_000 and gen.metrics.r2 > 0.8
    assert len(gen.metrics.cv_scores) == gen.config.twin_generation.cv_folds
    assert seconds / bare < TRAIN_VS_BARE_FIT_MAX, f"train {seconds:.1f} s vs one bare fit {bare:.2f} s"


def test_generate_1m_relative_to_sklearn_predict(benchmark, trained_50k):
    gen, _ = trained_50k
    pop = benchmark.pedantic(gen.generate, args=(1_000_000,), kwargs={"seed": 1}, rounds=2, iterations=1)
    assert pop.n == 1_000_000 and pop.frame["baseline_outcome"].null_count() == 0
    seconds = benchmark.stats.stats.min
    reference = sklearn_predict_seconds(gen, pop.frame)
    benchmark.extra_info.update(
        {
            "twins_per_second": 1_000_000 / seconds,
            "sklearn_predict_seconds": reference,
            "ratio": seconds / reference,
        }
    )
    assert seconds / reference < GENERATE_VS_SKLEARN_PREDICT_MAX, (
        f"generate(1M) {seconds:.2f} s vs scikit-learn predict on the same rows {reference:.2f} s"
    )


# The mixture adds a component draw and per-component column mapping to the single copula's sampling; the
# batched tree walk dominates both.
MIXTURE_VS_COPULA_MAX = 1.6


def test_mixture_generate_relative_to_single_copula(benchmark, trained_50k):
    gen, _ = trained_50k
    single = copy.copy(gen)
    single.components = ()  # the same model drawn from its single copula (the pre-issue-12 synthesis)
    single.generate(1000, seed=0)
    copula_seconds = min(_seconds(single.generate, 1_000_000) for _ in range(2))
    benchmark.pedantic(gen.generate, args=(1_000_000,), kwargs={"seed": 1}, rounds=2, iterations=1)
    mixture_seconds = benchmark.stats.stats.min
    ratio = mixture_seconds / copula_seconds
    benchmark.extra_info.update({"copula_seconds": copula_seconds, "ratio": ratio})
    assert len(gen.components) > 1
    assert ratio < MIXTURE_VS_COPULA_MAX, f"mixture {mixture_seconds:.2f} s vs copula {copula_seconds:.2f} s"


def _seconds(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n, seed=1)
    return time.perf_counter() - start


def test_batched_vs_per_twin(benchmark, trained_50k):
    gen, _ = trained_50k
    slow = per_twin_rate(gen, 100)  # the original approach, same process, same model
    benchmark.pedantic(gen.generate, args=(100_000,), kwargs={"seed": 2}, rounds=3, iterations=1)
    fast = 100_000 / benchmark.stats.stats.min
    benchmark.extra_info.update(
        {"per_twin_per_second": slow, "batched_per_second": fast, "speedup": fast / slow}
    )
    assert fast / slow > 100  # 400x at 1M measured; per-twin predict is very load-sensitive


def test_generate_1m_peak_memory_under_1gb():
    script = textwrap.dedent(
        """
        import json
        from benchmarks.bench_generator import trained
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        gen = trained(20_000)
        before = status("VmRSS")
        pop = gen.generate(1_000_000, seed=1)
        # VmHWM is this process image's peak; ru_maxrss would carry the forking parent's peak across exec.
        peak = status("VmHWM")
        print(json.dumps({"before": before, "peak": peak, "n": pop.n}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n"] == 1_000_000
    assert res["peak"] < 1024, f"process peak {res['peak']:.0f} MiB"  # whole process, libraries included
    assert res["peak"] - res["before"] < 600, f"generate(1M) added {res['peak'] - res['before']:.0f} MiB"
