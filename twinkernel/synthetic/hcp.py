"""The HCP world."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from ..config import TwinkernelConfig, get_config
from ..models import ADOPTION_STAGES
from ._world import (
    _REGION_P,
    CHANNELS,
    INTERVENTION_TYPES,
    PRACTICE_TYPES,
    REGIONS,
    SPECIALTIES,
    SyntheticWorld,
    TrueEffect,
    WorldTruth,
    _check_sizes,
    _choice_rows,
    _enum,
    _frozen,
    _history_frame,
    _interventions,
    _optional_enum,
    _replace_realised,
    _sigmoid,
)

# specialty mix by region (rows: REGIONS, columns: SPECIALTIES)
_SPECIALTY_GIVEN_REGION = np.array(
    [
        [0.10, 0.16, 0.10, 0.20, 0.32, 0.12],
        [0.08, 0.14, 0.06, 0.12, 0.50, 0.10],
        [0.09, 0.12, 0.07, 0.14, 0.46, 0.12],
        [0.07, 0.20, 0.05, 0.10, 0.48, 0.10],
        [0.12, 0.22, 0.08, 0.16, 0.32, 0.10],
    ]
)
# practice type by specialty (rows: SPECIALTIES, columns: PRACTICE_TYPES)
_PRACTICE_GIVEN_SPECIALTY = np.array(
    [
        [0.10, 0.15, 0.50, 0.25],
        [0.08, 0.07, 0.50, 0.35],
        [0.35, 0.45, 0.17, 0.03],
        [0.30, 0.45, 0.22, 0.03],
        [0.04, 0.16, 0.45, 0.35],
        [0.12, 0.20, 0.50, 0.18],
    ]
)
_PRACTICE_LOG_SIZE = np.array([5.0, 4.0, 2.5, 0.3])
_SPECIALTY_LOG_VOLUME = np.array([5.6, 5.9, 5.2, 5.7, 6.3, 5.5])
_SPECIALTY_TARGET_SHARE = np.array([0.18, 0.10, 0.04, 0.12, 0.02, 0.05])
_ADOPTION_P = np.array([0.025, 0.135, 0.34, 0.34, 0.16])  # Rogers' diffusion proportions
_TIER_LAST_INTERACTION_DAYS = np.array([12.0, 20.0, 35.0, 60.0, 95.0])
_TIER_CALLS_PER_MONTH = np.array([4.0, 3.0, 2.0, 1.2, 0.6])


# --- HCP world -------------------------------------------------------------------------------------------
_HCP_TRUE_EFFECTS = {
    "email_campaign": TrueEffect(0.035, 0.015, drift_per_month=-0.02),
    "call_frequency_increase": TrueEffect(0.09, 0.03),
    "speaker_program_invitation": TrueEffect(0.10, 0.04, use_priority_tier=True),
    "sample_distribution": TrueEffect(0.03, 0.01),
    "peer_influence_activation": TrueEffect(0.13, 0.04, peer_influence_threshold=0.7),
    "digital_engagement": TrueEffect(0.075, 0.02, drift_per_month=0.02),
}
_HCP_EFFECT_MODIFIERS = {
    "decile": (1.1, 0.02),  # 1.1 - 0.02 (d - 1)
    "engagement": (0.7, 0.6),  # 0.7 + 0.6 e
    "adoption_stage": _frozen(
        {"innovator": 0.7, "early_adopter": 0.85, "early_majority": 1.0, "late_majority": 1.1, "laggard": 1.2}
    ),
    "priority_tier": (1.5, 1.2, 1.0, 0.8, 0.6),
}


def _true_effects(
    factors: Mapping[str, float] | None, config: TwinkernelConfig | None
) -> dict[str, TrueEffect]:
    """The default world's true effects, with the listed types replaced by ``factor * prior``."""
    effects = dict(_HCP_TRUE_EFFECTS)
    if factors is None:
        return effects
    priors = (config if config is not None else get_config()).simulation.intervention_effects.types
    for name, factor in factors.items():
        if name not in effects or name not in priors:
            raise ValueError(
                f"`true_effect_factors` keys must be intervention types {sorted(effects)}; got {name!r}"
            )
        f = float(factor)
        if not math.isfinite(f):
            raise ValueError(f"`true_effect_factors[{name!r}]` must be a finite number; got {factor!r}")
        prior = priors[name]
        effects[name] = TrueEffect(
            base_effect=f * prior.base_effect,
            noise_sd=prior.noise_sd,
            drift_per_month=_HCP_TRUE_EFFECTS[name].drift_per_month,
            peer_influence_threshold=prior.peer_influence_threshold,
            use_priority_tier=prior.use_priority_tier,
        )
    return effects


