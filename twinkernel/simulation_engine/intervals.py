"""From the fused pass's totals to the ATE, its interval (analytic or bootstrap) and the segment effects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import TwinkernelConfig
from ..effect_model import EffectParameters
from ..kernels import effects as K
from ..kernels.stats import combine_grouped, shifted_variance
from ..models import EffectHeterogeneity, FrozenMapping, SegmentEffect
from ..population import TwinPopulation
from . import decisions as D
from .options import Call

__all__ = [
    "SEGMENT_FIELDS",
    "FusedPass",
    "Interval",
    "effect_shift",
    "heterogeneity",
    "interval",
    "nominal_modifier",
]

SEGMENT_FIELDS = ("by_specialty", "by_decile", "by_region", "by_adoption_stage")


def nominal_modifier(p: EffectParameters) -> float:
    """The intervention's own modifiers, intensity x duration x channel (the prediction's G when b_t = 0)."""
    return p.value(K.P_INTENSITY) * p.value(K.P_DURATION) * p.value(K.P_CHANNEL)


def effect_shift(p: EffectParameters) -> float:
    """The shift the kernels take their sums about: the nominal effect, capped (keeps variances precise).

    Left to right, base x intensity x duration x channel: the same bits in ``simulate`` and ``sweep``.
    """
    cap = p.value(K.P_CAP)
    nominal = p.value(K.P_BASE) * p.value(K.P_INTENSITY) * p.value(K.P_DURATION) * p.value(K.P_CHANNEL)
    return min(cap, max(-cap, nominal))


@dataclass(frozen=True)
class FusedPass:
    """What the engine's fused kernel pass produced, reduced to totals."""

    effects: np.ndarray
    counts: np.ndarray
    totals: np.ndarray
    groups: np.ndarray
    effect_shift: float
    slot_sums: np.ndarray | None = None
    """The per-slot rows ``totals`` combines (``simulate(timeout_s=...)`` reassembles them in order)."""


@dataclass(frozen=True)
class Interval:
    """The ATE, the variances behind the decisions, and the population interval."""

    ate: float
    var: float
    baseline_var: float
    se: float
    ci_lower: float
    ci_upper: float
    boot: Any = None
    warnings: tuple[str, ...] = field(default=())


def interval(
    population: TwinPopulation,
    config: TwinkernelConfig,
    fused: FusedPass,
    index: np.ndarray | None,
    call: Call,
) -> Interval:
    """ATE, variances, and the interval: analytic (z, or t for few twins) or from the bootstrap kernels."""
    totals = fused.totals
    n = fused.effects.shape[0]
    if totals[K.S_EFFECT_MIN] == totals[K.S_EFFECT_MAX]:
        ate, var = float(totals[K.S_EFFECT_MIN]), 0.0  # constant effects: exactly zero spread
    else:
        ate = fused.effect_shift + totals[K.S_EFFECT_SUM] / n
        var = shifted_variance(totals[K.S_EFFECT_SUM], totals[K.S_EFFECT_SQ], n)
    baseline_var = shifted_variance(totals[K.S_BASELINE_SUM], totals[K.S_BASELINE_SQ], n)
    se = math.sqrt(var) / math.sqrt(n)
    if call.method == "analytic":
        crit = D.critical_value(n, call.confidence_level, config.simulation.t_distribution_below_n)
        return Interval(ate, var, baseline_var, se, ate - crit * se, ate + crit * se)
    boot = _bootstrap(population, config, fused.effects, index, call)
    return Interval(
        ate, var, baseline_var, boot.standard_error, boot.ci_lower, boot.ci_upper, boot, tuple(boot.warnings)
    )


def _bootstrap(
    population: TwinPopulation,
    config: TwinkernelConfig,
    effects: np.ndarray,
    index: np.ndarray | None,
    call: Call,
) -> Any:
    from ..bootstrap import engine_intervals

    c = population.kernel_columns
    if call.heterogeneity:
        codes = [a if index is None else a[index] for a in c.segment_codes]
        n_groups = [len(labels) for labels in c.segment_labels]
    else:
        codes, n_groups = [], []
    return engine_intervals(
        effects,
        codes,
        n_groups,
        method=call.method,
        n_resamples=int(call.n_resamples or 0),
        confidence_level=call.confidence_level,
        seed=call.seed,
        blb_min_n=config.simulation.blb_min_n,
        dimension_names=[f.removeprefix("by_") for f in SEGMENT_FIELDS],
        dimension_labels=c.segment_labels if call.heterogeneity else None,
        report_empty=False,
    )


def heterogeneity(
    population: TwinPopulation,
    config: TwinkernelConfig,
    fused: FusedPass,
    confidence_level: float,
    boot: Any,
    p: EffectParameters | None = None,
    deploy_threshold: float = 0.0,
) -> EffectHeterogeneity:
    """Segment ATE, sd, n and interval per dimension; segments below ``min_segment_size`` left out.

    With ``p`` (the call's effect parameters) each segment also gets its P(true effect ≥
    ``deploy_threshold``) from the prediction model, so a user sees which segments merit a test: one
    vectorised call over every segment (:func:`.decisions.prob_at_least_many`), each segment built once.
    """
    c = population.kernel_columns
    sim = config.simulation
    gn, gmean, gvar = combine_grouped(fused.groups, fused.effect_shift)
    gsd = np.sqrt(gvar)
    keep = gn >= sim.min_segment_size
    if boot is not None:  # one array per dimension, its groups in label order
        lows = np.concatenate([np.asarray(v, dtype=np.float64) for v in boot.group_ci_lower])
        highs = np.concatenate([np.asarray(v, dtype=np.float64) for v in boot.group_ci_upper])
        assert lows.shape == highs.shape == gn.shape, (lows.shape, gn.shape)
    else:  # every dimension's groups in one vectorised call (element-wise: the same values)
        half = np.zeros(gn.shape)
        crit = D.critical_values(gn[keep], confidence_level, sim.t_distribution_below_n)
        half[keep] = crit * gsd[keep] / np.sqrt(gn[keep])
        lows, highs = gmean - half, gmean + half
    flat = np.flatnonzero(keep)
    probs: list[float | None] = [None] * flat.shape[0]
    if p is not None and flat.shape[0]:
        probs = D.prob_at_least_many(
            gmean[flat], p.value(K.P_BASE), nominal_modifier(p), p.base_sd, p.tau, deploy_threshold, p.df
        ).tolist()
    # Python floats once (``tolist``), not a NumPy scalar per field: the same values, built faster.
    kept_at = flat.tolist()
    ate, sd, n, lo, hi = (v[flat].tolist() for v in (gmean, gsd, gn, lows, highs))
    out: dict[str, FrozenMapping[str, SegmentEffect]] = {}
    at = 0
    bounds = population.segment_offsets.tolist()
    for name, labels, start, stop in zip(
        SEGMENT_FIELDS, c.segment_labels, bounds[:-1], bounds[1:], strict=True
    ):
        table: dict[str, SegmentEffect] = {}
        while at < len(kept_at) and kept_at[at] < stop:
            table[labels[kept_at[at] - start]] = SegmentEffect(
                ate=ate[at],
                std=sd[at],
                n=int(n[at]),
                ci_lower=lo[at],
                ci_upper=hi[at],
                prob_above_deploy=probs[at],
            )
            at += 1
        out[name] = FrozenMapping(table)
    return EffectHeterogeneity(**out)
