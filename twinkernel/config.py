"""Load and validate ``config/digital_twin_config.yaml`` once.

Every threshold, prior and limit the library uses lives in that file. :func:`load_config` reads it into
frozen pydantic models; a wrong value fails at load with its YAML key path and the allowed range.
"""

from __future__ import annotations

import os
import threading
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CalibrationConfig",
    "ConfigError",
    "TwinkernelConfig",
    "default_config_path",
    "get_config",
    "load_config",
]

ENV_CONFIG_PATH = "TWINKERNEL_CONFIG"
ENV_REDIS_URL = "TWINKERNEL_REDIS_URL"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or holds a value outside its allowed range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Field(ge=0.0, le=1.0)


# --- twin_generation ---------------------------------------------------------------------------------------
class PropensityHeuristic(_Section):
    intercept: float = Field(ge=0.0, le=1.0)
    per_decile_step: float = Field(ge=0.0, le=1.0)
    engagement_weight: float = Field(ge=0.0, le=1.0)
    low: float = Field(ge=0.0, le=1.0)
    high: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _low_below_high(self) -> PropensityHeuristic:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class TwinGenerationConfig(_Section):
    min_training_rows: int = Field(ge=1, le=100_000_000)
    default_algorithm: Literal["hist_gradient_boosting", "random_forest", "gradient_boosting"]
    cv_folds: int = Field(ge=2, le=20)
    random_state: int = Field(ge=0)
    quantile_points: int = Field(ge=2, le=1_000_000)
    max_discrete_levels: int = Field(ge=2, le=100_000)
    correlation: Literal["norta", "normal_scores"]
    gibbs_sweeps: int = Field(ge=1, le=1000)
    test_size: float = Field(gt=0.0, lt=1.0)
    permutation_repeats: int = Field(ge=1, le=100)
    chunk_size: int = Field(ge=1024, le=1 << 24)
    leakage_tolerance: float = Field(gt=0.0, lt=1.0)
    sklearn_threads: int | None = Field(ge=1)
    propensity_heuristic: PropensityHeuristic


# --- simulation --------------------------------------------------------------------------------------------
class ConfidenceScoreConfig(_Section):
    weight_n: float = Field(ge=0.0, le=1.0)
    weight_se: float = Field(ge=0.0, le=1.0)
    weight_fidelity: float = Field(ge=0.0, le=1.0)
    n_reference: int = Field(ge=1)
    ate_epsilon: float = Field(gt=0.0, le=1.0)


class MissingValueDefaults(_Section):
    decile: int = Field(ge=1, le=10)
    digital_engagement_score: float = Field(ge=0.0, le=1.0)
    adoption_stage: str
    priority_tier: int = Field(ge=1, le=5)
    peer_influence_score: float = Field(ge=0.0, le=1.0)
    baseline_propensity: float = Field(ge=0.0, le=1.0)
    baseline_outcome: float
    specialty: str
    region: str
    preferred_channel: str


class LinearModifier(_Section):
    intercept: float = Field(ge=0.0, le=10.0)
    slope: float = Field(ge=-10.0, le=10.0)


class DecileModifier(LinearModifier):
    low: int = Field(ge=0, le=100)
    high: int = Field(ge=0, le=100)


class TypeEffect(_Section):
    base_effect: float = Field(ge=-1.0, le=1.0)
    noise_sd: float = Field(ge=0.0, le=1.0)
    channel_multipliers: dict[str, float] = Field(default_factory=dict)
    per_additional_call: float | None = Field(default=None, ge=0.0, le=1.0)
    max_additional_calls: int | None = Field(default=None, ge=0, le=100)
    use_priority_tier: bool = False
    peer_influence_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class UnknownTypeEffect(_Section):
    base_effect: float = Field(ge=-1.0, le=1.0)
    noise_sd: float = Field(ge=0.0, le=1.0)


class InterventionEffectsConfig(_Section):
    effect_cap: float = Field(gt=0.0, le=100.0)
    decile: DecileModifier
    engagement: LinearModifier
    propensity: LinearModifier
    duration_reference_weeks: int = Field(ge=1, le=52)
    adoption_stage: dict[str, float]
    unknown_adoption_multiplier: float = Field(ge=0.0, le=10.0)
    priority_tier: dict[int, float]
    unknown_type: UnknownTypeEffect
    prior_relative_sd: float = Field(ge=0.0, le=10.0)
    types: dict[str, TypeEffect]

    @model_validator(mode="after")
    def _complete_tables(self) -> InterventionEffectsConfig:
        if sorted(self.priority_tier) != [1, 2, 3, 4, 5]:
            raise ValueError(f"priority_tier must map tiers 1..5; got {sorted(self.priority_tier)}")
        if not self.adoption_stage:
            raise ValueError("adoption_stage must list at least one stage")
        if self.decile.low > self.decile.high:
            raise ValueError("decile.low must not exceed decile.high")
        return self