def hcp_world(
    n_hcps: int = 10_000,
    months: int = 12,
    seed: int = 0,
    with_interventions: bool = False,
    start: str = "2025-01",
    true_effect_factors: Mapping[str, float] | None = None,
    config: TwinkernelConfig | None = None,
) -> SyntheticWorld:
    """A seeded world of HCPs with correlated features, a monthly history and a known outcome function.

    Parameters
    ----------
    n_hcps
        Number of HCPs (``hcp_id`` is ``0 .. n_hcps - 1``).
    months
        Monthly history rows per HCP, starting at ``start``.
    seed
        Seed of the ``numpy.random.Generator`` (PCG64) that draws everything.
    with_interventions
        Add confounded past interventions (high-decile, engaged HCPs are treated more often): history gets
        ``treated`` and ``intervention_type`` and the outcome includes the true effects in ``truth``.
    start
        First month, ``"YYYY-MM"``.
    true_effect_factors
        Per intervention type, the factor between the world's true base effect and the configuration's
        prior: the true base effect is ``factor * prior base_effect`` (a negative factor makes the type
        harmful), with the prior's ``noise_sd``, priority-tier and peer-influence rules, and the default
        world's drift per month. Types not listed keep the default world's true effect. The world's effect
        modifiers (decile, engagement, adoption stage) still differ from the priors', so the true ATE of a
        population is only roughly ``factor`` times the prior model's. Giving factors attaches the true
        effects to ``truth`` (for :func:`~twinkernel.synthetic.run_experiment`) even without
        ``with_interventions``; the frames and every random draw are the same as without factors, except
        the realised past effects when ``with_interventions`` is also set.
    config
        Configuration whose priors the factors multiply; default :func:`twinkernel.config.get_config`.

    Returns
    -------
    SyntheticWorld
        ``entities`` (= ``hcps``) holds ``hcp_id``, ``region``, ``specialty``, ``practice_type``,
        ``practice_size``, ``years_experience``, ``total_patient_volume``, ``target_patient_volume``,
        ``decile``, ``priority_tier``, ``digital_engagement_score``, ``preferred_channel``,
        ``adoption_stage``, ``peer_influence_score``, ``last_interaction_days`` and
        ``interaction_frequency``; ``history`` holds ``brand_share`` per HCP and month.

    Examples
    --------
    >>> w = hcp_world(1000, months=6, seed=7)
    >>> w.hcps.height, w.history.height
    (1000, 6000)
    >>> hi = w.hcps.filter(pl.col("decile") == 10)["total_patient_volume"].median()
    >>> lo = w.hcps.filter(pl.col("decile") == 1)["total_patient_volume"].median()
    >>> bool(hi > 3 * lo)
    True
    """
    _check_sizes(n_hcps, months, "n_hcps")
    rng = np.random.default_rng(seed)
    n = int(n_hcps)

    region = rng.choice(len(REGIONS), size=n, p=_REGION_P)
    specialty = _choice_rows(rng, _SPECIALTY_GIVEN_REGION[region])
    practice = _choice_rows(rng, _PRACTICE_GIVEN_SPECIALTY[specialty])
    academic = (practice == 0).astype(np.float64)
    practice_size = np.maximum(1, np.rint(np.exp(_PRACTICE_LOG_SIZE[practice] + rng.normal(0, 0.5, n))))
    years = np.clip(np.rint(2.0 + rng.gamma(3.0, 5.0, n)), 1, 45)

    log_volume = (
        _SPECIALTY_LOG_VOLUME[specialty]
        + 0.15 * np.log(practice_size)
        + 0.02 * np.minimum(years, 25.0)
        + rng.normal(0.0, 0.45, n)
    )
    total_volume = np.rint(np.exp(log_volume))
    # decile = volume decile of (slightly noisy) prescribing potential; 10 is the highest
    ranks = np.argsort(np.argsort(log_volume + rng.normal(0.0, 0.1, n), kind="stable"), kind="stable")
    decile = 1 + (10 * ranks) // n
    target_volume = rng.binomial(total_volume.astype(np.int64), _SPECIALTY_TARGET_SHARE[specialty])
    tier = np.clip(6 - np.ceil(decile / 2.0) + rng.choice([-1, 0, 1], size=n, p=[0.15, 0.7, 0.15]), 1, 5)

    engagement = _sigmoid(
        0.3 - 0.06 * (years - 17.0) + 0.5 * academic + 0.2 * (region == 4) + rng.normal(0.0, 0.8, n)
    )
    utilities = np.column_stack(
        [
            0.8 - 1.5 * engagement + 0.4 * (tier <= 2),
            0.2 + 1.0 * engagement,
            -1.2 + 3.0 * engagement,
            -0.6 + 0.3 * (practice == 3),
        ]
    )
    channel = np.argmax(utilities + rng.gumbel(size=utilities.shape), axis=1)

    innovativeness = -0.05 * (years - 17.0) + 1.2 * (engagement - 0.5) + 0.4 * academic + rng.normal(0, 1, n)
    cuts = np.quantile(innovativeness, 1.0 - np.cumsum(_ADOPTION_P)[:-1])
    adoption = (innovativeness < cuts[:, None]).sum(axis=0)  # 0 = innovator (most innovative)

    peer = _sigmoid(
        -0.6 + 0.03 * (years - 17.0) + 0.9 * academic + 0.25 * (decile - 5.5) / 2.87 + rng.normal(0, 0.7, n)
    )
    tier_idx = tier.astype(np.int64) - 1
    last_days = 1 + np.floor(rng.exponential(_TIER_LAST_INTERACTION_DAYS[tier_idx]))
    frequency = np.round(_TIER_CALLS_PER_MONTH[tier_idx] * rng.gamma(4.0, 0.25, n), 2)

    hcps = pl.DataFrame(
        [
            pl.Series("hcp_id", np.arange(n, dtype=np.int64)),
            _enum(region, REGIONS, "region"),
            _enum(specialty, SPECIALTIES, "specialty"),
            _enum(practice, PRACTICE_TYPES, "practice_type"),
            pl.Series("practice_size", practice_size.astype(np.int32)),
            pl.Series("years_experience", years.astype(np.int16)),
            pl.Series("total_patient_volume", total_volume.astype(np.int32)),
            pl.Series("target_patient_volume", target_volume.astype(np.int32)),
            pl.Series("decile", decile.astype(np.int16)),
            pl.Series("priority_tier", tier.astype(np.int8)),
            pl.Series("digital_engagement_score", engagement),
            _enum(channel, CHANNELS, "preferred_channel"),
            _enum(adoption, ADOPTION_STAGES, "adoption_stage"),
            pl.Series("peer_influence_score", peer),
            pl.Series("last_interaction_days", last_days.astype(np.int32)),
            pl.Series("interaction_frequency", frequency),
        ]
    )

    hidden_sd = 0.3
    hidden = rng.normal(0.0, hidden_sd, n)
    truth_kwargs: dict[str, Any] = {}
    if with_interventions or true_effect_factors is not None:
        truth_kwargs = {
            "true_effects": _frozen(_true_effects(true_effect_factors, config)),
            "effect_modifiers": _frozen(_HCP_EFFECT_MODIFIERS),
        }
    if with_interventions:
        truth_kwargs["treatment_model"] = _frozen({"intercept": -1.8, "decile": 0.8, "engagement": 0.6})
    truth = WorldTruth(
        kind="hcp",
        seed=seed,
        outcome_col="brand_share",
        link="logistic",
        intercept=-1.6,
        outcome_terms=_frozen(
            {
                "decile": (5.5, 2.87, 0.55),
                "digital_engagement_score": (0.5, 1.0, 0.8),
                "peer_influence_score": (0.5, 1.0, 0.5),
                "interaction_frequency": (2.0, 1.0, 0.05),
            }
        ),
        category_effects=_frozen(
            {
                "specialty": _frozen(
                    {
                        "allergy_immunology": 0.3,
                        "dermatology": 0.25,
                        "hematology": -0.1,
                        "oncology": 0.1,
                        "primary_care": -0.4,
                        "rheumatology": -0.2,
                    }
                ),
                "adoption_stage": _frozen(
                    {
                        "innovator": 0.6,
                        "early_adopter": 0.35,
                        "early_majority": 0.0,
                        "late_majority": -0.25,
                        "laggard": -0.5,
                    }
                ),
            }
        ),
        trend_per_month=0.01,
        seasonality=0.05,
        hidden_effect_sd=hidden_sd,
        noise_sd=0.03,
        hidden_effects=hidden,
        **truth_kwargs,
    )

    # monthly history
    expanded = hcps.select(pl.all().repeat_by(months).explode())  # HCP-major, months inner
    midx = np.tile(np.arange(months, dtype=np.float64), n)
    mu = truth.expected_outcome(expanded, midx)
    calls = rng.poisson(np.repeat(frequency, months))
    emails = rng.poisson(np.repeat(2.0 * engagement, months))
    outcome = mu + rng.normal(0.0, truth.noise_sd, n * months)
    columns: dict[str, Any] = {"calls": calls.astype(np.int16), "emails_opened": emails.astype(np.int16)}
    realised = None
    if with_interventions:
        score = 0.8 * (decile - 5.5) / 2.87 + 0.6 * (engagement - 0.5)
        treated, types = _interventions(rng, score, months, -1.8)
        realised = np.zeros(n * months)
        noise = rng.standard_normal(n * months)
        for k, name in enumerate(INTERVENTION_TYPES):
            rows = np.flatnonzero(treated & (types == k))
            if rows.size:
                sub = expanded[rows]
                realised[rows] = (
                    truth.individual_effect(sub, name, midx[rows])
                    + truth.true_effects[name].noise_sd * noise[rows]
                )
        outcome = outcome + realised
        columns["treated"] = pl.Series("treated", treated)
        columns["intervention_type"] = _optional_enum(treated, types, INTERVENTION_TYPES, "intervention_type")
        truth = _replace_realised(truth, realised)
    columns["brand_share"] = outcome
    history = _history_frame("hcp_id", n, months, start, columns)
    return SyntheticWorld("hcp", hcps, history, truth, "hcp_id", "month", "brand_share")
