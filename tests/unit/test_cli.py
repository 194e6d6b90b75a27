"""The twinkernel command: config validation, the results table, exit codes, bad input, the demo."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import polars as pl
import pytest
import yaml

from twinkernel import cli, synthetic
from twinkernel.config import default_config_path, get_config
from twinkernel.models import InterventionConfig, PopulationFilter, SimulationStatus
from twinkernel.retraining.demo import demo_training_frame, demo_training_months

REPO = Path(__file__).resolve().parents[2]


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_config_command_validates_and_prints(capsys):
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{default_config_path()}: valid")
    shown = json.loads(out.split("\n", 1)[1])
    assert shown["simulation"]["recommendations"]["deploy_threshold"] == 0.05


def test_bad_config_exits_2_with_the_key_path(tmp_path, capsys):
    raw = yaml.safe_load(default_config_path().read_text())
    raw["simulation"]["min_twins"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert cli.main(["config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert err.startswith("twinkernel: error: --config: invalid configuration in ")
    assert "simulation.min_twins" in err and "allowed range [1, inf)" in err


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    return path


def _not_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text("simulation: [unclosed\n")
    return path


def _a_list(tmp_path: Path) -> Path:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    return path


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (_binary, "must be UTF-8 YAML text; byte 0 is not UTF-8"),
        (_not_yaml, "is not valid YAML"),
        (_a_list, "must hold a mapping at the top level"),
        (lambda tmp: tmp / "missing.yaml", "cannot read configuration file"),
        (lambda tmp: tmp, "cannot read configuration file"),
    ],
    ids=["binary", "not-yaml", "not-a-mapping", "missing", "directory"],
)
@pytest.mark.parametrize("command", ["config", "demo"])
def test_unusable_twinkernel_config_is_one_line_exit_2(tmp_path, monkeypatch, capsys, make, rule, command):
    """Defect: a binary TWINKERNEL_CONFIG ended in a UnicodeDecodeError traceback."""
    path = make(tmp_path)
    monkeypatch.setenv("TWINKERNEL_CONFIG", str(path))
    assert cli.main([command]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    _no_traceback(err)
    assert err.startswith("twinkernel: error: $TWINKERNEL_CONFIG: ")
    assert str(path) in err and rule in err


def test_history_hcps_below_the_training_minimum_is_one_line_exit_2(capsys):
    """Defect: `demo --history-hcps 10` ended in a ValueError traceback from training."""
    gen = get_config().twin_generation
    needed = cli.min_history_hcps(get_config())
    assert needed == 1336  # 8 target months (6 train, 2 validate), dealt round-robin: 8 x ceil(1000 / 6)
    world = synthetic.hcp_world(needed, months=12, seed=0)
    frame = demo_training_frame(world, get_config(), seed=0)
    train_months = sorted(frame["month"].unique())[:6]
    assert frame.filter(pl.col("month").is_in(train_months)).height >= gen.min_training_rows
    assert cli.main(["demo", "--history-hcps", "10"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    _no_traceback(err)
    assert err == (
        f"twinkernel: error: --history-hcps must be at least {needed:,} with --months 12 "
        f"(twin_generation.min_training_rows = {gen.min_training_rows:,} training rows after the "
        f"{gen.test_size:.0%} validation split); got 10\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--twins", "0"], "argument --twins: must be a positive integer; got 0"),
        (["demo", "--twins", "many"], "argument --twins: must be a positive integer; got 'many'"),
        (["demo", "--months", "1"], "argument --months: must be an integer >= 2"),
        (["demo", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**64); got -1"),
        (["demo", "--seed", str(2**64)], f"argument --seed: must be an integer in [0, 2**64); got {2**64}"),
        (["demo", "--ci-method", "jackknife"], "argument --ci-method: invalid choice: 'jackknife'"),
    ],
)
def test_demo_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert message in err


def test_ci_method_choices_come_from_the_config_model():
    assert cli.CI_METHODS == ("analytic", "percentile", "basic", "bca")
    assert get_config().simulation.ci_method in cli.CI_METHODS


def test_format_table(make_engine):
    engine = make_engine(3000)
    results = [engine.simulate(ic, seed=1) for ic in cli.SIX_INTERVENTIONS]
    table = cli.format_table(results).splitlines()
    assert table[0].split() == ["intervention", "twins", "ATE", "CI", "rec.", "n", "/", "arm", "power", "ms"]
    # 3 000 twins: every result warns that its simulation confidence is low; the warnings follow the table
    assert table[8:10] == ["", "notes:"]
    assert table[10:] == [
        f"  {r.intervention_config.intervention_type}: warning: {w}" for r in results for w in r.warnings
    ]
    assert len(table) > 10
    assert (
        cli.format_table([r.model_copy(update={"warnings": []}) for r in results]).splitlines() == table[:8]
    )
    for line, result in zip(table[2:8], results, strict=True):
        assert line.startswith(result.intervention_config.intervention_type)
        assert f"{result.simulated_ate:+.4f}" in line
        assert result.recommendation.value.upper() in line
        assert f"{result.recommended_sample_size:,}" in line
    assert cli.exit_code(results) == cli.EXIT_OK


def _failed_and_completed(make_engine):
    engine = make_engine(3000)
    ok = engine.simulate(cli.SIX_INTERVENTIONS[0], seed=1)
    failed = engine.simulate(
        cli.SIX_INTERVENTIONS[2], PopulationFilter(deciles=[1], regions=["northeast"]), seed=1
    )
    assert ok.status == SimulationStatus.COMPLETED
    assert failed.status == SimulationStatus.FAILED and failed.twin_count == 0
    return ok, failed


def test_failed_result_prints_failed_and_exits_nonzero(make_engine):
    """Defect: a FAILED result was printed as SKIP and the demo exited 0."""
    ok, failed = _failed_and_completed(make_engine)
    # the model change in flight: a FAILED result carries no recommendation (None), today SKIP;
    # both print FAILED
    for variant in (failed, failed.model_copy(update={"recommendation": None})):
        out, err = io.StringIO(), io.StringIO()
        code = cli.report_results([ok, variant], False, out, err)
        assert code == cli.EXIT_FAILED == 1
        lines = out.getvalue().splitlines()
        row = next(line for line in lines if line.startswith("speaker_program_invitation"))
        assert row.split() == [
            "speaker_program_invitation",
            "0",
            "-",
            "-",
            "FAILED",
            "-",
            "-",
            row.split()[-1],
        ]
        assert "SKIP" not in row
        assert f"  speaker_program_invitation: FAILED: {failed.error_message}" in lines
        assert "Insufficient twins" in failed.error_message
        assert err.getvalue() == "twinkernel: 1 of 2 simulations FAILED (see the notes)\n"
    out, err = io.StringIO(), io.StringIO()
    assert cli.report_results([ok, failed], True, out, err) == cli.EXIT_FAILED
    assert [r["status"] for r in json.loads(out.getvalue())] == ["completed", "failed"]
    err = io.StringIO()
    assert cli.report_results([ok], False, io.StringIO(), err) == cli.EXIT_OK
    assert err.getvalue() == ""


def test_completed_result_without_recommendation_shows_a_dash(make_engine):
    ok, _ = _failed_and_completed(make_engine)
    row = cli.format_table([ok.model_copy(update={"recommendation": None})]).splitlines()[2]
    assert row.split()[5] == "-"  # the CI cell "[low, high]" splits in two


def test_table_shows_each_interventions_warnings(make_engine):
    """Defect: the table hid the results' warnings."""
    engine = make_engine(3000)
    unknown = engine.simulate(InterventionConfig(intervention_type="webinar_series"), seed=1)
    known = engine.simulate(cli.SIX_INTERVENTIONS[0], seed=1)
    assert any("webinar_series" in w for w in unknown.warnings)
    flagged = known.model_copy(
        update={"warnings": ["first", "second"], "fidelity_warning": True, "fidelity_warning_reason": "low"}
    )
    lines = cli.format_table([unknown, flagged]).splitlines()
    notes = lines[lines.index("notes:") + 1 :]
    assert notes == [
        *(f"  webinar_series: warning: {w}" for w in unknown.warnings),
        "  email_campaign: warning: first",
        "  email_campaign: warning: second",
        "  email_campaign: fidelity warning: low",
    ]
    assert lines[lines.index("notes:") - 1] == ""
    assert cli.exit_code([unknown, flagged]) == cli.EXIT_OK  # warnings alone are not a failure


