"""The ``twinkernel`` command.

``twinkernel demo`` runs the main job on embedded defaults (no server needed): it builds a synthetic HCP
world, trains a twin model on its history, generates a population of twins and simulates the six
intervention types on it, printing one table. Then the learning loop: real (synthetic) experiments for four
types are validated against the predictions, which triggers a retraining job; a worker runs it (refit and
recalibration, promoted only when leave-one-experiment-out fidelity improves) and the six are simulated
again, printing fidelity before and after and how each recommendation changed (``--no-loop`` skips it).
Last, effects are learned from the world's confounded history (double ML) and calibrated with experiments,
printed beside the truth (not in ``--json`` output).

Exit codes: 0 when every simulation completed, 1 when one FAILED (the table says which and why), 2 for
bad input (a one-line message naming the option or file and the rule, never a traceback), 130 on
Ctrl-C and 141 (128 + SIGPIPE) when the reader of the output went away (``twinkernel config | head``).

The command uses :mod:`argparse` (standard library): it already exits with code 2 and a one-line message
for malformed options, and a library should not pull a CLI framework into every service that imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from . import __version__
from .config import ENV_CONFIG_PATH, ConfigError, TwinkernelConfig, default_config_path, load_config
from .config import SimulationConfig as _SimulationConfig
from .models import InterventionConfig, SimulationResult, SimulationStatus

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_OK",
    "SIX_INTERVENTIONS",
    "CliError",
    "build_parser",
    "exit_code",
    "format_notes",
    "format_table",
    "main",
    "report_results",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

SEED_LIMIT = 2**64  # the engine's seed range is [0, 2**64)
CI_METHODS: tuple[str, ...] = typing.get_args(_SimulationConfig.model_fields["ci_method"].annotation)

SIX_INTERVENTIONS: tuple[InterventionConfig, ...] = (
    InterventionConfig(intervention_type="email_campaign", channel="email", duration_weeks=8),
    InterventionConfig(
        intervention_type="call_frequency_increase",
        duration_weeks=12,
        extra_params={"additional_calls": 2},  # type: ignore[arg-type]
    ),
    InterventionConfig(intervention_type="speaker_program_invitation", duration_weeks=8),
    InterventionConfig(intervention_type="sample_distribution", duration_weeks=8),
    InterventionConfig(intervention_type="peer_influence_activation", duration_weeks=8),
    InterventionConfig(intervention_type="digital_engagement", channel="digital", duration_weeks=8),
)


DEMO_TRUE_EFFECT_FACTORS: dict[str, float] = {
    "email_campaign": 0.4,
    "call_frequency_increase": 1.5,
    "speaker_program_invitation": 0.6,
    "sample_distribution": -1.0,
    "peer_influence_activation": 1.2,
    "digital_engagement": 1.8,
}
"""The demo world's true base effects as multiples of the priors (the priors are wrong; one type harms)."""
DEMO_TESTED_TYPES: tuple[str, ...] = (
    "email_campaign",
    "speaker_program_invitation",
    "sample_distribution",
    "digital_engagement",
)
"""Types the demo runs real (synthetic) experiments for; the other two keep their priors."""
DEMO_EXPERIMENTS_PER_TYPE = 6
DEMO_MAX_N_PER_ARM = 1500
COMPILE_PHASE = "compile"


class CliError(Exception):
    """Bad input to the command: printed as one line on stderr, exit code 2."""


class _Progress:
    """Step-by-step progress on stderr (the table goes to stdout)."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self._t = 0.0
        self._cpu = 0.0
        self._phase = ""
        self.phases: dict[str, float] = {}
        """Wall-clock seconds per phase, in the order they ran (a phase named twice adds up)."""
        self.cpu: dict[str, float] = {}
        """CPU seconds of this process per phase (all its threads): the work, whatever else runs."""

    def start(self, what: str, phase: str | None = None) -> None:
        self._t = time.perf_counter()
        self._cpu = time.process_time()
        self._phase = phase or what
        if not self.quiet:
            print(f"  {what} ...", end="", file=self.stream, flush=True)

    def done(self, detail: str = "") -> float:
        elapsed = time.perf_counter() - self._t
        self.phases[self._phase] = self.phases.get(self._phase, 0.0) + elapsed
        self.cpu[self._phase] = self.cpu.get(self._phase, 0.0) + time.process_time() - self._cpu
        if not self.quiet:
            print(f" {elapsed:.2f} s{(' ' + detail) if detail else ''}", file=self.stream, flush=True)
        return elapsed

    def summary(self) -> str:
        """``compiled in X s; after compilation Y s (phase s, ...)``: the compile step apart from the rest."""
        rest = {k: v for k, v in self.phases.items() if k != COMPILE_PHASE}
        cpu = sum(v for k, v in self.cpu.items() if k != COMPILE_PHASE)
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in rest.items())
        return (
            f"compiled in {self.phases.get(COMPILE_PHASE, 0.0):.1f} s; after compilation "
            f"{sum(rest.values()):.1f} s ({shown}; {cpu:.1f} s CPU)"
        )


# --- output ------------------------------------------------------------------------------------------------
def _failed(result: SimulationResult) -> bool:
    return result.status != SimulationStatus.COMPLETED


def _decision(result: SimulationResult) -> str:
    """The table's ``rec.`` cell: the status when the simulation did not complete, else the recommendation."""
    if _failed(result):
        return result.status.value.upper()
    recommendation = result.recommendation
    return "-" if recommendation is None else recommendation.value.upper()


