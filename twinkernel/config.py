"""Load and validate ``config/digital_twin_config.yaml`` once.

Every threshold, prior and limit the library uses lives in that file. :func:`load_config` reads it into
frozen pydantic models; a wrong value fails at load with its YAML key path and the allowed range."""

from __future__ import annotations

import os
import threading
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config_effect_learning import EffectLearningConfig
from .config_frame import FrameEncodingConfig
from .config_performance import PerformanceConfig
from .config_sweep import SweepConfig
from .config_synthesis import SynthesisConfig
from .config_timeout import TimeoutConfig

__all__ = ["BootstrapConfig", "CalibrationConfig", "ConfigError", "TwinkernelConfig", "default_config_path",
           "get_config", "load_config"]  # fmt: skip

ENV_CONFIG_PATH = "TWINKERNEL_CONFIG"
ENV_REDIS_URL = "TWINKERNEL_REDIS_URL"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or holds a value outside its allowed range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- twin_generation ---------------------------------------------------------------------------------------
class PropensityHeuristic(_Section):
    intercept: float = Field(ge=0.0, le=1.0)
    per_decile_step: float = Field(ge=0.0, le=1.0)
    reference_decile: float = Field(ge=0.0, le=100.0)
    engagement_weight: float = Field(ge=0.0, le=1.0)
    low: float = Field(ge=0.0, le=1.0)
    high: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _low_below_high(self) -> PropensityHeuristic:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class CopulaNumerics(_Section):
    rho_limit: float = Field(gt=0.0, lt=1.0)
    rho_tolerance: float = Field(gt=0.0, le=1e-2)
    min_eigenvalue: float = Field(gt=0.0, le=1e-2)
    quadrature_nodes: int = Field(ge=8, le=200)
    equality_quantile_clip: float = Field(gt=0.0, le=1e-3)


class HistGradientBoostingParams(_Section):
    max_iter: int = Field(ge=1, le=100_000)
    learning_rate: float = Field(gt=0.0, le=10.0)
    max_leaf_nodes: int | None = Field(ge=2)
    max_depth: int | None = Field(ge=1)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0.0)
    early_stopping: Literal["auto"] | bool
    validation_fraction: float = Field(gt=0.0, lt=1.0)
    n_iter_no_change: int = Field(ge=1)


class RandomForestParams(_Section):
    n_estimators: int = Field(ge=1, le=100_000)
    min_samples_leaf: int = Field(ge=1)
    n_jobs: int | None = Field(ge=-1)

    @model_validator(mode="after")
    def _n_jobs_not_zero(self) -> RandomForestParams:
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be null, -1 or a positive integer; got 0")
        return self


class GradientBoostingParams(_Section):
    n_estimators: int = Field(ge=1, le=100_000)
    max_depth: int = Field(ge=1, le=100)
    learning_rate: float = Field(gt=0.0, le=10.0)
    subsample: float = Field(gt=0.0, le=1.0)


class OutcomeModels(_Section):
    hist_gradient_boosting: HistGradientBoostingParams
    random_forest: RandomForestParams
    gradient_boosting: GradientBoostingParams


class LeakageAssociationConfig(_Section):
    """A feature near-deterministic of the target out of fold, compared with the rest, is refused."""

    min_r2: float = Field(gt=0.0, lt=1.0)
    ratio: float = Field(gt=0.0, le=1.0)
    bins: int = Field(ge=2, le=10_000)


class DetectionConfig(_Section):
    """The fidelity report's real-vs-twins classifier (scikit-learn HistGradientBoostingClassifier)."""

    folds: int = Field(ge=2, le=20)
    max_rows: int = Field(ge=100, le=10_000_000)
    max_iter: int = Field(ge=1, le=10_000)
    learning_rate: float = Field(gt=0.0, le=1.0)
    max_leaf_nodes: int = Field(ge=2, le=4096)


class PrivacyConfig(_Section):
    """Exact copies and distance to the closest training record (fidelity report)."""

    max_rows: int = Field(ge=10, le=10_000_000)
    reference_max_rows: int = Field(ge=10, le=10_000_000)


