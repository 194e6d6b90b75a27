"""DEBUG-trace mode (plan 1.1): every modifier with the twin id; nothing computed when DEBUG is off."""

from __future__ import annotations

import logging
import re

import pytest

from twinkernel import InterventionConfig
from twinkernel.kernels.effects import MODIFIER_NAMES

CFG = InterventionConfig(intervention_type="speaker_program_invitation", channel="email")
TRACE = "twinkernel.trace"


def _trace_records(caplog):
    return [r for r in caplog.records if r.name == TRACE]


def _parse(message: str) -> tuple[str, dict[str, float]]:
    m = re.match(r"effect modifiers for twin (\S+): (.*)$", message)
    assert m, message
    values = dict(part.split("=") for part in m.group(2).split(", "))
    return m.group(1), {k: float(v) for k, v in values.items()}


def test_debug_logs_every_modifier_for_the_first_twins(make_engine, config, caplog):
    engine = make_engine(500)
    with caplog.at_level(logging.DEBUG, logger="twinkernel"):
        engine.simulate(CFG, seed=3)
    records = _trace_records(caplog)
    assert len(records) == config.simulation.trace_limit == 100
    assert all(r.levelno == logging.DEBUG for r in records)
    table = engine.modifier_table(CFG, seed=3, limit=100)
    for row, record in enumerate(records):
        twin_id, values = _parse(record.getMessage())
        assert twin_id == table["twin_id"][row]
        assert list(values) == list(MODIFIER_NAMES)
        for name in (
            "decile",
            "engagement",
            "adoption",
            "intensity",
            "duration",
            "channel",
            "tier",
            "propensity",
            "total",
            "effect",
        ):
            assert values[name] == pytest.approx(table[name][row], rel=1e-5), name


def test_trace_follows_the_filter_and_limit(make_engine, caplog):
    from twinkernel import PopulationFilter

    engine = make_engine(2000)
    with caplog.at_level(logging.DEBUG, logger="twinkernel"):
        result = engine.simulate(CFG, PopulationFilter(deciles=[10]), seed=1)
    ids = [_parse(r.getMessage())[0] for r in _trace_records(caplog)]
    frame = engine.population.frame
    expected = frame.filter(frame["decile"] == 10)["twin_id"].to_list()
    assert result.twin_count == len(expected) > 100
    assert len(ids) == 100
    assert ids == expected[:100]


def test_debug_trace_flag_works_without_debug_level(make_engine, caplog):
    engine = make_engine(300)
    with caplog.at_level(logging.INFO, logger="twinkernel"):
        caplog.handler.setLevel(logging.DEBUG)
        engine.simulate(CFG, seed=2, debug_trace=True)
    assert len(_trace_records(caplog)) == 100


def test_nothing_is_computed_when_debug_is_off(make_engine, monkeypatch, caplog):
    engine = make_engine(300)
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        raise AssertionError("trace kernel must not run with DEBUG off")

    monkeypatch.setattr(engine, "_trace", spy)
    with caplog.at_level(logging.INFO, logger="twinkernel"):
        result = engine.simulate(CFG, seed=2)
    assert calls == [] and _trace_records(caplog) == []
    assert result.status.value == "completed"


def test_info_output_unchanged_by_debug_trace(make_engine, caplog):
    engine = make_engine(300)

    def info_lines(**kwargs):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="twinkernel"):
            engine.simulate(CFG, seed=5, **kwargs)
        return [
            (r.name, r.levelno, re.sub(r"in [\d.]+ ms", "in _ ms", r.getMessage()))
            for r in caplog.records
            if r.levelno >= logging.INFO
        ]

    plain = info_lines()
    traced = info_lines(debug_trace=True)
    assert plain == traced
    assert len(plain) == 1 and "ATE" in plain[0][2]
    # The trace never changes the result.
    assert (
        engine.simulate(CFG, seed=5).simulated_ate
        == engine.simulate(CFG, seed=5, debug_trace=True).simulated_ate
    )


def test_modifier_table_is_a_polars_frame(make_engine):
    import polars as pl

    engine = make_engine(250)
    table = engine.modifier_table(CFG, seed=4)
    assert isinstance(table, pl.DataFrame)
    assert table.columns == ["twin_id", *MODIFIER_NAMES]
    assert table.height == 250
    result = engine.simulate(CFG, seed=4)
    assert table["effect"].mean() == pytest.approx(result.simulated_ate, rel=1e-12)
