"""Debug trace: every effect modifier of the first selected twins, logged at DEBUG on ``twinkernel.trace``.

Nothing here runs unless the trace logger is enabled for DEBUG or ``simulate(debug_trace=True)`` asks.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..effect_model import EffectParameters
from ..kernels import effects as K
from ..models import SimulationResult
from ..population import TwinPopulation

__all__ = ["emit_trace", "log_result", "modifier_trace", "trace_logger"]

trace_logger = logging.getLogger("twinkernel.trace")


def modifier_trace(
    population: TwinPopulation, index: np.ndarray, p: EffectParameters, seed: int, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-twin modifiers (``len(index) x N_MODIFIERS``, columns ``K.MODIFIER_NAMES``) and effects.

    The effects equal those of the engine's fused pass for the same seed.
    """
    c = population.kernel_columns
    out = np.empty(index.shape[0], dtype=np.float64)
    trace = np.empty((index.shape[0], K.N_MODIFIERS), dtype=np.float64)
    K.individual_effects_traced(
        c.decile,
        c.engagement,
        c.adoption,
        c.tier,
        c.peer,
        c.propensity,
        c.twin_key,
        index,
        True,
        p.params,
        p.adoption_multipliers,
        p.tier_multipliers,
        np.uint64(seed),
        chunk_size,
        out,
        trace,
    )
    return trace, out


def emit_trace(twin_ids: list[Any], trace: np.ndarray, force: bool) -> None:
    """Log one DEBUG record per twin: ``effect modifiers for twin <id>: decile=..., ...``.

    ``force`` hands the records to the trace logger's handlers even when its level is above DEBUG
    (``debug_trace=True``); the library never changes a logger's level.
    """
    fmt = "effect modifiers for twin %s: " + ", ".join(f"{name}=%.6g" for name in K.MODIFIER_NAMES)
    for row, twin_id in enumerate(twin_ids):
        args = (twin_id, *trace[row].tolist())
        if force:
            record = trace_logger.makeRecord(
                trace_logger.name, logging.DEBUG, __file__, 0, fmt, args, None, func="simulate"
            )
            trace_logger.handle(record)
        else:
            trace_logger.debug(fmt, *args)


def log_result(log: logging.Logger, result: SimulationResult) -> None:
    """The one INFO line per simulation (``log`` is the engine module's logger)."""
    recommendation = result.recommendation.value.upper() if result.recommendation is not None else "NONE"
    log.info(
        "simulated %s on %d twins: ATE %.5f, %.0f%% CI [%.5f, %.5f] (%s) -> %s in %.1f ms",
        result.intervention_config.intervention_type,
        result.twin_count,
        result.simulated_ate,
        result.confidence_level * 100,
        result.simulated_ci_lower,
        result.simulated_ci_upper,
        result.ci_method,
        recommendation,
        result.execution_time_ms,
    )