class GeneratorFidelityConfig(_Section):
    """Settings of ``TwinGenerator.fidelity_report`` (twin_generator/fidelity.py)."""

    categorical_max_levels: int = Field(ge=1, le=1000)
    contingency_bins: int = Field(ge=2, le=1000)
    min_level_rows: int = Field(ge=1)
    worst_pairs: int = Field(ge=1, le=1000)
    detection: DetectionConfig
    privacy: PrivacyConfig


class TwinGenerationConfig(_Section):
    min_training_rows: int = Field(ge=1, le=100_000_000)
    default_algorithm: Literal["hist_gradient_boosting", "random_forest", "gradient_boosting"]
    cv_folds: int = Field(ge=2, le=20)
    random_state: int = Field(ge=0, lt=2**63)
    quantile_points: int = Field(ge=2, le=1_000_000)
    max_discrete_levels: int = Field(ge=2, le=100_000)
    correlation: Literal["norta", "normal_scores"]
    gibbs_sweeps: int = Field(ge=1, le=1000)
    test_size: float = Field(gt=0.0, lt=1.0)
    permutation_repeats: int = Field(ge=1, le=100)
    chunk_size: int = Field(ge=1024, le=1 << 24)
    leakage_tolerance: float = Field(gt=0.0, lt=1.0)
    sklearn_threads: int | None = Field(ge=1)
    leakage_check_max_rows: int = Field(ge=100, le=100_000_000)
    leakage_association: LeakageAssociationConfig
    fidelity: GeneratorFidelityConfig
    synthesis: SynthesisConfig
    importance_max_rows: int = Field(ge=100, le=100_000_000)
    identifier_min_levels: int = Field(ge=1)
    identifier_share: float = Field(gt=0.0, le=1.0)
    copula: CopulaNumerics
    outcome_models: OutcomeModels
    propensity_max_iter: int = Field(ge=1, le=1_000_000)
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


class PopulationChecksConfig(_Section):
    """How a population's columns are checked when it is built (twinkernel.population)."""

    warn_defaulted_share: float = Field(gt=0.0, le=1.0)
    error_defaulted_share: float | None = Field(gt=0.0, le=1.0)
    max_abs_value: float = Field(gt=0.0)
    near_miss_cutoff: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _warn_below_error(self) -> PopulationChecksConfig:
        if self.error_defaulted_share is not None and self.error_defaulted_share < self.warn_defaulted_share:
            raise ValueError(
                f"error_defaulted_share ({self.error_defaulted_share}) must not be below "
                f"warn_defaulted_share ({self.warn_defaulted_share})"
            )
        return self


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
    min_probability: float = Field(gt=0.5, lt=1.0)
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
    default_outcome_sd: float = Field(gt=0.0, le=1000.0)
    known_channels: tuple[str, ...] = Field(min_length=1)
    missing_value_defaults: MissingValueDefaults
    population_checks: PopulationChecksConfig
    frame_encoding: FrameEncodingConfig
    intervention_effects: InterventionEffectsConfig
    recommendations: RecommendationConfig
    timeout: TimeoutConfig
    sweep: SweepConfig

    @model_validator(mode="after")
    def _channels_cover_multipliers(self) -> SimulationConfig:
        unknown = sorted(
            {
                channel
                for type_cfg in self.intervention_effects.types.values()
                for channel in type_cfg.channel_multipliers
                if channel not in self.known_channels
            }
        )
        if unknown:
            raise ValueError(
                f"channel_multipliers name channels missing from known_channels: {unknown}; "
                f"known_channels: {list(self.known_channels)}"
            )
        return self


# --- bootstrap ---------------------------------------------------------------------------------------------
class BlbConfig(_Section):
    gamma: float = Field(gt=0.0, lt=1.0)
    n_subsets: int = Field(ge=1, le=1000)
    min_subset: int = Field(ge=1)


