"""`benchmarks.issue13_table`: row builders at tiny sizes, the table's structure, ratio = time / reference.

The timings themselves are not checked (no wall-clock assertion): only that every row is measured, that
the printed medians, ratios and verdicts are the ones the rows hold, and that the goals are issue 13's
(the sweep's CI guard read from the configuration).
"""

from __future__ import annotations

import math

import pytest

from benchmarks.cases import performance_limits
from benchmarks.issue13_table import (
    ISSUE13_GOALS,
    Goal,
    Row,
    Sizes,
    bootstrap_rows,
    environment_line,
    from_frame_rows,
    goal,
    main,
    markdown_table,
    simulate_rows,
    sweep_rows,
)

TINY = Sizes(
    boot_n=2000,
    boot_resamples=100,
    big_n=5000,
    big_resamples=50,
    twins=20_000,
    frame_rows=5000,
    sweep_twins=20_000,
    sweep_configs=8,
)
HEADER = "| case | time (median) | reference (median, same run) | ratio | goal | met? |"


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return (
        bootstrap_rows(TINY, rounds=3, scipy_bca_rounds=1)
        + simulate_rows(TINY, rounds=2)
        + from_frame_rows(TINY, rounds=2)
        + sweep_rows(TINY, rounds=2)
    )


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |")
    return [c.strip() for c in line[2:-2].split(" | ")]


def _seconds(cell: str) -> float:
    value, unit = cell.split()[:2]
    assert unit.rstrip(":") == "s"
    return float(value)


def test_rows_cover_every_goal_at_the_requested_sizes(rows: list[Row]) -> None:
    assert len(rows) == 9
    kinds = [r.goal.kind for r in rows]
    assert kinds == ["min_speedup"] * 2 + ["max_seconds"] + ["max_ratio"] * 4 + ["min_speedup"] * 2
    assert [r.goal for r in rows] == [goal("bootstrap_vs_scipy")] * 2 + [goal("bca_1m_seconds")] + [
        goal("simulate_over_bare")
    ] * 2 + [goal("from_frame_over_simulate")] * 2 + [goal("sweep_speedup")] * 2
    assert "percentile, 2 000 values × 100 resamples" in rows[0].case
    assert "BCa, 2 000 values × 100 resamples" in rows[1].case
    assert "BCa, 5 000 values × 50 resamples" in rows[2].case
    assert "20 000 twins" in rows[3].case and rows[4].case.endswith("1 thread")
    assert "5 000 rows, Polars" in rows[5].case and "5 000 rows, pandas" in rows[6].case
    assert "8 configs × 20 000 twins, one pass" in rows[7].case
    assert "4 target selections" in rows[8].case
    # scipy's BCa ran one round beside ours; every other reference ran as many rounds as its case.
    assert [(r.rounds, r.ref_rounds) for r in rows] == [(3, 3), (3, 1), (3, 3)] + [(2, 2)] * 6
    assert "scipy.stats.bootstrap` percentile" in rows[0].reference
    assert "scipy.stats.bootstrap` BCa" in rows[1].reference
    assert "bare effects pass" in rows[3].reference
    assert rows[8].reference.startswith("8 `simulate` calls")


def test_ratio_is_time_over_reference(rows: list[Row]) -> None:
    for r in rows:
        assert math.isfinite(r.time_s) and r.time_s > 0.0
        assert math.isfinite(r.ref_s) and r.ref_s > 0.0
        assert r.ratio == r.time_s / r.ref_s
        assert r.met == r.goal.met(r.time_s, r.ref_s)


