"""The twinkernel command: config validation, the results table, the demo end to end on a small run."""

from __future__ import annotations

import json

import pytest
import yaml

from twinkernel import cli
from twinkernel.config import default_config_path


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
    assert "simulation.min_twins" in err and "allowed range [1, inf)" in err


def test_format_table(make_engine):
    engine = make_engine(3000)
    results = [engine.simulate(ic, seed=1) for ic in cli.SIX_INTERVENTIONS]
    table = cli.format_table(results).splitlines()
    assert table[0].split() == ["intervention", "twins", "ATE", "CI", "rec.", "n", "/", "arm", "power", "ms"]
    assert len(table) == 2 + 6
    for line, result in zip(table[2:], results, strict=True):
        assert line.startswith(result.intervention_config.intervention_type)
        assert f"{result.simulated_ate:+.4f}" in line
        assert result.recommendation.value.upper() in line
        assert f"{result.recommended_sample_size:,}" in line


def test_demo_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--twins", "0"])
    assert exc.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end(capsys):
    code = cli.main(
        [
            "demo",
            "--twins",
            "20000",
            "--history-hcps",
            "3000",
            "--months",
            "6",
            "--seed",
            "3",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["intervention_config"]["intervention_type"] for r in results] == [
        ic.intervention_type for ic in cli.SIX_INTERVENTIONS
    ]
    for r in results:
        assert r["status"] == "completed"
        assert r["twin_count"] == 20000
        assert r["recommendation"] in ("deploy", "refine", "skip")
        assert r["seed"] == 3