class RecommendationConfig(_Section):
    deploy_threshold: float = Field(ge=0.0, le=1.0)
    refine_threshold: float = Field(ge=0.0, le=1.0)
    alpha: float = Field(gt=0.0, lt=1.0)
    power: float = Field(gt=0.0, lt=1.0)
    min_sample_size: int = Field(ge=2)
    max_sample_size: int = Field(ge=2)
    default_duration_weeks: int = Field(ge=1, le=52)

    @model_validator(mode="after")
    def _ordered(self) -> RecommendationConfig:
        if self.refine_threshold > self.deploy_threshold:
            raise ValueError(
                f"refine_threshold ({self.refine_threshold}) must not exceed "
                f"deploy_threshold ({self.deploy_threshold})"
            )
        if self.min_sample_size > self.max_sample_size:
            raise ValueError("min_sample_size must not exceed max_sample_size")
        return self


class SimulationConfig(_Section):
    min_twins: int = Field(ge=1)
    min_segment_size: int = Field(ge=1)
    default_confidence_level: float = Field(gt=0.0, lt=1.0)
    confidence_threshold: float = Field(ge=0.0, le=1.0)
    t_distribution_below_n: int = Field(ge=0)
    default_fidelity: float = Field(ge=0.0, le=1.0)
    fidelity_warning_threshold: float = Field(ge=0.0, le=1.0)
    trace_limit: int = Field(ge=0, le=1_000_000)
    kernel_chunk_size: int = Field(ge=64, le=1 << 24)
    ci_method: Literal["analytic", "percentile", "basic", "bca"]
    n_resamples: int = Field(ge=10, le=1_000_000)
    blb_min_n: int = Field(ge=1000)
    confidence_score: ConfidenceScoreConfig
    outcome_residual_sd: float = Field(ge=0.0)
    missing_value_defaults: MissingValueDefaults
    intervention_effects: InterventionEffectsConfig
    recommendations: RecommendationConfig