def format_table(results: Sequence[SimulationResult]) -> str:
    """One readable table of results, followed by each intervention's warnings and failures.

    Columns: intervention, twins, ATE, CI, recommendation (``FAILED`` when the simulation failed), sample
    size per arm, power, milliseconds. A failed simulation has no estimate: its numeric cells are ``-``.
    Below the table, :func:`format_notes` lists what the results warn about (nothing when they do not).
    """
    header = ("intervention", "twins", "ATE", "CI", "rec.", "n / arm", "power", "ms")
    rows = []
    for r in results:
        failed = _failed(r)
        ci = "-" if failed else f"[{r.simulated_ci_lower:+.4f}, {r.simulated_ci_upper:+.4f}]"
        power = "-" if failed or r.statistical_power is None else f"{r.statistical_power:.2f}"
        n_arm = "-" if failed or r.recommended_sample_size is None else f"{r.recommended_sample_size:,}"
        rows.append(
            (
                r.intervention_config.intervention_type,
                f"{r.twin_count:,}",
                "-" if failed else f"{r.simulated_ate:+.4f}",
                ci,
                _decision(r),
                n_arm,
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
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    notes = format_notes(results)
    if notes:
        out.extend(["", notes])
    return "\n".join(out)


def format_notes(results: Sequence[SimulationResult]) -> str:
    """Per intervention: why it failed, its warnings and its fidelity warning; ``""`` when there are none."""
    lines: list[str] = []
    for r in results:
        name = r.intervention_config.intervention_type
        notes: list[str] = []
        if _failed(r):
            notes.append(f"{r.status.value.upper()}: {r.error_message or 'no message'}")
        notes.extend(f"warning: {w}" for w in r.warnings)
        if r.fidelity_warning:
            notes.append(f"fidelity warning: {r.fidelity_warning_reason or 'model fidelity is low'}")
        lines.extend(f"  {name}: {note}" for note in notes)
    return "\n".join(["notes:", *lines]) if lines else ""


def exit_code(results: Sequence[SimulationResult]) -> int:
    """The command's exit code for these results.

    Parameters
    ----------
    results
        The simulations the command ran.

    Returns
    -------
    int
        :data:`EXIT_FAILED` when any simulation did not complete (warnings alone are not a failure),
        else :data:`EXIT_OK`.

    Examples
    --------
    >>> exit_code([])
    0
    """
    return EXIT_FAILED if any(_failed(r) for r in results) else EXIT_OK


# --- configuration -----------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def load_cli_config(path: str | None) -> tuple[Path, TwinkernelConfig]:
    """The configuration the command uses, or a :class:`CliError` naming the file and what is wrong with it.

    Parameters
    ----------
    path
        The ``--config`` option; ``None`` reads ``$TWINKERNEL_CONFIG`` or the packaged file.

    Returns
    -------
    tuple of (Path, TwinkernelConfig)
        The file read and its validated content.

    Raises
    ------
    CliError
        One line naming where the path came from (``--config``, ``$TWINKERNEL_CONFIG``), the file and the
        rule it breaks (unreadable, not UTF-8, not YAML, not a mapping, a value out of range).

    Examples
    --------
    >>> load_cli_config("/nonexistent/twinkernel.yaml")
    Traceback (most recent call last):
    ...
    twinkernel.cli.CliError: --config: cannot read configuration file /nonexistent/twinkernel.yaml: ...
    """
    if path is not None:
        origin = "--config"
    elif os.environ.get(ENV_CONFIG_PATH):
        origin = f"${ENV_CONFIG_PATH}"
    else:
        origin = "packaged configuration"
    p = Path(path) if path is not None else default_config_path()
    try:
        return p, load_config(p)
    except ConfigError as exc:
        raise CliError(f"{origin}: {_one_line(str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{origin}: configuration file {p} must be UTF-8 YAML text; byte {exc.start} is not UTF-8 "
            "(a binary file?)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{origin}: cannot read configuration file {p}: {_one_line(str(exc))}") from None


# --- demo --------------------------------------------------------------------------------------------------
def _kernel_compiler() -> Callable[[], Mapping[str, float]] | None:
    """``twinkernel.compile`` (compile every kernel up front, seconds per step), or None before it exists."""
    try:
        from twinkernel.warmup import (  # type: ignore[import-not-found, unused-ignore]
            compile as compile_kernels,
        )
    except ImportError:
        return None
    return typing.cast(Callable[[], Mapping[str, float]], compile_kernels)


def _steps_text(steps: Mapping[str, float]) -> str:
    shown = ", ".join(f"{name} {float(seconds):.2f} s" for name, seconds in steps.items())
    return f"({shown})" if shown else ""


def min_history_hcps(config: TwinkernelConfig, months: int = 12) -> int:
    """The fewest synthetic HCPs whose training split still has ``twin_generation.min_training_rows`` rows.

    The demo's training frame has one row per HCP, at one of its target months
    (:func:`twinkernel.retraining.demo.demo_training_frame`); the latest months are held out for validation.

    Examples
    --------
    >>> from twinkernel.config import load_config
    >>> min_history_hcps(load_config())  # 8 target months, 6 of them for training: 8 x ceil(1000 / 6)
    1336
    """
    from .retraining.demo import min_history_units

    return min_history_units(config, months)


def run_demo(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _, config = load_cli_config(args.config)
    needed = min_history_hcps(config, args.months)
    if args.history_hcps < needed:
        gen = config.twin_generation
        raise CliError(
            f"--history-hcps must be at least {needed:,} with --months {args.months} "
            f"(twin_generation.min_training_rows = {gen.min_training_rows:,} training rows after the "
            f"{gen.test_size:.0%} validation split); got {args.history_hcps:,}"
        )

    from . import synthetic
    from .retraining.demo import demo_training_frame
    from .simulation_engine import SimulationEngine
    from .twin_generator import TwinGenerator

    progress = _Progress(err, args.quiet)
    if not args.quiet:
        print(f"twinkernel {__version__} demo: {args.twins:,} HCP twins, seed {args.seed}", file=err)

    compile_kernels = _kernel_compiler()
    if compile_kernels is not None:
        progress.start(
            "compile kernels (first run after install; later runs load numba's disk cache)", COMPILE_PHASE
        )
        steps = compile_kernels()
        progress.done(_steps_text(steps))

    progress.start(
        f"building a synthetic HCP world ({args.history_hcps:,} HCPs x {args.months} months)", "world"
    )
    world = synthetic.hcp_world(
        args.history_hcps, months=args.months, seed=args.seed, true_effect_factors=DEMO_TRUE_EFFECT_FACTORS
    )
    training = demo_training_frame(world, config, args.seed)
    progress.done(f"(training frame: {training.height:,} HCPs over {training['month'].n_unique()} months)")

    progress.start("training the twin model (leakage-safe, time-ordered validation)", "training")
    generator = TwinGenerator("hcp", brand=args.brand, config=config)
    try:
        metrics = generator.train(training, target_col=world.outcome_col, time_col="month")
    except ValueError as exc:  # every input of this step comes from the options
        raise CliError(
            f"--history-hcps {args.history_hcps:,} / --months {args.months}: cannot train: "
            f"{_one_line(str(exc))}"
        ) from None
    progress.done(f"(validation R² {metrics.r2:.3f}, RMSE {metrics.rmse:.4f})")

    progress.start(f"generating {args.twins:,} twins", "twins")
    population = generator.generate(args.twins, seed=args.seed)
    progress.done()
    progress.start("checking twins against the training data", "quality check")
    report = generator.quality_report(population)
    progress.done(f"(largest correlation difference {report.max_correlation_difference:.3f})")

    engine = SimulationEngine(population, config=config)
    if compile_kernels is None:  # before twinkernel.compile(): the first simulate compiles the kernels
        progress.start("compile kernels (first simulate; later runs load numba's disk cache)", COMPILE_PHASE)
        engine.simulate(SIX_INTERVENTIONS[0], seed=args.seed, use_cache=False)
        progress.done()
    progress.start("simulating six interventions", "simulate six")
    results = [
        engine.simulate(ic, seed=args.seed, ci_method=args.ci_method, use_cache=False)
        for ic in SIX_INTERVENTIONS
    ]
    progress.done()
    if args.no_loop:
        code = report_results(results, args.json, out, err)
        _print_timings(progress, err)
        return code

    from .retraining.demo import format_loop, run_learning_loop

    outcome = run_learning_loop(
        world=world,
        population=population,
        generator=generator,
        training_frame=training,
        interventions=SIX_INTERVENTIONS,
        tested_types=DEMO_TESTED_TYPES,
        experiments_per_type=DEMO_EXPERIMENTS_PER_TYPE,
        n_per_arm=min(DEMO_MAX_N_PER_ARM, args.history_hcps // 2),
        seed=args.seed,
        before=results,
        simulate=lambda eng, ic: eng.simulate(ic, seed=args.seed, ci_method=args.ci_method, use_cache=False),
        config=config,
        progress=progress,
    )
    if args.json:
        json.dump(
            {
                "results": [r.model_dump(mode="json") for r in results],
                "loop": outcome.to_dict(),
                "timings": {
                    k: {"seconds": round(v, 3), "cpu_seconds": round(progress.cpu[k], 3)}
                    for k, v in progress.phases.items()
                },
            },
            out,
            indent=2,
        )
        out.write("\n")
        code = exit_code([*results, *outcome.after])
    else:
        code = report_results(results, False, out, err)
        print(file=out)
        print(format_loop(outcome), file=out)
        code = max(code, exit_code(outcome.after))
        print(file=out)
        print(_effects_from_history(args, config, progress), file=out)
    _print_timings(progress, err)
    return code


def _print_timings(progress: _Progress, err: TextIO) -> None:
    if not progress.quiet:
        print(f"timings: {progress.summary()}", file=err)


def _effects_from_history(args: argparse.Namespace, config: TwinkernelConfig, progress: _Progress) -> str:
    """The demo's last step: effects learned from the world's history, then calibrated (issue 11)."""
    from .effect_learning.demo import effects_from_history

    return effects_from_history(history_hcps=args.history_hcps, months=args.months, seed=args.seed,
                                true_effect_factors=DEMO_TRUE_EFFECT_FACTORS, tested_types=DEMO_TESTED_TYPES,
                                config=config, progress=progress)  # fmt: skip


def report_results(results: Sequence[SimulationResult], as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the results (table and notes, or JSON) and return the exit code (:func:`exit_code`)."""
    if as_json:
        json.dump([r.model_dump(mode="json") for r in results], out, indent=2)
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
    code = exit_code(results)
    if code != EXIT_OK:
        failed = sum(_failed(r) for r in results)
        print(f"twinkernel: {failed} of {len(results)} simulations FAILED (see the notes)", file=err)
    return code


# --- arguments ---------------------------------------------------------------------------------------------
def _int_in(low: int, high: int | None, rule: str) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high)`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}") from None
        if value < low or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text}")
        return value

    return parse


_positive_int = _int_in(1, None, "a positive integer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinkernel", description=(__doc__ or "").split("\n\n")[0])
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
        help="HCPs in the synthetic training world (20 000; at least enough for "
        "twin_generation.min_training_rows training rows)",
    )
    demo.add_argument(
        "--months",
        type=_int_in(2, None, "an integer >= 2 (the target month needs an earlier month of history)"),
        default=12,
        help="months of history (12)",
    )
    demo.add_argument(
        "--seed", type=_int_in(0, SEED_LIMIT, "an integer in [0, 2**64)"), default=42, help="seed (42)"
    )
    demo.add_argument("--brand", default="Kisqali")
    demo.add_argument(
        "--ci-method", default=None, choices=CI_METHODS, help="interval method (default from the config)"
    )
    demo.add_argument(
        "--config", default=None, help=f"configuration file (default: ${ENV_CONFIG_PATH} or packaged)"
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of a table: {results, loop} (a list of results with --no-loop)",
    )
    demo.add_argument(
        "--no-loop",
        action="store_true",
        help="only simulate: skip the loop (experiments, validation, fidelity, retraining, simulate again)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    demo.set_defaults(func=run_demo)

    cfg = sub.add_parser("config", help="validate and show the configuration file in use")
    cfg.add_argument(
        "--config", default=None, help=f"configuration file (default: ${ENV_CONFIG_PATH} or packaged)"
    )
    cfg.set_defaults(func=run_config)
    return parser


def run_config(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    path, cfg = load_cli_config(args.config)
    print(f"{path}: valid", file=out)
    print(json.dumps(cfg.model_dump(mode="json"), indent=2), file=out)
    return EXIT_OK


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise on a closed pipe again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests' capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except CliError as exc:
        print(f"twinkernel: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (`twinkernel config | head`): stop quietly
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:  # pragma: no cover
        print("twinkernel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
