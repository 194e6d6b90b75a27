"""asv benchmarks for twin generation, plus the side-by-side table in ``docs/generator.md``.

Cases are seeded builders shared with ``tests/performance/test_generator_benchmarks.py``: a synthetic HCP
world (``twinkernel.synthetic.hcp_world``) turned into one training row per HCP. Every ``setup`` does one
warm-up ``generate`` so numba compilation is never measured.

Print the table (batched generation next to the original per-twin approach, measured in one run)::

    .venv/bin/python -m benchmarks.bench_generator

``generate(1 M)`` before and after issue 12's speed work, interleaved (medians of 5 rounds)::

    .venv/bin/python -m benchmarks.bench_generator old-vs-new 1000000 5
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any, ClassVar

import polars as pl

from twinkernel import synthetic
from twinkernel.twin_generator import TwinGenerator

TRAIN_ROWS = 50_000
SEED = 20


@functools.lru_cache(maxsize=4)
def training_frame(n_hcps: int = TRAIN_ROWS, seed: int = SEED) -> pl.DataFrame:
    """One row per HCP of a seeded synthetic world (target ``brand_share``)."""
    return synthetic.hcp_training_frame(synthetic.hcp_world(n_hcps, months=6, seed=seed))


def train_generator(n_hcps: int = TRAIN_ROWS, seed: int = SEED) -> tuple[TwinGenerator, float]:
    """Train on ``n_hcps`` rows; returns the generator and the wall-clock training time."""
    frame = training_frame(n_hcps, seed)
    gen = TwinGenerator("hcp", "Kisqali")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unexpected while training
        # one prediction month: training says it cannot split or cross-validate by time (expected here)
        warnings.filterwarnings("ignore", message="not (split|cross-validated) by time")
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")  # mlflow's own import-time notices
        gen.train(frame, "brand_share", time_col="month")
    return gen, time.perf_counter() - start


@functools.lru_cache(maxsize=2)
def trained(n_hcps: int = 20_000, seed: int = SEED) -> TwinGenerator:
    gen, _ = train_generator(n_hcps, seed)
    gen.generate(1000, seed=0)  # warm-up: compile the kernels
    gen.generate(1000, constraints={"decile": 3, "region": {"west", "midwest"}}, seed=0)
    return gen


def per_twin_rate(gen: TwinGenerator, n: int = 200) -> float:
    """Twins per second of the original approach (independent marginals, one predict per twin)."""
    from tests.naive_generator import per_twin_generate

    start = time.perf_counter()
    per_twin_generate(gen, n, seed=1)
    return n / (time.perf_counter() - start)


def bare_fit_seconds(gen: TwinGenerator, n_hcps: int = TRAIN_ROWS, seed: int = SEED) -> float:
    """Seconds of one fit of the generator's configured outcome model on its own training rows: the
    same-run reference for ``train`` (which does ``1 + cv_folds`` such fits plus importances and NORTA)."""
    from twinkernel.twin_generator.outcome import fit_model

    assert gen.training_rows_ is not None and gen.algorithm is not None
    frame = training_frame(n_hcps, seed)[gen.training_rows_]
    X = gen.feature_matrix(frame)
    y = frame["brand_share"].to_numpy()
    start = time.perf_counter()
    fit_model(gen.algorithm, X, y, gen.tg, gen.tg.sklearn_threads)
    return time.perf_counter() - start


def sklearn_predict_seconds(gen: TwinGenerator, twins: pl.DataFrame) -> float:
    """Seconds of scikit-learn's own ``predict`` on the twins' feature rows: the same-run reference for
    ``generate`` (which predicts the same rows with the batched tree kernel, and samples them first)."""
    X = gen.feature_matrix(twins)
    start = time.perf_counter()
    gen.outcome_model.predict(X)
    return time.perf_counter() - start


def batched_rate(gen: TwinGenerator, n: int, constraints: dict | None = None) -> tuple[float, float]:
    """(seconds, twins per second) of one ``generate(n)`` including outcome prediction."""
    start = time.perf_counter()
    gen.generate(n, constraints=constraints, seed=1)
    seconds = time.perf_counter() - start
    return seconds, n / seconds


def old_vs_new(gen: TwinGenerator, n: int = 1_000_000, rounds: int = 5) -> dict[str, float]:
    """``generate(n)`` with the kernels of issue 12's speed work against the path before them, interleaved
    in this process on the same generator (median seconds of ``rounds`` rounds each, and their ratio).

    The path before: the mixture's columns per component and column with ``np.searchsorted`` /
    ``np.interp`` (``tests.naive_generator.naive_mixture_columns``). Both paths give bit-identical twins
    (checked here).
    """
    import os
    from unittest import mock

    import numpy as np

    from tests.naive_generator import naive_mixture_columns
    from twinkernel.twin_generator import mixture

    def before() -> pl.DataFrame:
        with mock.patch.object(mixture, "_draw_free", naive_mixture_columns):
            return gen.generate(n, seed=3).frame

    def after() -> pl.DataFrame:
        return gen.generate(n, seed=3).frame

    assert before().equals(after())  # also the warm-up of both paths
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        for name, run in (("before", before), ("after", after)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    out = {name: float(np.median(t)) for name, t in times.items()}
    out["ratio"] = out["before"] / out["after"]
    out["load_1min"] = os.getloadavg()[0]
    return out


class GenerateSuite:
    params = (10_000, 100_000, 1_000_000)
    param_names = ("n",)
    timeout = 600

    def setup(self, n: int) -> None:
        self.gen = trained()

    def time_generate(self, n: int) -> None:
        self.gen.generate(n, seed=1)

    def peakmem_generate(self, n: int) -> None:
        self.gen.generate(n, seed=1)

    def track_max_correlation_difference(self, n: int) -> float:
        return self.gen.quality_report(self.gen.generate(n, seed=1)).max_correlation_difference

    track_max_correlation_difference.unit = "abs. correlation"  # type: ignore[attr-defined]


class ConstrainedSuite:
    params = (("decile", "decile+region+engagement"),)
    param_names = ("constraints",)
    timeout = 600
    CASES: ClassVar[dict[str, dict[str, Any]]] = {
        "decile": {"decile": 3},
        "decile+region+engagement": {
            "decile": 3,
            "region": {"west", "midwest"},
            "digital_engagement_score": (0.2, 0.8),
        },
    }

    def setup(self, constraints: str) -> None:
        self.gen = trained()

    def time_generate_100k(self, constraints: str) -> None:
        self.gen.generate(100_000, constraints=self.CASES[constraints], seed=1)


class TrainSuite:
    timeout = 900

    def setup(self) -> None:
        training_frame()
        trained()  # warm-up kernels

    def time_train_50k(self) -> None:
        train_generator()

    def track_validation_r2(self) -> float:
        gen, _ = train_generator()
        assert gen.metrics is not None
        return gen.metrics.r2


class PerTwinBaselineSuite:
    timeout = 600

    def setup(self) -> None:
        self.gen = trained()

    def track_twins_per_second_per_twin(self) -> float:
        return per_twin_rate(self.gen, 200)

    def track_speedup_batched_vs_per_twin(self) -> float:
        _, fast = batched_rate(self.gen, 100_000)
        return fast / per_twin_rate(self.gen, 200)


def main() -> None:
    """Measure everything side by side in this process and print the Markdown table."""
    gen, train_seconds = train_generator()
    gen.generate(1000, seed=0)
    gen.generate(1000, constraints={"decile": 3}, seed=0)
    slow = per_twin_rate(gen, 200)
    rows = [("original: independent marginals, one `predict` per twin", 200, 200 / slow, slow)]
    for n in (10_000, 100_000, 1_000_000):
        seconds, rate = batched_rate(gen, n)
        rows.append((f"`generate({n:_})`", n, seconds, rate))
    cons = {"decile": 3, "region": {"west", "midwest"}, "digital_engagement_score": (0.2, 0.8)}
    seconds, rate = batched_rate(gen, 100_000, cons)
    rows.append(("`generate(100_000)` with 3 constraints", 100_000, seconds, rate))
    print(f"train on {TRAIN_ROWS:_} rows (5-fold CV, permutation importance): {train_seconds:.1f} s\n")
    print("| approach | twins | seconds | twins/s | vs per-twin |")
    print("|---|---:|---:|---:|---:|")
    for name, n, seconds, rate in rows:
        print(f"| {name} | {n:,} | {seconds:.2f} | {rate:,.0f} | {rate / slow:,.0f}x |")
    rep = gen.quality_report(gen.generate(1_000_000, seed=1))
    print(
        f"\nquality at 1M twins: max |corr diff| {rep.max_correlation_difference:.4f}, "
        f"max frequency diff {max(rep.max_frequency_difference.values()):.4f}, "
        f"worst marginal {rep.worst_marginal[0]} {rep.worst_marginal[1]:.4f}"
    )


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["old-vs-new"]:  # python -m benchmarks.bench_generator old-vs-new [n] [rounds]
        args = [int(a) for a in sys.argv[2:4]]
        print(old_vs_new(trained(), *args))
    else:
        main()
