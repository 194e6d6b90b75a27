"""From the fused pass's totals to the ATE, its interval (analytic or bootstrap) and the segment effects."""

from __future__ import annotations

import itertools
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

__all__ = ["SEGMENT_FIELDS", "FusedPass", "Interval", "heterogeneity", "interval"]

SEGMENT_FIELDS = ("by_specialty", "by_decile", "by_region", "by_adoption_stage")


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
) -> EffectHeterogeneity:
    """Segment ATE, sd, n and interval per dimension; segments below ``min_segment_size`` left out."""
    c = population.kernel_columns
    sim = config.simulation
    gn_all, gmean_all, gvar_all = combine_grouped(fused.groups, fused.effect_shift)
    out: dict[str, dict[str, SegmentEffect]] = {}
    for k, (name, labels, (a, b)) in enumerate(
        zip(SEGMENT_FIELDS, c.segment_labels, itertools.pairwise(population.segment_offsets), strict=True)
    ):
        gn, gmean, gsd = gn_all[a:b], gmean_all[a:b], np.sqrt(gvar_all[a:b])
        keep = gn >= sim.min_segment_size
        if boot is not None:
            lows, highs = boot.group_ci_lower[k], boot.group_ci_upper[k]
        else:
            half = np.zeros(gn.shape)
            crit = D.critical_values(gn[keep], confidence_level, sim.t_distribution_below_n)
            half[keep] = crit * gsd[keep] / np.sqrt(gn[keep])
            lows, highs = gmean - half, gmean + half
        out[name] = {
            labels[g]: SegmentEffect(
                ate=float(gmean[g]),
                std=float(gsd[g]),
                n=int(gn[g]),
                ci_lower=float(lows[g]),
                ci_upper=float(highs[g]),
            )
            for g in np.flatnonzero(keep)
        }
    return EffectHeterogeneity.model_validate(out)


def segment_probabilities(
    het: EffectHeterogeneity, p: EffectParameters, deploy_threshold: float
) -> EffectHeterogeneity:
    """Each segment's P(true effect ≥ deploy threshold), so a user sees which segments merit a test."""
    segments = het.segments()
    if not segments:
        return het
    ates = np.array([seg.ate for _, _, seg in segments], dtype=np.float64)
    nominal = p.value(K.P_INTENSITY) * p.value(K.P_DURATION) * p.value(K.P_CHANNEL)
    probs = D.prob_at_least_many(ates, p.value(K.P_BASE), nominal, p.base_sd, p.tau, deploy_threshold, p.df)
    tables: dict[str, dict[str, Any]] = {f"by_{dim}": {} for dim, _, _ in segments}
    for (dim, label, seg), prob in zip(segments, probs.tolist(), strict=True):
        tables[f"by_{dim}"][label] = seg.model_copy(update={"prob_above_deploy": prob})
    return EffectHeterogeneity(**{k: FrozenMapping(v) for k, v in tables.items()})