class _ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_is_quiet_in_process(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["config"]) == cli.EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""


def test_broken_pipe_is_quiet_from_the_shell():
    """Defect: `twinkernel config | head` raised BrokenPipeError (a traceback and exit 1)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("TWINKERNEL_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "twinkernel.cli", "config"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away before the command writes anything
    _, err = proc.communicate(timeout=120)
    assert err.decode() == ""
    assert proc.returncode == cli.EXIT_BROKEN_PIPE


def test_compile_step_uses_twinkernel_compile_when_present(monkeypatch):
    """Defect: the first simulate's compilation was invisible; the demo labels a compile step."""
    fake = types.ModuleType("twinkernel.warmup")
    fake.compile = lambda: {"effects": 1.25, "bootstrap": 0.5}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "twinkernel.warmup", fake)
    compile_kernels = cli._kernel_compiler()
    assert compile_kernels is fake.compile
    assert cli._steps_text(compile_kernels()) == "(effects 1.25 s, bootstrap 0.50 s)"
    monkeypatch.setitem(sys.modules, "twinkernel.warmup", None)  # not merged yet: import fails
    assert cli._kernel_compiler() is None


@pytest.mark.slow
def test_demo_runs_end_to_end(capsys):
    code = cli.main(
        ["demo", "--twins", "20000", "--history-hcps", "3000", "--months", "12", "--seed", "3", "--json"]
    )
    assert code == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    results = shown["results"]
    assert [r["intervention_config"]["intervention_type"] for r in results] == [
        ic.intervention_type for ic in cli.SIX_INTERVENTIONS
    ]
    for r in results:
        assert r["status"] == "completed"
        assert r["twin_count"] == 20000
        assert r["recommendation"] in ("deploy", "refine", "skip")
        assert r["seed"] == 3
    # the learning loop: validations trigger a job, the worker runs it, held-out fidelity improves
    loop = shown["loop"]
    assert loop["n_experiments"] == len(cli.DEMO_TESTED_TYPES) * cli.DEMO_EXPERIMENTS_PER_TYPE
    assert loop["fidelity_before"]["n_validations"] == loop["n_experiments"]
    assert loop["job"]["state"] == "completed" and loop["job"]["promoted"] is True
    assert loop["job"]["candidate_score"] > loop["job"]["current_score"]
    prior, after = loop["held_out_fidelity_prior"], loop["held_out_fidelity_after"]
    assert prior["n_validations"] == after["n_validations"] == len(cli.DEMO_TESTED_TYPES)
    assert after["fidelity_score"] > get_config().auto_retraining.fidelity_threshold > prior["fidelity_score"]
    assert loop["champion_id"] != loop["model_id"]
    by_type = {r["intervention_config"]["intervention_type"]: r for r in loop["results_after"]}
    assert by_type["sample_distribution"]["recommendation"] == "skip"  # harmful in the demo world
    assert "harmful" in by_type["sample_distribution"]["recommendation_rationale"]
    for t in {ic.intervention_type for ic in cli.SIX_INTERVENTIONS} - set(cli.DEMO_TESTED_TYPES):
        assert f"{t}: prior" in loop["effect_provenance"]
    steps = [line.strip() for line in captured.err.splitlines() if line.startswith("  ")]
    compile_lines = [s for s in steps if s.startswith("compile kernels")]
    assert len(compile_lines) == 1 and compile_lines[0].split(" ... ")[1].split()[1] == "s"
    assert float(compile_lines[0].split(" ... ")[1].split()[0]) >= 0.0
    # nothing a user would read as a problem (the training frame spans months: no fallback warnings)
    assert "Warning" not in captured.err and "warning" not in captured.err.lower()
    # per-phase timings, the compile step apart
    timings = shown["timings"]
    assert next(iter(timings)) == cli.COMPILE_PHASE
    assert {"training", "twins", "experiments", "retraining", "simulate again"} <= set(timings)
    assert all(t["seconds"] >= 0.0 and t["cpu_seconds"] >= 0.0 for t in timings.values())
    (summary,) = [line for line in captured.err.splitlines() if line.startswith("timings: ")]
    assert summary.startswith("timings: compiled in ") and "after compilation" in summary