# --- fidelity ----------------------------------------------------------------------------------------------
class FidelityConfig(_Section):
    excellent_below: float = Field(gt=0.0, le=10.0)
    good_below: float = Field(gt=0.0, le=10.0)
    fair_below: float = Field(gt=0.0, le=10.0)
    error_weight: float = Field(ge=0.0, le=1.0)
    coverage_weight: float = Field(ge=0.0, le=1.0)
    default_coverage_rate: float = Field(ge=0.0, le=1.0)
    lookback_days: int = Field(ge=1, le=3650)
    min_validations_per_half: int = Field(ge=1)
    degradation_threshold: float = Field(ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _ordered(self) -> FidelityConfig:
        if not self.excellent_below < self.good_below < self.fair_below:
            raise ValueError("grade bounds must increase: excellent_below < good_below < fair_below")
        return self


# --- repository, cache, retraining, observability ----------------------------------------------------------
class RepositoryConfig(_Section):
    url: str | None = None
    data_dir: str = ".twinkernel"
    mlflow_tracking_uri: str | None = None


class SimulationCacheSection(_Section):
    enabled: bool
    backend: Literal["auto", "memory", "redis"]
    ttl_seconds: int = Field(ge=1, le=30 * 24 * 3600)
    max_cached_results: int = Field(ge=1, le=10_000_000)
    key_prefix: str = Field(min_length=1)
    redis_url: str | None = None
    socket_timeout_seconds: float = Field(gt=0.0, le=60.0)
    socket_connect_timeout_seconds: float = Field(gt=0.0, le=60.0)
    cache_unseeded: bool
    lock_ttl_ms: int = Field(ge=1, le=3_600_000)
    lock_wait_seconds: float = Field(ge=0.0, le=3600.0)
    circuit_breaker_failures: int = Field(ge=1, le=1000)
    circuit_breaker_reset_seconds: float = Field(ge=0.0, le=3600.0)


class AutoRetrainingConfig(_Section):
    enabled: bool
    fidelity_threshold: float = Field(ge=0.0, le=1.0)
    mae_threshold: float = Field(ge=0.0, le=10.0)
    coverage_threshold: float = Field(ge=0.0, le=1.0)
    min_validations_for_decision: int = Field(ge=1)
    cooldown_hours: float = Field(ge=0.0, le=24 * 365)
    auto_approve_threshold: float = Field(ge=0.0, le=1.0)
    require_approval: bool
    max_attempts: int = Field(ge=1, le=100)
    notification_webhook: str | None = None


# --- calibration (learning from real experiments) ---------------------------------------------------------
class CalibrationConfig(_Section):
    """Random-effects calibration of the effect model from real experiments (see ``docs/calibration.md``)."""

    half_life_days: float = Field(gt=0.0, le=36_500.0)
    tau_upper_factor: float = Field(gt=0.0, le=1_000.0)
    reml_xatol: float = Field(gt=0.0, le=1.0)
    reml_max_iterations: int = Field(ge=10, le=100_000)
    reml_grid_points: int = Field(ge=4, le=100_000)
    min_probability: float = Field(gt=0.5, lt=1.0)


class ObservabilityConfig(_Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class TwinkernelConfig(_Section):
    """The whole configuration file, validated."""

    twin_generation: TwinGenerationConfig
    simulation: SimulationConfig
    fidelity: FidelityConfig
    repository: RepositoryConfig
    simulation_cache: SimulationCacheSection
    auto_retraining: AutoRetrainingConfig
    calibration: CalibrationConfig
    observability: ObservabilityConfig
    source: str | None = Field(default=None, exclude=True)


# --- loading -----------------------------------------------------------------------------------------------
def default_config_path() -> Path:
    """The path :func:`load_config` reads when given none: ``$TWINKERNEL_CONFIG`` or the packaged file."""
    env = os.environ.get(ENV_CONFIG_PATH)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "default_config.yaml"


def _constraint_text(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """Describe the allowed range of the field at ``loc`` from its pydantic metadata."""
    current: Any = model
    field = None
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            field = current.model_fields[part]
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]  # a mapping key: descend into the value type
        else:
            field = None
            break
    if field is None:
        return ""
    bounds: dict[str, Any] = {}
    for meta in field.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds[attr] = value
    if not bounds:
        return ""
    low = f"[{bounds['ge']}" if "ge" in bounds else (f"({bounds['gt']}" if "gt" in bounds else "(-inf")
    high = f"{bounds['le']}]" if "le" in bounds else (f"{bounds['lt']})" if "lt" in bounds else "inf)")
    return f"; allowed range {low}, {high}"


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "__root__")
        key = ".".join(str(p) for p in loc) or "<root>"
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {err['msg']}{got_text}{_constraint_text(TwinkernelConfig, loc)}")
    return "\n".join(lines)


def config_from_mapping(data: dict[str, Any], source: str = "<mapping>") -> TwinkernelConfig:
    """Validate an already-parsed mapping (used by tests and by :func:`load_config`)."""
    try:
        cfg = TwinkernelConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return _apply_env_overrides(cfg)


def _apply_env_overrides(cfg: TwinkernelConfig) -> TwinkernelConfig:
    redis_url = os.environ.get(ENV_REDIS_URL)
    if redis_url:
        cache = cfg.simulation_cache.model_copy(update={"redis_url": redis_url})
        cfg = cfg.model_copy(update={"simulation_cache": cache})
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> TwinkernelConfig:
    """Read and validate a configuration file.

    Parameters
    ----------
    path
        YAML file to read. ``None`` reads ``$TWINKERNEL_CONFIG`` if set, else the packaged
        ``config/digital_twin_config.yaml``.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, or a value is invalid; the message names the key path and
        the allowed range.

    Examples
    --------
    >>> cfg = load_config()
    >>> cfg.simulation.recommendations.deploy_threshold
    0.05
    """
    p = Path(path) if path is not None else default_config_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {p}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {p} must hold a mapping at the top level")
    return config_from_mapping(data, source=str(p))


_cached: TwinkernelConfig | None = None
_cached_lock = threading.Lock()


def get_config() -> TwinkernelConfig:
    """The default configuration, loaded once per process (thread-safe)."""
    global _cached
    if _cached is None:
        with _cached_lock:
            if _cached is None:
                _cached = load_config()
    return _cached
