"""Fuzzing every public entry point: a documented error naming the field, or a valid result; nothing else.

Documented errors: pydantic ``ValidationError`` (requests), ``ConfigError`` (configuration files),
``ValueError`` / ``TypeError`` naming the column (population frames). Hypothesis runs derandomized with a
bounded number of examples, so the test is seeded and quick.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from twinkernel import (
    ConfigError,
    InterventionConfig,
    PopulationFilter,
    SimulationEngine,
    SimulationStatus,
    TwinkernelConfig,
    TwinPopulation,
    load_config,
)
from twinkernel.config import default_config_path

FUZZ = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


# --- configuration -----------------------------------------------------------------------------------------
RAW = yaml.safe_load(default_config_path().read_text())


def leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict) and node:
        out: list[tuple[Any, ...]] = []
        for k, v in node.items():
            out.extend(leaf_paths(v, (*prefix, k)))
        return out
    return [prefix]


LEAVES = leaf_paths(RAW)


def replaced(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(RAW))  # a deep copy
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def load_text(text: str) -> TwinkernelConfig:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "config.yaml"
        p.write_text(text, encoding="utf-8")
        return load_config(p)


@FUZZ
@given(path=st.sampled_from(LEAVES), value=json_values)
def test_config_loader_with_wrong_values(path: tuple[Any, ...], value: Any):
    text = yaml.safe_dump(replaced(path, value))
    try:
        cfg = load_text(text)
    except ConfigError as exc:
        # The message names the key path that holds the bad value (or its section, for nested values).
        assert ".".join(str(p) for p in path[:1]) in str(exc)
        event("rejected")
        return
    event("accepted")
    assert isinstance(cfg, TwinkernelConfig)


@FUZZ
@given(text=st.text(max_size=200))
def test_config_loader_with_arbitrary_text(text: str):
    try:
        cfg = load_text(text)
    except ConfigError as exc:
        assert "config" in str(exc)
        return
    assert isinstance(cfg, TwinkernelConfig)  # pragma: no cover - random text is never a whole config


# --- requests ----------------------------------------------------------------------------------------------
def field_dicts(model: type, valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = sorted(model.model_fields)
    values = {
        name: st.one_of(json_values, st.just(valid[name])) if name in valid else json_values
        for name in fields
    }
    return st.fixed_dictionaries({}, optional={**values, "unexpected_field": json_values})


INTERVENTION_VALID = {
    "intervention_type": "email_campaign",
    "duration_weeks": 8,
    "target_deciles": [1, 2],
    "intensity_multiplier": 1.5,
    "target_regions": ["west"],
}


@FUZZ
@given(data=field_dicts(InterventionConfig, INTERVENTION_VALID))
def test_intervention_config_from_json(data: dict[str, Any]):
    text = json.dumps(data)
    try:
        cfg = InterventionConfig.model_validate_json(text)
    except ValidationError as exc:
        event("rejected")
        for err in exc.errors():
            assert err["loc"], err
            assert err["loc"][0] in data or (
                err["type"] == "missing" and err["loc"][0] == "intervention_type"
            )
        return
    assert 1 <= cfg.duration_weeks <= 52
    assert 0.1 <= cfg.intensity_multiplier <= 10.0
    assert all(1 <= d <= 10 for d in cfg.target_deciles)
    assert InterventionConfig.model_validate_json(cfg.model_dump_json()) == cfg


FILTER_VALID = {
    "deciles": [3, 1],
    "min_baseline_outcome": 0.0,
    "max_baseline_outcome": 0.5,
    "regions": ["west"],
}


@FUZZ
@given(data=field_dicts(PopulationFilter, FILTER_VALID))
def test_population_filter_from_json(data: dict[str, Any]):
    try:
        pf = PopulationFilter.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        event("rejected")
        for err in exc.errors():
            if err["loc"]:
                assert err["loc"][0] in data, err
            else:  # the cross-field rule names both bounds
                assert "min_baseline_outcome" in err["msg"] and "max_baseline_outcome" in err["msg"]
        return
    lo, hi = pf.min_baseline_outcome, pf.max_baseline_outcome
    assert lo is None or hi is None or lo <= hi
    assert pf.deciles == tuple(sorted(set(pf.deciles)))


# --- population frames -------------------------------------------------------------------------------------
FRAME_COLUMNS = (
    "twin_id",
    "specialty",
    "decile",
    "region",
    "digital_engagement_score",
    "adoption_stage",
    "priority_tier",
    "peer_influence_score",
    "preferred_channel",
    "baseline_outcome",
    "baseline_propensity",
)
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308, 0.5, 11.0]


@st.composite
def columns(draw: st.DrawFn, n: int) -> pl.Series:
    kind = draw(st.sampled_from(["int", "float", "special", "string", "bool", "null", "mixed_null"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "int":
        return pl.Series(rng.integers(-5, 15, n))
    if kind == "float":
        return pl.Series(rng.normal(0.5, 2.0, n))
    if kind == "special":
        return pl.Series(rng.choice(SPECIAL_FLOATS, n))
    if kind == "string":
        return pl.Series(rng.choice(["a", "", "early_adopter", "LAGGARD", "3", "west"], n))
    if kind == "bool":
        return pl.Series(rng.random(n) < 0.5)
    if kind == "null":
        return pl.Series([None] * n)
    values = rng.normal(0.5, 0.3, n)
    return pl.Series(values).set(pl.Series(rng.random(n) < 0.3), None) if n else pl.Series(values)


@st.composite
def frames(draw: st.DrawFn, n: int) -> pl.DataFrame:
    names = draw(st.lists(st.sampled_from(FRAME_COLUMNS), unique=True, max_size=len(FRAME_COLUMNS)))
    return pl.DataFrame({name: draw(columns(n)).alias(name) for name in names}) if names else pl.DataFrame()


@pytest.mark.parametrize("n", [0, 1, 2, 7, 150])
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_population_frames(n: int, data: st.DataObject):
    frame = data.draw(frames(n))
    try:
        pop = TwinPopulation.from_frame(frame, model_id="fuzz")
    except (ValueError, TypeError) as exc:
        assert any(name in str(exc) for name in frame.columns), str(exc)
        event("rejected")
        return
    event(f"accepted n={pop.n}")
    assert pop.n == frame.height
    for name in ("decile", "priority_tier"):
        assert pop.frame[name].null_count() == 0
    for name in ("digital_engagement_score", "baseline_propensity", "peer_influence_score"):
        assert not pop.frame[name].is_null().any()
    engine = SimulationEngine(pop)
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    if pop.n < 100:
        assert result.status == SimulationStatus.FAILED and "Insufficient twins" in (
            result.error_message or ""
        )
    else:
        assert result.status == SimulationStatus.COMPLETED
        assert math.isfinite(result.simulated_ate)
        assert abs(result.simulated_ate) <= 1.0  # the configured effect cap bounds every twin


@pytest.mark.parametrize("bad", [[math.inf], [-math.inf], [1e308, -1e308]], ids=["inf", "-inf", "overflow"])
def test_non_finite_baseline_outcome(bad: list[float]):
    values = np.random.default_rng(0).normal(0.3, 0.1, 150)
    values[: len(bad)] = bad
    pop = TwinPopulation.from_frame(pl.DataFrame({"baseline_outcome": values}))
    engine = SimulationEngine(pop)
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    # non-finite and out-of-range baselines are counted, defaulted and named (once crashed the sample size)
    assert result.status == SimulationStatus.COMPLETED
    assert math.isfinite(result.simulated_ate) and math.isfinite(result.outcome_std or math.nan)
    assert result.data_quality["baseline_outcome"]["defaulted"] == len(bad)
    assert any("baseline_outcome" in w for w in result.warnings)


def test_population_input_type_is_named():
    with pytest.raises(TypeError, match="`df` must be a polars or pandas DataFrame; got dict"):
        TwinPopulation.from_frame({"decile": [1]})  # type: ignore[arg-type]
    pandas = pytest.importorskip("pandas")
    pop = TwinPopulation.from_frame(pandas.DataFrame({"decile": [3, None, 12]}))
    assert pop.frame["decile"].to_list() == [3, 5, 12]  # null -> the documented default; 12 is clamped later


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_tiny_frames(n: int):
    pop = TwinPopulation.from_frame(pl.DataFrame({"decile": pl.Series([5] * n, dtype=pl.Int64)}))
    engine = SimulationEngine(pop)
    engine.cache = None
    result = engine.simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    assert result.status == SimulationStatus.FAILED
    assert (result.twin_count, result.simulated_ate) == (0, 0.0)
    assert f"{n}" in (result.error_message or "")