def test_demo_training_frame_spans_months_so_training_splits_and_validates_by_time():
    """Defect: the demo's one-month frame made training warn twice (no time split, no time-ordered CV)."""
    cfg = get_config()
    months = demo_training_months(12, cfg)
    assert months == list(range(4, 12))
    world = synthetic.hcp_world(2000, months=12, seed=1)
    frame = demo_training_frame(world, cfg, seed=1)
    assert frame.height == 2000 and frame["hcp_id"].n_unique() == 2000  # each HCP once
    counts = frame.group_by("month").len()["len"].to_list()
    assert len(counts) == len(months) and max(counts) - min(counts) <= 1  # dealt round-robin
    assert bool((frame["prior_brand_share_as_of"] < frame["month"]).all())  # features before the month
    assert demo_training_frame(world, cfg, seed=1).equals(frame)  # seeded
    import warnings

    from twinkernel.twin_generator import TwinGenerator

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any training warning fails the test
        m = TwinGenerator("hcp", config=cfg).train(frame, "brand_share", time_col="month")
    assert m.split == "temporal" and m.cv_scheme == "time_ordered" and m.warnings == ()
    assert len(m.cv_scores) == cfg.twin_generation.cv_folds
    assert m.training_rows == 1500 and m.validation_rows == 500  # 6 months train, 2 validate