class BootstrapConfig(_Section):
    max_resamples: int = Field(ge=10, le=10_000_000)
    bca_tie_tolerance: float = Field(ge=0.0, lt=1e-3)
    blb: BlbConfig
    poisson_quads_per_task: int = Field(ge=1, le=1024)
    max_direct_cells: int = Field(ge=1, le=1 << 24)


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
class LineageConfig(_Section):
    """MLflow lineage (``repository.lineage``): see ``docs/persistence.md``."""

    enabled: bool
    log_simulations: bool
    experiment_name: str = Field(min_length=1)
    registered_model_name: str = Field(min_length=1)
    champion_alias: str = Field(min_length=1)
    http_timeout_seconds: int = Field(ge=1, le=600)
    http_max_retries: int = Field(ge=0, le=20)
    reachability_timeout_seconds: float = Field(gt=0.0, le=60.0)
    retry_interval_seconds: float = Field(ge=0.0, le=86_400.0)


class RepositoryConfig(_Section):
    """Where results, models, jobs and experiments are stored (``repository``); see docs/persistence.md."""

    enabled: bool
    url: str | None = None
    data_dir: str | None = None
    sqlite_filename: str = Field(min_length=1)
    outbox_filename: str = Field(min_length=1)
    mlflow_tracking_uri: str | None = None
    connect_timeout_seconds: int = Field(ge=1, le=600)
    sqlite_busy_timeout_seconds: float = Field(gt=0.0, le=600.0)
    retry_interval_seconds: float = Field(ge=0.0, le=86_400.0)
    write_batch_size: int = Field(ge=1, le=1_000_000)
    pool_size: int = Field(ge=1, le=1000)
    lineage: LineageConfig


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
    lock_poll_initial_seconds: float = Field(gt=0.0, le=60.0)
    lock_poll_max_seconds: float = Field(gt=0.0, le=60.0)
    circuit_breaker_failures: int = Field(ge=1, le=1000)
    circuit_breaker_reset_seconds: float = Field(ge=0.0, le=3600.0)

    @model_validator(mode="after")
    def _poll_ordered(self) -> SimulationCacheSection:
        if self.lock_poll_initial_seconds > self.lock_poll_max_seconds:
            raise ValueError(
                f"lock_poll_initial_seconds ({self.lock_poll_initial_seconds}) must not exceed "
                f"lock_poll_max_seconds ({self.lock_poll_max_seconds})"
            )
        return self


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
    webhook_timeout_seconds: float = Field(gt=0.0, le=600.0)
    simulation_seed: int = Field(ge=0, lt=2**63)
    job_lease_seconds: float = Field(gt=0.0, le=7 * 24 * 3600)


class CalibrationConfig(_Section):
    """Random-effects calibration of the effect model from real experiments (see ``docs/calibration.md``)."""

    half_life_days: float = Field(gt=0.0, le=36_500.0)
    tau_upper_factor: float = Field(gt=0.0, le=1_000.0)
    reml_xatol: float = Field(gt=0.0, le=1.0)
    reml_max_iterations: int = Field(ge=10, le=100_000)
    reml_grid_points: int = Field(ge=4, le=100_000)


class ObservabilityConfig(_Section):
    """Reserved for observability settings. There is no log level: a library never sets log levels."""


class TwinkernelConfig(_Section):
    """The whole configuration file, validated."""

    twin_generation: TwinGenerationConfig
    simulation: SimulationConfig
    bootstrap: BootstrapConfig
    fidelity: FidelityConfig
    repository: RepositoryConfig
    simulation_cache: SimulationCacheSection
    auto_retraining: AutoRetrainingConfig
    calibration: CalibrationConfig
    effect_learning: EffectLearningConfig
    observability: ObservabilityConfig
    performance: PerformanceConfig | None = None  # only the performance tests read it
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _resamples_within_bound(self) -> TwinkernelConfig:
        if self.simulation.n_resamples > self.bootstrap.max_resamples:
            raise ValueError(
                f"simulation.n_resamples ({self.simulation.n_resamples}) must not exceed "
                f"bootstrap.max_resamples ({self.bootstrap.max_resamples})"
            )
        return self


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
        YAML file to read (``None``: ``$TWINKERNEL_CONFIG``, else the packaged digital_twin_config.yaml).

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
