"""asv benchmarks of ``SimulationEngine.sweep`` (issue 13, "Scenario sweeps"), and the side-by-side table.

Target: 100 configs over 1 000 000 twins at least ``performance.min_sweep_speedup`` (10) times faster than
100 ``simulate`` calls with the same seed, measured interleaved in one process (the reference,
:meth:`TimeSweep.time_simulate_loop`, is the same work done one config at a time). Every sweep row equals
its ``simulate`` result; :meth:`TimeSweep.track_max_ate_difference` watches that on every run.

Inputs come from :func:`sweep_configs` and :mod:`benchmarks.cases` (seeded, memoised); ``setup`` does one
warm-up call of each side so JIT compilation is never timed. Engines run without a result cache.

Run offline::

    asv machine --yes
    asv run -E existing:$(which python) --quick --set-commit-hash $(git rev-parse HEAD) --bench bench_sweep

The README's row comes from (numba on one thread, medians of interleaved rounds)::

    python -m benchmarks.bench_sweep --n 1000000 --configs 100 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import platform

import numpy as np

from benchmarks.cases import SIX_INTERVENTIONS, engine_for, hcp_population, interleaved_times, one_thread
from twinkernel import InterventionConfig, SimulationEngine

SEED = 20_251_203
INTENSITIES = (0.5, 1.0, 1.5, 2.0, 3.0)
DURATIONS = (2, 4, 8, 12, 26)
TARGETS: tuple[dict[str, list[int]], ...] = (
    {},
    {"target_deciles": [1, 2, 3]},
    {"target_deciles": [4, 5, 6, 7]},
    {"target_deciles": [8, 9, 10]},
)


def sweep_configs(k: int, targeted: bool = False) -> list[InterventionConfig]:
    """``k`` distinct configs: the six types (email with two channels) x intensities x durations.

    ``targeted``: the configs are spread over four target selections (all twins, deciles 1-3, 4-7, 8-10),
    so the sweep makes four kernel passes instead of one.
    """
    out: list[InterventionConfig] = []
    variants = itertools.product(DURATIONS, INTENSITIES, range(len(TARGETS)), SIX_INTERVENTIONS.values())
    for n, (weeks, intensity, t, ic) in enumerate(variants):
        if not targeted and t > 0:
            continue
        update: dict[str, object] = {"duration_weeks": weeks, "intensity_multiplier": intensity}
        update.update(TARGETS[t] if targeted else {})
        if ic.intervention_type == "email_campaign" and n % 2:
            update["channel"] = "digital"
        out.append(InterventionConfig(**{**ic.model_dump(), **update}))
        if len(out) == k:
            return out
    raise ValueError(f"`k` must be at most {len(out)}; got {k}")


def simulate_loop(engine: SimulationEngine, configs: list[InterventionConfig], seed: int) -> list[float]:
    """The reference: one ``simulate`` per config (what a sweep replaces); their ATEs."""
    return [engine.simulate(ic, seed=seed).simulated_ate for ic in configs]


class TimeSweep:
    """``sweep`` of k configs over n seeded HCP twins, against k ``simulate`` calls."""

    params = ([1_000_000], [100], [False, True])
    param_names = ("n_twins", "n_configs", "targeted")
    timeout = 600.0  # the reference makes 100 simulations of a million twins

    def setup(self, n: int, k: int, targeted: bool) -> None:
        self.engine = engine_for(hcp_population(n))
        self.configs = sweep_configs(k, targeted)
        self.frame = self.engine.sweep(self.configs, seed=SEED)
        self.engine.simulate(self.configs[0], seed=SEED)

    def time_sweep(self, n: int, k: int, targeted: bool) -> None:
        self.engine.sweep(self.configs, seed=SEED)

    def time_simulate_loop(self, n: int, k: int, targeted: bool) -> None:
        simulate_loop(self.engine, self.configs, SEED)

    def peakmem_sweep(self, n: int, k: int, targeted: bool) -> None:
        """Peak RSS of the process (includes building the population in ``setup``)."""
        self.engine.sweep(self.configs, seed=SEED)

    def track_max_ate_difference(self, n: int, k: int, targeted: bool) -> float:
        """Largest |sweep ATE - simulate ATE| over every fifth config (expected: exactly 0)."""
        picked = self.configs[::5]
        ates = simulate_loop(self.engine, picked, SEED)
        rows = self.frame["ate"].to_list()[::5]
        return float(max(abs(a - b) for a, b in zip(rows, ates, strict=True)))

    track_max_ate_difference.unit = "ATE"  # type: ignore[attr-defined]


def speedup(n: int, k: int, rounds: int, targeted: bool = False) -> dict[str, float]:
    """Median seconds of the sweep and of the simulate loop (interleaved, one thread) and their ratio."""
    engine = engine_for(hcp_population(n))
    configs = sweep_configs(k, targeted)
    with one_thread():
        engine.sweep(configs[:2], seed=SEED)
        engine.simulate(configs[0], seed=SEED)  # warm-up: compilation is not timed
        times = interleaved_times(
            {
                "sweep": lambda: engine.sweep(configs, seed=SEED),
                "loop": lambda: simulate_loop(engine, configs, SEED),
            },
            rounds,
        )
    sweep_s = float(np.median(times["sweep"]))
    loop_s = float(np.median(times["loop"]))
    return {"sweep_s": sweep_s, "loop_s": loop_s, "speedup": loop_s / sweep_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targeted", action="store_true")
    args = parser.parse_args()
    r = speedup(args.n, args.configs, args.rounds, args.targeted)
    print(
        f"Python {platform.python_version()}, numba on one thread, medians of {args.rounds} interleaved runs"
    )
    print("| case | sweep | reference (simulate loop, same run) | speed-up |")
    print("|---|---|---|---|")
    print(
        f"| {args.configs} configs x {args.n:,} twins{' (4 target selections)' if args.targeted else ''} "
        f"| {r['sweep_s']:.3f} s | {r['loop_s']:.2f} s | {r['speedup']:.1f}x |"
    )


if __name__ == "__main__":
    main()
