"""asv benchmarks of ``TwinPopulation.from_frame`` beside one simulation of the same population (issue 13).

Goal: building a population from a user's frame of 10 000 000 rows costs at most 2x one ``simulate`` of
it (with heterogeneity), for Polars frames with string columns and for pandas frames.

The input is what a user's file gives: :func:`raw_frame` holds the seeded HCP columns of
:func:`benchmarks.cases.hcp_columns` with the categories as strings (``String`` in Polars, ``object`` in
pandas), ``twin_id`` as strings (``"hcp-00000042"``), deciles and tiers as Int64. ``simulate`` runs on the
population built from that frame, without a result cache.

:class:`TrackFromFrameRatio` reports median(from_frame) / median(simulate), timed interleaved in one
process (a slow phase of the shared machine hits both sides). Run offline::

    asv run -E existing:$(which python) --quick --set-commit-hash $(git rev-parse HEAD) \\
        --bench bench_population

or print the table directly: ``PYTHONPATH=. python -m benchmarks.bench_population 10000000 5``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from benchmarks.cases import EMAIL, engine_for, hcp_columns, interleaved_times
from twinkernel import TwinPopulation

SEED = 20_261_203
FLAVOURS = ("polars_strings", "pandas")


def raw_frame(n: int, seed: int = 0, flavour: str = "polars_strings") -> Any:
    """``n`` seeded HCP rows as a user's file gives them: string categories and ids, Int64 integers.

    ``flavour`` is ``"polars_strings"`` (a Polars frame) or ``"pandas"`` (the same frame converted with
    ``to_pandas()``: ``object`` strings, ``int64`` and ``float64`` columns).
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"`flavour` must be one of {FLAVOURS}; got {flavour!r}")
    columns: list[pl.Series] = []
    for name, values in hcp_columns(n, seed).items():
        if isinstance(values, pl.Series):
            columns.append(values.cast(pl.String))
        elif name == "twin_id":
            ids = pl.select(pl.format("hcp-{}", pl.int_range(n).cast(pl.String).str.zfill(8)))
            columns.append(ids.to_series().alias("twin_id"))
        elif values.dtype.kind == "i":
            columns.append(pl.Series(name, values.astype(np.int64)))
        else:
            columns.append(pl.Series(name, values))
    frame = pl.DataFrame(columns)
    return frame.to_pandas() if flavour == "pandas" else frame


def build(df: Any) -> TwinPopulation:
    return TwinPopulation.from_frame(df, brand="Kisqali", model_id="bench-frame")


def from_frame_vs_simulate(df: Any, rounds: int) -> dict[str, float]:
    """Median seconds of ``from_frame(df)`` and of one ``simulate`` (heterogeneity on) of its population,
    interleaved, and their ratio."""
    engine = engine_for(build(df))
    engine.simulate(EMAIL, seed=SEED)  # warm-up: compilation is not timed
    calls: dict[str, Callable[[], object]] = {
        "from_frame": lambda: build(df),
        "simulate": lambda: engine.simulate(EMAIL, seed=SEED),
    }
    times = interleaved_times(calls, rounds)
    ff, sim = float(np.median(times["from_frame"])), float(np.median(times["simulate"]))
    return {"from_frame_s": ff, "simulate_s": sim, "ratio": ff / sim}


class TimeFromFrame:
    """``from_frame`` of n rows (Polars with string columns, pandas with object columns)."""

    params = ([1_000_000, 10_000_000], list(FLAVOURS))
    param_names = ("n_rows", "flavour")
    timeout = 600.0
    number = 1
    repeat = (1, 5, 60.0)

    def setup(self, n: int, flavour: str) -> None:
        self.df = raw_frame(n, flavour=flavour)
        build(raw_frame(1000, flavour=flavour))  # warm-up: compilation is not timed

    def time_from_frame(self, n: int, flavour: str) -> None:
        build(self.df)

    def peakmem_from_frame(self, n: int, flavour: str) -> None:
        """Peak RSS of the process: the input frame, the population and the build's transient copies."""
        build(self.df)


class TrackFromFrameRatio:
    """median(from_frame) / median(simulate with heterogeneity) at 10 M rows, side by side (goal: <= 2)."""

    params = (list(FLAVOURS),)
    param_names = ("flavour",)
    timeout = 900.0
    number = 1
    repeat = 1

    def setup(self, flavour: str) -> None:
        self.df = raw_frame(10_000_000, flavour=flavour)

    def track_ratio(self, flavour: str) -> float:
        return from_frame_vs_simulate(self.df, 5)["ratio"]

    track_ratio.unit = "x simulate"  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000_000
    rounds = int(argv[1]) if len(argv) > 1 else 5
    print(f"| input ({n:,} rows) | from_frame (s) | simulate (s) | ratio |")
    print("|---|---|---|---|")
    for flavour in FLAVOURS:
        m = from_frame_vs_simulate(raw_frame(n, flavour=flavour), rounds)
        print(
            f"| {flavour} | {m['from_frame_s']:.3f} | {m['simulate_s']:.3f} | {m['ratio']:.2f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
