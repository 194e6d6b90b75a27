"""The effect model: priors (or calibrated values) turned into the kernel's parameter arrays.

Besides the kernel parameters, every :class:`EffectParameters` carries what we do not know about the base
effect (SPEC "Uncertainty that means something"): its SD ``base_sd`` (s_t), the between-experiment SD
``tau`` (τ_t) and the Student-t degrees of freedom ``df`` (``None`` for the normal). With priors,
s_t = ``prior_relative_sd`` · b_t and τ_t = 0; learned from history (:meth:`EffectModel.learn_from_history`),
the learned base effect, its standard error and the learned modifiers; after :meth:`EffectModel.calibrate`,
the posterior values (a learned effect is then the calibration's prior).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
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

    from .effect_learning import LearnedEffect
    from .population import TwinPopulation

__all__ = ["EffectModel", "EffectParameters"]

_FORMAT = "twinkernel.effect_model/1"  # "learned" is an optional key: older files read unchanged


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
    learned
        Per intervention type, the :class:`~twinkernel.effect_learning.LearnedEffect` from history: its base
        effect and SE replace the prior's (unless calibrated, when they are the calibration's prior) and its
        modifier slopes and multipliers replace the configuration's for that type.
    learned_base
        ``False`` evaluates learned types at the prior base effect with the learned modifiers (what
        calibration simulates μ_j with, so k multiplies the prior base effect as in the SPEC).

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
    learned: Mapping[str, LearnedEffect] = field(default_factory=dict)
    learned_base: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "overrides", MappingProxyType({k: dict(v) for k, v in self.overrides.items()})
        )
        object.__setattr__(self, "calibrations", MappingProxyType(dict(self.calibrations)))
        object.__setattr__(self, "learned", MappingProxyType(dict(self.learned)))

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

        increment = 0.0
        if type_cfg is not None and type_cfg.per_additional_call is not None:
            calls = intervention.extra_params.get("additional_calls", 0)
            limit = type_cfg.max_additional_calls if type_cfg.max_additional_calls is not None else 0
            if isinstance(calls, bool) or not isinstance(calls, int) or not 0 <= calls <= limit:
                raise ValueError(
                    f"`extra_params['additional_calls']` must be an integer from 0 to {limit}; got {calls!r}"
                )
            increment = type_cfg.per_additional_call * calls
            base = base + increment

        base_sd = eff.prior_relative_sd * abs(base)
        slopes = (eff.decile.slope, eff.engagement.slope, eff.propensity.slope)
        adoption_m = {s: eff.adoption_stage.get(s, eff.unknown_adoption_multiplier) for s in ADOPTION_STAGES}
        tier_m = dict(eff.priority_tier)
        prior_base = base  # calibrations scale the prior base effect (k is relative to it)
        learned = self.learned.get(itype)
        if learned is not None:
            if self.learned_base:  # the learned effect is at 0 additional calls: keep the per-call increment
                base, base_sd = learned.base_effect + increment, learned.base_effect_sd
            slopes = (
                learned.value("decile_slope", slopes[0]),
                learned.value("engagement_slope", slopes[1]),
                learned.value("propensity_slope", slopes[2]),
            )
            adoption_m = {s: learned.value(f"adoption:{s}", m) for s, m in adoption_m.items()}
            tier_m = {t: learned.value(f"tier:{t}", m) for t, m in tier_m.items()}
        tau, df = 0.0, None
        cal = self.calibrations.get(itype)
        if cal is not None:
            base, base_sd, tau, df = (
                cal.base_effect(prior_base),
                cal.base_effect_sd(prior_base),
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
        p[K.P_DECILE_SLOPE] = slopes[0]
        p[K.P_DECILE_LOW] = eff.decile.low
        p[K.P_DECILE_HIGH] = eff.decile.high
        p[K.P_ENGAGEMENT_INTERCEPT] = eff.engagement.intercept
        p[K.P_ENGAGEMENT_SLOPE] = slopes[1]
        p[K.P_PROPENSITY_INTERCEPT] = eff.propensity.intercept
        p[K.P_PROPENSITY_SLOPE] = slopes[2]

        adoption = np.array(
            [adoption_m[s] for s in ADOPTION_STAGES] + [eff.unknown_adoption_multiplier], dtype=np.float64
        )
        tiers = np.ones(6, dtype=np.float64)
        for t, m in tier_m.items():
            tiers[t] = m
        return EffectParameters(p, adoption, tiers, known, tuple(warnings), base_sd, tau, df)

    # --- calibration and learning -----------------------------------------------------------------------
    def prior(self) -> EffectModel:
        """This model without calibrations (the priors, or learned effects, its calibrations refine)."""
        return EffectModel(effects=self.effects, overrides=self.overrides).with_learned(self.learned)

    def calibrate(
        self,
        population: TwinPopulation,
        experiments: Iterable[ExperimentResult],
        prior: Mapping[str, tuple[float, float]] | EffectModel | None = None,
        *,
        as_of: date | None = None,
        seed: int = 0,
        config: TwinkernelConfig | None = None,
    ) -> EffectModel:
        """A new model calibrated per intervention type from real experiments (SPEC "Calibration").

        For each experiment j, μ_j is the prior model's simulated ATE on ``population`` for the
        experiment's config and filter (seeded, no cache, not recorded); τ_t by REML, then k_t's posterior
        (:mod:`twinkernel.calibration`). Types without experiments keep their prior (or learned effect), and
        the provenance says so.

        Parameters
        ----------
        population
            The model's twins.
        experiments
            :class:`~twinkernel.models.experiment.ExperimentResult` values (ids unique).
        prior
            Per type ``(m0, r)``: k_t's prior N(m0, r²) (default N(1, ``prior_relative_sd``²)); or a model
            learned from history (:meth:`learn_from_history`): each learned type's effect b_L with SE s_L
            gives ``(b_L / b(prior), s_L / b(prior))`` and its learned modifiers are kept. Without ``prior``,
            this model's own learned effects are used that way.
        as_of
            Date ages are measured from (default: the latest completion date, so results reproduce).
        seed
            Seed of the simulations that give μ_j.
        """
        from .simulation_engine import SimulationEngine

        cfg = config if config is not None else get_config()
        source = prior if isinstance(prior, EffectModel) else self
        learned_model = self.prior().with_learned(source.learned)
        priors = dict(prior) if isinstance(prior, Mapping) else {}
        for t, le in learned_model.learned.items():
            b0 = self.effects.types[t].base_effect
            b0 = self.overrides.get(t, {}).get("base_effect", b0)
            if b0 == 0.0:
                raise ValueError(
                    f"cannot calibrate {t!r} relative to a prior base effect of 0 (k multiplies it); "
                    "set a non-zero `base_effect` for it in the configuration"
                )
            priors[t] = (le.base_effect / b0, le.base_effect_sd / abs(b0))
        # mu_j with the learned modifiers at the prior base effect: k multiplies b(prior), as in the SPEC
        base = replace(learned_model, learned_base=False)
        engine = SimulationEngine(population, cache=False, repository=False, effect_model=base, config=cfg)

        def simulated_ate(e: ExperimentResult) -> float:
            r = engine.simulate(e.intervention, e.population_filter, seed=seed, calculate_heterogeneity=False)
            if r.status.value != "completed":
                raise ValueError(
                    f"experiment {e.experiment_id!r}: the model cannot simulate it ({r.error_message})"
                )
            return r.simulated_ate

        cals = calibrate_experiments(
            experiments, simulated_ate, as_of=as_of, priors=priors or None, config=cfg
        )
        return learned_model.with_calibrations(cals)

    def with_calibrations(self, calibrations: Mapping[str, TypeCalibration]) -> EffectModel:
        """This model's priors (and learned effects) with ``calibrations`` (an empty mapping gives
        :meth:`prior` back)."""
        return self._identified(dict(self.learned), dict(sorted(calibrations.items())))

    def with_learned(self, learned: Mapping[str, LearnedEffect]) -> EffectModel:
        """This model with ``learned`` effects (replacing the learned ones, and dropping the calibrations of
        those types: they were relative to the previous prior)."""
        merged = {**self.learned, **learned}
        cals = {t: c for t, c in self.calibrations.items() if t not in learned}
        return self._identified(merged, cals)

    def _identified(self, learned: dict[str, LearnedEffect], cals: dict[str, TypeCalibration]) -> EffectModel:
        learned = dict(sorted(learned.items()))
        if not learned and not cals:
            return replace(self, calibrations={}, learned={}, model_id="prior", provenance="prior")
        if not learned:
            text = json.dumps({t: c.to_dict() for t, c in cals.items()}, sort_keys=True)
            model_id = "cal-" + hashlib.sha256(text.encode()).hexdigest()[:16]
            provenance = provenance_text(cals, self.effects.types)
        else:
            from .effect_learning.summary import combined_provenance

            payload = {"cal": {t: c.to_dict() for t, c in cals.items()},
                       "learned": {t: le.to_dict() for t, le in learned.items()}}  # fmt: skip
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
                :16
            ]
            model_id = ("cal-" if cals else "learned-") + digest
            provenance = combined_provenance(learned, cals, self.effects.types)
        return replace(self, calibrations=cals, learned=learned, model_id=model_id, provenance=provenance,
                       learned_base=True)  # fmt: skip

    def learn_from_history(
        self,
        frame: Any,
        *,
        intervention_type: str,
        treatment_col: str,
        outcome_col: str,
        feature_cols: Sequence[str] | None = None,
        time_col: str | None = None,
        cutoff: Any = None,
        entity_col: str | None = None,
        seed: int | None = None,
        type_col: str | None = "intervention_type",
        config: TwinkernelConfig | None = None,
    ) -> EffectModel:
        """A new model whose ``intervention_type`` effect is learned from unit-level history (DML).

        Cross-fitted nuisance models for the outcome and the treatment given the features
        (``effect_learning.nuisance``; folds grouped by ``entity_col``), then the effect model's own
        parameters (base effect, modifier slopes, adoption/tier multipliers) with robust (clustered by
        entity) standard errors; the base effect's SE becomes s_t in the prediction interval. Polars or
        pandas; a 0/1 (or boolean) treatment, or a continuous one (effect per unit). Rows treated with
        another type (``type_col``) and rows at or after ``cutoff`` (by ``time_col``) are left out.
        See ``docs/effects.md``.

        Raises
        ------
        twinkernel.effect_learning.EffectLearningError
            (a ``ValueError``) when the data cannot identify the effect; ``cause`` names why: too few rows,
            no treatment variation, no overlap, a post-treatment feature or a target leak.
        """
        from .effect_learning import learn_effect

        cfg = config if config is not None else get_config()
        if cfg.simulation.intervention_effects != self.effects:
            cfg = cfg.model_copy(
                update={
                    "simulation": cfg.simulation.model_copy(update={"intervention_effects": self.effects})
                }
            )
        learned = learn_effect(
            frame,
            intervention_type=intervention_type,
            treatment_col=treatment_col,
            outcome_col=outcome_col,
            feature_cols=feature_cols,
            time_col=time_col,
            cutoff=cutoff,
            entity_col=entity_col,
            seed=seed,
            type_col=type_col,
            config=cfg,
        )
        return self.with_learned({intervention_type: learned})

    def calibration_report(self) -> pl.DataFrame:
        """Per calibrated type: J, k̂, its SD, τ̂ and each experiment's standardised residual."""
        return calibration_report(self.calibrations)

    def summary(self) -> pl.DataFrame:
        """One row per intervention type and parameter: ``intervention_type``, ``parameter``, ``estimate``,
        ``std_error`` and ``source`` (``prior``, ``learned (DML)``, ``calibrated``, ...).

        Examples
        --------
        >>> s = EffectModel.from_config().summary()
        >>> s.columns
        ['intervention_type', 'parameter', 'estimate', 'std_error', 'source']
        >>> s.filter(parameter="base_effect", intervention_type="email_campaign")["source"].to_list()
        ['prior']
        """
        from .effect_learning.summary import summary_frame

        return summary_frame(self)

    # --- persistence ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: overrides, learned effects and calibrations (the priors stay in the configuration)."""
        return {
            "format": _FORMAT,
            "overrides": {t: dict(v) for t, v in self.overrides.items()},
            "calibrations": {t: c.to_dict() for t, c in self.calibrations.items()},
            "learned": {t: le.to_dict() for t, le in self.learned.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: TwinkernelConfig | None = None) -> EffectModel:
        """Read :meth:`to_dict` back over the priors of ``config``."""
        if data.get("format") != _FORMAT:
            raise ValueError(
                f"not a saved effect model: `format` must be {_FORMAT!r}; got {data.get('format')!r}"
            )
        from .effect_learning import LearnedEffect

        base = cls(
            effects=(config or get_config()).simulation.intervention_effects, overrides=data["overrides"]
        )
        learned = {t: LearnedEffect.from_dict(d) for t, d in data.get("learned", {}).items()}
        cals = {t: TypeCalibration.from_dict(c) for t, c in data["calibrations"].items()}
        return base._identified(learned, cals)

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
