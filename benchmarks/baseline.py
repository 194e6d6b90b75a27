"""The original's approach, kept as the speed baseline: a pydantic object and a Python call per twin.

The original system held a list of per-twin pydantic records and simulated an intervention by calling a
Python function on every twin, drawing the noise with ``random.gauss``, then computing the mean, a normal
confidence interval and per-segment effects in Python dictionaries. :func:`simulate_per_twin` does the
same with the SPEC §3 effect (decile, engagement, adoption, intensity, duration, channel, priority tier,
propensity, peer gate, cap, noise), so its expected ATE equals the kernel's; only the noise draws differ
(a seeded ``random.Random`` instead of the counter-based stream), so the two ATEs agree within
Monte-Carlo error. The numbers come from the configuration, as the engine's do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import polars as pl

from twinkernel.config import TwinkernelConfig, get_config
from twinkernel.models import DigitalTwin, InterventionConfig

__all__ = ["BaselineResult", "EffectPrior", "simulate_per_twin", "twin_effect", "twins_from_population"]

_SEGMENTS = ("specialty", "decile", "region", "adoption_stage")


@dataclass(frozen=True)
class EffectPrior:
    """The per-intervention numbers the per-twin function reads (resolved once per simulation)."""

    base: float
    noise_sd: float
    intensity: float
    duration: float
    channel: float
    use_tier: bool
    peer_threshold: float | None
    cap: float
    decile: tuple[float, float, int, int]  # intercept, slope, low, high
    engagement: tuple[float, float]
    propensity: tuple[float, float]
    adoption: dict[str, float]
    unknown_adoption: float
    tiers: dict[int, float]

    @classmethod
    def resolve(cls, ic: InterventionConfig, config: TwinkernelConfig | None = None) -> EffectPrior:
        eff = (config or get_config()).simulation.intervention_effects
        t = eff.types.get(ic.intervention_type)
        base = eff.unknown_type.base_effect if t is None else t.base_effect
        noise_sd = eff.unknown_type.noise_sd if t is None else t.noise_sd
        if t is not None and t.per_additional_call is not None:
            base += t.per_additional_call * int(ic.extra_params.get("additional_calls", 0))
        channel = 1.0
        if t is not None and ic.channel is not None:
            channel = t.channel_multipliers.get(ic.channel.lower(), 1.0)
        return cls(
            base=base,
            noise_sd=noise_sd,
            intensity=ic.intensity_multiplier,
            duration=math.log1p(ic.duration_weeks) / math.log1p(eff.duration_reference_weeks),
            channel=channel,
            use_tier=t is not None and t.use_priority_tier,
            peer_threshold=None if t is None else t.peer_influence_threshold,
            cap=eff.effect_cap,
            decile=(eff.decile.intercept, eff.decile.slope, eff.decile.low, eff.decile.high),
            engagement=(eff.engagement.intercept, eff.engagement.slope),
            propensity=(eff.propensity.intercept, eff.propensity.slope),
            adoption=dict(eff.adoption_stage),
            unknown_adoption=eff.unknown_adoption_multiplier,
            tiers=dict(eff.priority_tier),
        )


def twin_effect(twin: DigitalTwin, prior: EffectPrior, rng: random.Random) -> float:
    """One twin's individual effect, the way the original computed it: a Python call per twin."""
    f = twin.features
    intercept, slope, low, high = prior.decile
    d = min(max(int(f.get("decile", 5)), low), high)
    m = intercept - slope * (d - low)
    e = min(max(float(f.get("digital_engagement_score", 0.5)), 0.0), 1.0)
    m *= prior.engagement[0] + prior.engagement[1] * e
    m *= prior.adoption.get(str(f.get("adoption_stage", "")).strip().lower(), prior.unknown_adoption)
    m *= prior.intensity * prior.duration * prior.channel
    if prior.use_tier:
        m *= prior.tiers.get(min(max(int(f.get("priority_tier", 3)), 1), 5), 1.0)
    p = min(max(twin.baseline_propensity, 0.0), 1.0)
    m *= prior.propensity[0] + prior.propensity[1] * p
    if prior.peer_threshold is not None:
        q = min(max(float(f.get("peer_influence_score", 0.0)), 0.0), 1.0)
        if q < prior.peer_threshold:
            return 0.0
    effect = prior.base * m + rng.gauss(0.0, prior.noise_sd)
    return min(max(effect, -prior.cap), prior.cap)


@dataclass
class BaselineResult:
    ate: float
    ci_lower: float
    ci_upper: float
    std_error: float
    twin_count: int
    segments: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def simulate_per_twin(
    twins: Sequence[DigitalTwin],
    ic: InterventionConfig,
    seed: int = 0,
    confidence_level: float = 0.95,
    calculate_heterogeneity: bool = True,
    min_segment_size: int = 10,
) -> BaselineResult:
    """Simulate ``ic`` on ``twins`` with a Python loop: the original's algorithm (the speed baseline)."""
    prior = EffectPrior.resolve(ic)
    rng = random.Random(seed)
    effects = [twin_effect(t, prior, rng) for t in twins]
    n = len(effects)
    ate = sum(effects) / n
    var = sum((x - ate) ** 2 for x in effects) / (n - 1)
    se = math.sqrt(var / n)
    z = NormalDist().inv_cdf(0.5 + confidence_level / 2.0)
    segments: dict[str, dict[str, dict[str, float]]] = {}
    if calculate_heterogeneity:
        for dim in _SEGMENTS:
            groups: dict[str, list[float]] = {}
            for twin, x in zip(twins, effects, strict=True):
                groups.setdefault(str(twin.features.get(dim)), []).append(x)
            out: dict[str, dict[str, float]] = {}
            for key, xs in groups.items():
                if len(xs) < min_segment_size:
                    continue
                g_mean = sum(xs) / len(xs)
                g_sd = math.sqrt(sum((x - g_mean) ** 2 for x in xs) / (len(xs) - 1))
                half = z * g_sd / math.sqrt(len(xs))
                out[key] = {
                    "ate": g_mean,
                    "std": g_sd,
                    "n": len(xs),
                    "ci_lower": g_mean - half,
                    "ci_upper": g_mean + half,
                }
            segments[dim] = out
    return BaselineResult(ate, ate - z * se, ate + z * se, se, n, segments)


def twins_from_population(frame: pl.DataFrame) -> list[DigitalTwin]:
    """One :class:`DigitalTwin` per row (features dict), as the original held its twins."""
    rows: list[dict[str, Any]] = frame.with_columns(pl.selectors.enum().cast(pl.String)).to_dicts()
    twins = []
    for row in rows:
        twin_id = row.pop("twin_id")
        outcome = row.pop("baseline_outcome")
        propensity = row.pop("baseline_propensity")
        twins.append(
            DigitalTwin(
                twin_id=twin_id,
                brand="Kisqali",
                features=row,
                baseline_outcome=outcome,
                baseline_propensity=propensity,
            )
        )
    return twins
