"""From one config's fused-pass totals to its COMPLETED :class:`~twinkernel.SimulationResult`.

The one place that turns a pass into a result, for ``simulate`` (:meth:`SimulationEngine._run
<twinkernel.simulation_engine.engine.SimulationEngine._run>`) and for every ``sweep`` row
(:mod:`.sweep`): so a sweep row equals ``simulate``'s by construction, not by a second copy of the code.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..models import EffectHeterogeneity, FrozenMapping, SimulationResult, SimulationStatus
from .boundary import data_quality
from .intervals import FusedPass, Interval, heterogeneity, interval
from .options import Call, Selection

if TYPE_CHECKING:
    from .engine import SimulationEngine

__all__ = ["completed_result", "result_of"]


def completed_result(
    engine: SimulationEngine,
    call: Call,
    sel: Selection,
    fused: FusedPass,
    common: dict[str, Any],
    warnings: list[str],
    timings: dict[str, float],
    t_start: float,
    nbytes: int,
) -> SimulationResult:
    """Interval, segments (with their deploy probabilities), data quality and the decision, as a result.

    ``warnings`` gets the interval's and the decision's warnings appended; ``timings`` gets
    ``interval_ms``, ``heterogeneity_ms`` (with segments) and ``total_ms`` (since ``t_start``);
    ``nbytes`` is reported as ``memory_usage_mb``.
    """
    population, config = engine.population, engine.config
    t = time.perf_counter()
    ci = interval(population, config, fused, sel.index, call)
    warnings.extend(ci.warnings)
    timings["interval_ms"] = (time.perf_counter() - t) * 1e3
    het = EffectHeterogeneity()
    if call.heterogeneity:
        t = time.perf_counter()
        threshold = engine.min_effect_threshold
        het = heterogeneity(population, config, fused, call.confidence_level, ci.boot, call.params, threshold)
        timings["heterogeneity_ms"] = (time.perf_counter() - t) * 1e3
    dq = data_quality(population, fused.counts, sel.index)
    decision = engine._decide(ci, sel, call, dq, warnings)
    return result_of(common, decision, sel.n, ci, het, call, SimulationStatus.COMPLETED, warnings, timings,
                     t_start, dq, nbytes)  # fmt: skip


def result_of(
    common: dict[str, Any],
    decision: dict[str, Any],
    twin_count: int,
    ci: Interval,
    het: EffectHeterogeneity,
    call: Call,
    status: SimulationStatus,
    warnings: list[str],
    timings: dict[str, float],
    t_start: float,
    dq: dict[str, dict[str, Any]],
    nbytes: int,
    **extra: Any,
) -> SimulationResult:
    """The :class:`SimulationResult` of a COMPLETED or PARTIAL run (``extra``: fields only one has);
    ``timings["total_ms"]`` is set to the time since ``t_start``, ``nbytes`` reported as
    ``memory_usage_mb``."""
    elapsed = (time.perf_counter() - t_start) * 1e3
    timings["total_ms"] = elapsed
    return SimulationResult(
        **common,
        **decision,
        twin_count=twin_count,
        simulated_ate=ci.ate,
        simulated_ci_lower=ci.ci_lower,
        simulated_ci_upper=ci.ci_upper,
        simulated_std_error=ci.se,
        effect_heterogeneity=het,
        recommended_duration_weeks=call.ic.duration_weeks,
        status=status,
        execution_time_ms=elapsed,
        timings_ms=FrozenMapping(timings),
        completed_at=datetime.now(UTC),
        warnings=tuple(warnings),
        data_quality=FrozenMapping({k: FrozenMapping(v) for k, v in dq.items()}),
        memory_usage_mb=nbytes / 2**20,
        **extra,
    )
