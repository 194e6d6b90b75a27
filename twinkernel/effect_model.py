"""The effect model: priors (or calibrated values) turned into the kernel's parameter arrays.

Besides the kernel parameters, every :class:`EffectParameters` carries what we do not know about the base
effect (SPEC "Uncertainty that means something"): its SD ``base_sd`` (s_t), the between-experiment SD
``tau`` (τ_t) and the Student-t degrees of freedom ``df`` (``None`` for the normal). With priors,
s_t = ``prior_relative_sd`` · b_t and τ_t = 0; after :meth:`EffectModel.calibrate`, the posterior values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import TypeCalibration, calibrate_experiments, calibration_report, provenance_text
from .config import InterventionEffectsConfig, TwinkernelConfig, get_config
from .kernels import effects as K
from .models import ADOPTION_STAGES, InterventionConfig
from .models.experiment import ExperimentResult

if TYPE_CHECKING:
    import polars as pl

    from .population import TwinPopulation

__all__ = ["EffectModel", "EffectParameters"]

_FORMAT = "twinkernel.effect_model/1"


@dataclass(frozen=True)
class EffectParameters:
    """Everything the effect kernel needs for one intervention."""

    params: np.ndarray  # float64[N_PARAMS]
    adoption_multipliers: np.ndarray  # float64, indexed by adoption code (last = unrecognised)
    tier_multipliers: np.ndarray  # float64[6], indexed by tier 1..5
    known_type: bool
    warnings: tuple[str, ...] = ()
    base_sd: float = 0.0
    """s_t: SD of the base effect actually used (``params[P_BASE]``)."""
    tau: float = 0.0
    """τ_t: between-experiment SD of real effects around the model (0 with priors)."""
    df: float | None = None
    """Student-t degrees of freedom for predictions (J − 1 when calibrated from J experiments)."""

    def value(self, index: int) -> float:
        return float(self.params[index])


@dataclass(frozen=True)
class EffectModel:
    """Effect priors from the configuration, optionally replaced per type by calibrated values.

    Parameters
    ----------
    effects
        The ``simulation.intervention_effects`` configuration section.
    provenance
        Where the numbers come from: ``"prior"``, or each type's source (see :meth:`calibrate`).
    overrides
        Per intervention type, replacement ``base_effect`` / ``noise_sd`` values.
    model_id
        Identity of the effect model (part of every cache key); changes with every calibration.
    calibrations
        Per intervention type, the :class:`~twinkernel.calibration.TypeCalibration` from real experiments:
        the kernel's base effect becomes k̂ · b(prior) with SD |b(prior)| · k_sd, and τ and J − 1 degrees of
        freedom enter the prediction interval.

    Examples
    --------
    >>> model = EffectModel.from_config()
    >>> p = model.parameters(InterventionConfig(intervention_type="email_campaign", channel="digital"))
    >>> round(p.value(K.P_CHANNEL), 2), round(p.value(K.P_DURATION), 3)
    (0.8, 1.0)
    """

    effects: InterventionEffectsConfig
    provenance: str = "prior"
    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    model_id: str = "prior"
    calibrations: Mapping[str, TypeCalibration] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "overrides", MappingProxyType({k: dict(v) for k, v in self.overrides.items()})
        )
        object.__setattr__(self, "calibrations", MappingProxyType(dict(self.calibrations)))

    def __hash__(self) -> int:
        return hash((self.model_id, self.provenance))

    @classmethod
    def from_config(cls, config: TwinkernelConfig | None = None) -> EffectModel:
        cfg = config or get_config()
        return cls(effects=cfg.simulation.intervention_effects)

    def parameters(self, intervention: InterventionConfig) -> EffectParameters:
        """Kernel parameters for ``intervention``.

        Raises
        ------
        ValueError
            If ``extra_params["additional_calls"]`` is not an integer within the configured bound.
        """
        eff = self.effects
        warnings: list[str] = []
        itype = intervention.intervention_type
        type_cfg = eff.types.get(itype)
        known = type_cfg is not None
        if type_cfg is None:
            base, noise = eff.unknown_type.base_effect, eff.unknown_type.noise_sd
            warnings.append(
                f"unknown intervention_type {itype!r}: used the default effect "
                f"(base {base}, noise sd {noise}); known types: {', '.join(sorted(eff.types))}"
            )
        else:
            base, noise = type_cfg.base_effect, type_cfg.noise_sd
        override = self.overrides.get(itype, {})
        base = override.get("base_effect", base)
        noise = override.get("noise_sd", noise)

        if type_cfg is not None and type_cfg.per_additional_call is not None:
            calls = intervention.extra_params.get("additional_calls", 0)
            limit = type_cfg.max_additional_calls if type_cfg.max_additional_calls is not None else 0
            if isinstance(calls, bool) or not isinstance(calls, int) or not 0 <= calls <= limit:
                raise ValueError(
                    f"`extra_params['additional_calls']` must be an integer from 0 to {limit}; got {calls!r}"
                )
            base = base + type_cfg.per_additional_call * calls

        base_sd = eff.prior_relative_sd * abs(base)
        tau, df = 0.0, None
        cal = self.calibrations.get(itype)
        if cal is not None:
            base, base_sd, tau, df = (
                cal.base_effect(base),
                cal.base_effect_sd(base),
                cal.tau,
                cal.prediction_df,
            )

        channel = 1.0
        if type_cfg is not None and intervention.channel is not None:
            channel = type_cfg.channel_multipliers.get(intervention.channel.lower(), 1.0)

        peer_threshold = -1.0
        if type_cfg is not None and type_cfg.peer_influence_threshold is not None:
            peer_threshold = type_cfg.peer_influence_threshold

        p = np.zeros(K.N_PARAMS, dtype=np.float64)
        p[K.P_BASE] = base
        p[K.P_NOISE_SD] = noise
        p[K.P_INTENSITY] = intervention.intensity_multiplier
        p[K.P_DURATION] = duration_factor(intervention.duration_weeks, eff.duration_reference_weeks)
        p[K.P_CHANNEL] = channel
        p[K.P_PEER_THRESHOLD] = peer_threshold
        p[K.P_USE_TIER] = 1.0 if (type_cfg is not None and type_cfg.use_priority_tier) else 0.0
        p[K.P_CAP] = eff.effect_cap
        p[K.P_DECILE_INTERCEPT] = eff.decile.intercept
        p[K.P_DECILE_SLOPE] = eff.decile.slope
        p[K.P_DECILE_LOW] = eff.decile.low
        p[K.P_DECILE_HIGH] = eff.decile.high
        p[K.P_ENGAGEMENT_INTERCEPT] = eff.engagement.intercept
        p[K.P_ENGAGEMENT_SLOPE] = eff.engagement.slope
        p[K.P_PROPENSITY_INTERCEPT] = eff.propensity.intercept
        p[K.P_PROPENSITY_SLOPE] = eff.propensity.slope

        adoption = np.array(
            [eff.adoption_stage.get(s, eff.unknown_adoption_multiplier) for s in ADOPTION_STAGES]
            + [eff.unknown_adoption_multiplier],
            dtype=np.float64,
        )
        tiers = np.ones(6, dtype=np.float64)
        for t, m in eff.priority_tier.items():
            tiers[t] = m
        return EffectParameters(p, adoption, tiers, known, tuple(warnings), base_sd, tau, df)

    # --- calibration ---------------------------------------------------------------------------------------
    def prior(self) -> EffectModel:
        """This model without calibrations (the priors its calibrations are relative to)."""
        return EffectModel(effects=self.effects, overrides=self.overrides)

    def calibrate(
        self,
        population: TwinPopulation,
        experiments: Iterable[ExperimentResult],
        prior: Mapping[str, tuple[float, float]] | None = None,
        *,
        as_of: date | None = None,
        seed: int = 0,
        config: TwinkernelConfig | None = None,
    ) -> EffectModel:
        """A new model calibrated per intervention type from real experiments (SPEC "Calibration").

        For each experiment j, μ_j is the prior model's simulated ATE on ``population`` for the
        experiment's config and filter (seeded, no cache, not recorded); τ_t by REML, then k_t's posterior
        (:mod:`twinkernel.calibration`). Types without experiments keep their prior, and the provenance says
        so.

        Parameters
        ----------
        population
            The model's twins.
        experiments
            :class:`~twinkernel.models.experiment.ExperimentResult` values (ids unique).
        prior
            Per type ``(m0, r)``: k_t's prior N(m0, r²) (default N(1, ``prior_relative_sd``²)); a learned
            effect b_L with SE s_L gives ``(b_L / b(prior), s_L / b(prior))``.
        as_of
            Date ages are measured from (default: the latest completion date, so results reproduce).
        seed
            Seed of the simulations that give μ_j.
        """
        from .simulation_engine import SimulationEngine

        cfg = config if config is not None else get_config()
        base = self.prior()
        engine = SimulationEngine(population, cache=False, repository=False, effect_model=base, config=cfg)

        def simulated_ate(e: ExperimentResult) -> float:
            r = engine.simulate(e.intervention, e.population_filter, seed=seed, calculate_heterogeneity=False)
            if r.status.value != "completed":
                raise ValueError(
                    f"experiment {e.experiment_id!r}: the model cannot simulate it ({r.error_message})"
                )
            return r.simulated_ate

        cals = calibrate_experiments(experiments, simulated_ate, as_of=as_of, priors=prior, config=cfg)
        return base.with_calibrations(cals)

    def with_calibrations(self, calibrations: Mapping[str, TypeCalibration]) -> EffectModel:
        """This model's priors with ``calibrations`` (an empty mapping gives the prior model back)."""
        cals = dict(sorted(calibrations.items()))
        if not cals:
            return self.prior()
        text = json.dumps({t: c.to_dict() for t, c in cals.items()}, sort_keys=True)
        model_id = "cal-" + hashlib.sha256(text.encode()).hexdigest()[:16]
        provenance = provenance_text(cals, self.effects.types)
        return replace(self, calibrations=cals, model_id=model_id, provenance=provenance)

    def calibration_report(self) -> pl.DataFrame:
        """Per calibrated type: J, k̂, its SD, τ̂ and each experiment's standardised residual."""
        return calibration_report(self.calibrations)

    # --- persistence ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the overrides and calibrations (the priors stay in the configuration)."""
        return {
            "format": _FORMAT,
            "overrides": {t: dict(v) for t, v in self.overrides.items()},
            "calibrations": {t: c.to_dict() for t, c in self.calibrations.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: TwinkernelConfig | None = None) -> EffectModel:
        """Read :meth:`to_dict` back over the priors of ``config``."""
        if data.get("format") != _FORMAT:
            raise ValueError(
                f"not a saved effect model: `format` must be {_FORMAT!r}; got {data.get('format')!r}"
            )
        base = cls(
            effects=(config or get_config()).simulation.intervention_effects, overrides=data["overrides"]
        )
        cals = {t: TypeCalibration.from_dict(c) for t, c in data["calibrations"].items()}
        return base.with_calibrations(cals)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``."""
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, path: str | Path, config: TwinkernelConfig | None = None) -> EffectModel:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()), config)


def duration_factor(weeks: float, reference_weeks: int) -> float:
    """``ln(1 + w) / ln(1 + reference)``: 1.0 at the reference duration, 0.0 at zero weeks."""
    return math.log1p(weeks) / math.log1p(reference_weeks)
