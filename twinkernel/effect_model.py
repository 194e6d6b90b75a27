"""The effect model: priors (or calibrated values) turned into the kernel's parameter arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import InterventionEffectsConfig, TwinkernelConfig, get_config
from .kernels import effects as K
from .models import ADOPTION_STAGES, InterventionConfig

__all__ = ["EffectModel", "EffectParameters"]


@dataclass(frozen=True)
class EffectParameters:
    """Everything the effect kernel needs for one intervention."""

    params: np.ndarray  # float64[N_PARAMS]
    adoption_multipliers: np.ndarray  # float64, indexed by adoption code (last = unrecognised)
    tier_multipliers: np.ndarray  # float64[6], indexed by tier 1..5
    known_type: bool
    warnings: tuple[str, ...] = ()

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
        Where the numbers come from: ``"prior"``, or a description of the calibration.
    overrides
        Per intervention type, replacement ``base_effect`` / ``noise_sd`` values (from calibration).

    Examples
    --------
    >>> model = EffectModel.from_config()
    >>> p = model.parameters(InterventionConfig(intervention_type="email_campaign", channel="digital"))
    >>> round(p.value(K.P_CHANNEL), 2), round(p.value(K.P_DURATION), 3)
    (0.8, 1.0)
    """

    effects: InterventionEffectsConfig
    provenance: str = "prior"
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    model_id: str = "prior"

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
        return EffectParameters(p, adoption, tiers, known, tuple(warnings))


def duration_factor(weeks: float, reference_weeks: int) -> float:
    """``ln(1 + w) / ln(1 + reference)``: 1.0 at the reference duration, 0.0 at zero weeks."""
    return math.log1p(weeks) / math.log1p(reference_weeks)