def test_progress_times_each_phase_and_the_compile_step_apart():
    err = io.StringIO()
    progress = cli._Progress(err, quiet=False)
    progress.start("compile kernels", cli.COMPILE_PHASE)
    progress.done()
    for phase in ("training", "retraining", "training"):
        progress.start(f"{phase} step", phase)
        progress.done()
    assert list(progress.phases) == [cli.COMPILE_PHASE, "training", "retraining"]
    assert all(v >= 0.0 for v in progress.phases.values()) and set(progress.cpu) == set(progress.phases)
    text = progress.summary()
    assert text.startswith("compiled in ") and "; after compilation " in text
    assert "(training " in text and ", retraining " in text and text.endswith(" s CPU)")
    assert "compile kernels ..." in err.getvalue()


def test_demo_loop_flag_and_json_shape():
    """The loop runs by default; --no-loop keeps the plain simulate-only demo (JSON: a list of results)."""
    parser = cli.build_parser()
    assert parser.parse_args(["demo"]).no_loop is False
    assert parser.parse_args(["demo", "--no-loop", "--json"]).no_loop is True
    assert set(cli.DEMO_TESTED_TYPES) <= {ic.intervention_type for ic in cli.SIX_INTERVENTIONS}
    assert set(cli.DEMO_TRUE_EFFECT_FACTORS) == {ic.intervention_type for ic in cli.SIX_INTERVENTIONS}
    assert any(f < 0 for f in cli.DEMO_TRUE_EFFECT_FACTORS.values())  # one harmful type to learn
