"""Configuration: loaded once, validated, errors name the key path and the allowed range."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from twinkernel.config import (
    ConfigError,
    TwinkernelConfig,
    config_from_mapping,
    default_config_path,
    get_config,
    load_config,
)

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "digital_twin_config.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(REPO_CONFIG.read_text())


def test_packaged_default_is_the_repository_file():
    assert default_config_path().resolve() == REPO_CONFIG.resolve()
    assert load_config().model_dump() == load_config(REPO_CONFIG).model_dump()


def test_every_section_of_the_spec_is_present():
    cfg = load_config()
    assert set(TwinkernelConfig.model_fields) >= {
        "twin_generation",
        "simulation",
        "fidelity",
        "repository",
        "simulation_cache",
        "auto_retraining",
        "observability",
    }
    assert cfg.simulation_cache.ttl_seconds == 1800
    assert cfg.simulation_cache.max_cached_results == 1000
    assert cfg.simulation_cache.key_prefix == "twin_sim:"
    assert cfg.auto_retraining.enabled is False
    assert cfg.auto_retraining.fidelity_threshold == 0.70
    assert cfg.auto_retraining.auto_approve_threshold == 0.50
    assert cfg.auto_retraining.notification_webhook is None
    eff = cfg.simulation.intervention_effects
    assert set(eff.types) == {
        "email_campaign",
        "call_frequency_increase",
        "speaker_program_invitation",
        "sample_distribution",
        "peer_influence_activation",
        "digital_engagement",
    }
    assert eff.priority_tier == {1: 1.5, 2: 1.2, 3: 1.0, 4: 0.8, 5: 0.6}
    assert cfg.simulation.recommendations.deploy_threshold == 0.05
    assert cfg.simulation.recommendations.refine_threshold == 0.02


def test_get_config_loads_once():
    assert get_config() is get_config()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("simulation", "recommendations", "deploy_threshold"),
            1.5,
            r"simulation\.recommendations\.deploy_threshold: .*got 1\.5.*allowed range \[0\.0, 1\.0\]",
        ),
        (
            ("simulation", "intervention_effects", "types", "email_campaign", "noise_sd"),
            -0.1,
            r"intervention_effects\.types\.email_campaign\.noise_sd: .*allowed range \[0\.0, 1\.0\]",
        ),
        (("simulation_cache", "ttl_seconds"), 0, r"simulation_cache\.ttl_seconds: .*allowed range \[1, "),
        (("simulation", "ci_method"), "jackknife", r"simulation\.ci_method: Input should be 'analytic'"),
        (("simulation", "min_twins"), "many", r"simulation\.min_twins: .*valid integer"),
    ],
)
def test_bad_value_names_key_path_and_range(raw, path, value, expected):
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=expected):
        config_from_mapping(raw)


def test_unknown_key_is_refused(raw):
    raw["simulation"]["min_twinz"] = 5
    with pytest.raises(ConfigError, match=r"simulation\.min_twinz: Extra inputs are not permitted"):
        config_from_mapping(raw)


def test_cross_field_rules(raw):
    raw["simulation"]["recommendations"]["refine_threshold"] = 0.09
    with pytest.raises(ConfigError, match=r"refine_threshold \(0\.09\) must not exceed deploy_threshold"):
        config_from_mapping(raw)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulation: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(listy)


def test_environment_overrides(tmp_path, monkeypatch, raw):
    raw["simulation"]["min_twins"] = 250
    alt = tmp_path / "alt.yaml"
    alt.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TWINKERNEL_CONFIG", str(alt))
    monkeypatch.setenv("TWINKERNEL_REDIS_URL", "redis://127.0.0.1:6390/2")
    cfg = load_config()
    assert cfg.simulation.min_twins == 250
    assert cfg.simulation_cache.redis_url == "redis://127.0.0.1:6390/2"
    assert cfg.source == str(alt)


def test_log_level_is_gone(raw):
    # A library never sets log levels: the key was validated but never read, and is now refused.
    assert raw["observability"] == {}
    raw["observability"]["log_level"] = "INFO"
    with pytest.raises(ConfigError, match=r"observability\.log_level: Extra inputs are not permitted"):
        config_from_mapping(raw)


def test_simulation_boundary_keys(raw):
    cfg = config_from_mapping(raw)
    assert cfg.simulation.known_channels == ("email", "digital", "in_person", "phone")
    assert cfg.simulation.default_outcome_sd == 0.5
    raw["simulation"]["intervention_effects"]["types"]["email_campaign"]["channel_multipliers"]["fax"] = 0.5
    with pytest.raises(
        ConfigError, match=r"channel_multipliers name channels missing from known_channels: \['fax'\]"
    ):
        config_from_mapping(raw)
    raw["simulation"]["default_outcome_sd"] = 0.0
    with pytest.raises(
        ConfigError, match=r"simulation\.default_outcome_sd: .*allowed range \(0\.0, 1000\.0\]"
    ):
        config_from_mapping(raw)


def test_every_simulation_key_is_read():
    """A key nothing reads is a number written for nobody: read it or delete it (issue 8)."""
    from pydantic import BaseModel

    from twinkernel.config import SimulationConfig

    package = Path(__file__).resolve().parents[2] / "twinkernel"
    sources = "\n".join(p.read_text() for p in package.rglob("*.py") if p.name != "config.py")
    # Read by the next issue's prediction intervals (kept on purpose).
    reserved = {"prior_relative_sd"}

    def leaves(model: type[BaseModel], prefix: str):
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from leaves(annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", name

    unread = [
        path
        for path, name in leaves(SimulationConfig, "simulation.")
        # read as an attribute, or by name (missing_value_defaults are looked up per column name)
        if name not in reserved and f".{name}" not in sources and f'"{name}"' not in sources
    ]
    assert unread == []