def test_table_prints_the_rows_medians_ratios_and_verdicts(rows: list[Row]) -> None:
    lines = markdown_table(rows).splitlines()
    assert lines[0] == HEADER
    assert lines[1] == "|---|---:|---|---:|---|---|"
    assert len(lines) == 2 + len(rows)
    for line, r in zip(lines[2:], rows, strict=True):
        case, time_cell, ref_cell, ratio_cell, goal_cell, met_cell = _cells(line)
        assert case.startswith(r.case) and case.endswith(f"({r.rounds} round{'s' * (r.rounds != 1)})")
        t, ref = _seconds(time_cell), _seconds(ref_cell)
        assert t == pytest.approx(r.time_s, rel=5e-4)
        assert ref == pytest.approx(r.ref_s, rel=5e-4)
        assert r.reference in ref_cell
        ratio = float(ratio_cell.split()[0])
        assert ratio == pytest.approx(t / ref, rel=2e-3)
        if r.goal.kind == "min_speedup":
            assert ratio_cell.endswith(f"({1.0 / r.ratio:.1f}× faster)")
        assert goal_cell == r.goal.text
        assert met_cell.startswith("yes" if r.met else "**no**")


def test_goal_verdicts_and_texts() -> None:
    speed = Goal("min_speedup", 20.0)
    assert speed.met(1.0, 20.0) and not speed.met(1.0, 19.9)
    assert speed.text == "≥ 20× faster (ratio ≤ 0.05)"
    ratio = Goal("max_ratio", 1.5)
    assert ratio.met(1.5, 1.0) and not ratio.met(1.51, 1.0)
    assert ratio.text == "ratio ≤ 1.5"
    seconds = Goal("max_seconds", 1.5)
    assert seconds.met(1.49, 100.0) and not seconds.met(1.5, 100.0)
    assert seconds.text == "< 1.5 s"
    with pytest.raises(ValueError, match="`kind` must be min_speedup, max_ratio or max_seconds; got 'fast'"):
        Goal("fast", 1.0).met(1.0, 1.0)


def test_goals_are_issue_13s_and_the_sweep_guard_comes_from_the_config() -> None:
    goals = performance_limits().issue13_goals
    assert ISSUE13_GOALS == {
        "bootstrap_vs_scipy": ("min_speedup", goals.bootstrap_vs_scipy),
        "bca_1m_seconds": ("max_seconds", goals.bca_1m_seconds),
        "simulate_over_bare": ("max_ratio", goals.simulate_over_bare),
        "from_frame_over_simulate": ("max_ratio", goals.from_frame_over_simulate),
        "sweep_speedup": ("min_speedup", goals.sweep_speedup),
    }
    sweep = goal("sweep_speedup")
    assert sweep.guard == performance_limits().min_sweep_speedup
    assert sweep.text == f"≥ 10× faster (ratio ≤ 0.1); CI guard {sweep.guard:g}×"
    assert goal("simulate_over_bare").guard is None


@pytest.mark.parametrize(
    ("ref_s", "verdict"),
    [(12.0, "yes"), (9.0, "**no** (CI guard met)"), (5.0, "**no** (CI guard missed)")],
)
def test_a_missed_sweep_goal_says_whether_the_ci_guard_held(ref_s: float, verdict: str) -> None:
    guarded = Goal("min_speedup", 10.0, guard=8.0)
    row = Row("sweep", 1.0, "loop", ref_s, 3, 3, guarded)
    line = markdown_table([row]).splitlines()[2]
    cells = _cells(line)
    assert cells[3] == f"{1.0 / ref_s:.4g} ({ref_s:.1f}× faster)"
    assert cells[5] == verdict


def test_scipy_bca_rounds_must_fit_in_the_rounds() -> None:
    with pytest.raises(ValueError, match=r"`scipy_bca_rounds` must be in \[1, rounds=2\]; got 3"):
        bootstrap_rows(TINY, rounds=2, scipy_bca_rounds=3)


def test_environment_line_names_versions_threads_and_load() -> None:
    line = environment_line((1.0, 2.0, 3.0), (4.5, 5.0, 6.0))
    assert " UTC; " in line and "numba " in line and " threads)" in line and "scipy " in line
    assert "load average before 1.00 / 2.00 / 3.00, after 4.50 / 5.00 / 6.00" in line


@pytest.mark.slow
def test_quick_run_prints_the_command_the_table_and_the_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Command: `PYTHONPATH=. python -m benchmarks.issue13_table --quick`"
    start = out.index(HEADER)
    table = [line for line in out[start:] if line.startswith("|")]
    assert len(table) == 2 + 9
    assert any("load average before" in line for line in out)
    assert out[-1].startswith("--quick: small sizes")
