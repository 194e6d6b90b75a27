"""The ``twinkernel`` command.

``twinkernel demo`` runs the main job on embedded defaults (no server needed): it builds a synthetic HCP
world, trains a twin model on its history, generates a population of twins and simulates the six
intervention types on it, printing one table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from . import __version__
from .config import ConfigError, default_config_path, load_config
from .models import InterventionConfig, SimulationResult

SIX_INTERVENTIONS: tuple[InterventionConfig, ...] = (
    InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8),
    InterventionConfig(
        intervention_type="call_frequency_increase", duration_weeks=12, extra_params={"additional_calls": 2}
    ),
    InterventionConfig(intervention_type="speaker_program_invitation", duration_weeks=8),
    InterventionConfig(intervention_type="sample_distribution", duration_weeks=8),
    InterventionConfig(intervention_type="peer_influence_activation", duration_weeks=8),
    InterventionConfig(intervention_type="digital_engagement", channel="digital", duration_weeks=8),
)


class _Progress:
    """Step-by-step progress on stderr (the table goes to stdout)."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self._t = 0.0

    def start(self, what: str) -> None:
        self._t = time.perf_counter()
        if not self.quiet:
            print(f"  {what} ...", end="", file=self.stream, flush=True)

    def done(self, detail: str = "") -> float:
        elapsed = time.perf_counter() - self._t
        if not self.quiet:
            print(f" {elapsed:.2f} s{(' ' + detail) if detail else ''}", file=self.stream, flush=True)
        return elapsed


def format_table(results: Sequence[SimulationResult]) -> str:
    """One readable table of results (ATE, CI, recommendation, sample size, power, time)."""
    header = ("intervention", "twins", "ATE", "CI", "rec.", "n / arm", "power", "ms")
    rows = []
    for r in results:
        ci = f"[{r.simulated_ci_lower:+.4f}, {r.simulated_ci_upper:+.4f}]"
        power = "-" if r.statistical_power is None else f"{r.statistical_power:.2f}"
        rows.append(
            (
                r.intervention_config.intervention_type,
                f"{r.twin_count:,}",
                f"{r.simulated_ate:+.4f}",
                ci,
                r.recommendation.value.upper(),
                "-" if r.recommended_sample_size is None else f"{r.recommended_sample_size:,}",
                power,
                f"{r.execution_time_ms:.1f}",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {1, 2, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def run_demo(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from . import synthetic
    from .simulation_engine import SimulationEngine
    from .twin_generator import TwinGenerator

    config = load_config(args.config) if args.config else load_config()
    progress = _Progress(err, args.quiet)
    if not args.quiet:
        print(f"twinkernel {__version__} demo: {args.twins:,} HCP twins, seed {args.seed}", file=err)

    progress.start(f"building a synthetic HCP world ({args.history_hcps:,} HCPs x {args.months} months)")
    world = synthetic.hcp_world(args.history_hcps, months=args.months, seed=args.seed)
    training = synthetic.hcp_training_frame(world)
    progress.done()

    progress.start("training the twin model (leakage-safe, time-ordered validation)")
    generator = TwinGenerator("hcp", brand=args.brand, config=config)
    metrics = generator.train(training, target_col=world.outcome_col, time_col="month")
    progress.done(f"(validation R² {metrics.r2:.3f}, RMSE {metrics.rmse:.4f})")

    progress.start(f"generating {args.twins:,} twins")
    population = generator.generate(args.twins, seed=args.seed)
    progress.done()
    progress.start("checking twins against the training data")
    report = generator.quality_report(population)
    progress.done(f"(largest correlation difference {report.max_correlation_difference:.3f})")

    engine = SimulationEngine(population, config=config)
    engine.simulate(SIX_INTERVENTIONS[0], seed=args.seed, use_cache=False)  # JIT warm-up (cached on disk)
    progress.start("simulating six interventions")
    results = [
        engine.simulate(ic, seed=args.seed, ci_method=args.ci_method, use_cache=False)
        for ic in SIX_INTERVENTIONS
    ]
    progress.done()

    if args.json:
        json.dump([json.loads(r.model_dump_json()) for r in results], out, indent=2)
        out.write("\n")
    else:
        print(file=out)
        print(format_table(results), file=out)
        print(file=out)
        print(
            f"CI: {results[0].confidence_level:.0%} {results[0].ci_method}; effect model: "
            f"{results[0].effect_provenance}; n / arm = sample size per arm for the real A/B test.",
            file=out,
        )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinkernel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"twinkernel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="train on a synthetic world, generate twins, simulate six interventions"
    )
    demo.add_argument("--twins", type=_positive_int, default=1_000_000, help="twins to generate (1 000 000)")
    demo.add_argument(
        "--history-hcps",
        type=_positive_int,
        default=20_000,
        help="HCPs in the synthetic training world (20 000)",
    )
    demo.add_argument("--months", type=_positive_int, default=12, help="months of history (12)")
    demo.add_argument("--seed", type=int, default=42, help="seed for everything (42)")
    demo.add_argument("--brand", default="Kisqali")
    demo.add_argument(
        "--ci-method",
        default=None,
        choices=("analytic", "percentile", "basic", "bca"),
        help="interval method (default from the config)",
    )
    demo.add_argument(
        "--config", default=None, help="configuration file (default: $TWINKERNEL_CONFIG or packaged)"
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    demo.set_defaults(func=run_demo)

    cfg = sub.add_parser("config", help="validate and show the configuration file in use")
    cfg.add_argument("--config", default=None)
    cfg.set_defaults(func=run_config)
    return parser


def run_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    path = args.config or default_config_path()
    cfg = load_config(path)
    print(f"{path}: valid", file=out)
    print(json.dumps(cfg.model_dump(mode="json"), indent=2), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"twinkernel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("twinkernel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
