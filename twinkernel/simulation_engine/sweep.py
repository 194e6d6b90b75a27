"""Scenario sweeps: many intervention configs over one population, one row each, in one pass over the data.

:func:`sweep` (``SimulationEngine.sweep``) validates the configs, groups them by the twins they select (the
population filter is shared; ``target_*`` fields differ) and by the effect model's shared coefficients, and
runs :func:`twinkernel.kernels.sweep.sweep_pass` once per group: each twin's columns are read and its
modifiers computed once for all the group's configs (with several groups, the passes share one array of
the rows' noise, so each row's is drawn once). Each config's slots are then turned
into a :class:`~twinkernel.SimulationResult` by the function that builds ``simulate``'s results
(:func:`.assemble.completed_result`), so a row equals what ``simulate(config, population_filter, seed=seed)``
returns: the same ATE, interval, recommendation, probabilities, sample size and segment effects, bit for
bit (tests/unit/test_sweep.py). Only the run statistics differ: ``timings_ms``, ``execution_time_ms`` and
``memory_usage_mb`` describe the sweep.

What the sweep does not do, on purpose:

- Bootstrap intervals (``ci_method`` other than ``"analytic"``) need every config's per-twin effects; the
  sweep then calls ``simulate`` once per config (exactly equal rows, cached and recorded as ``simulate``'s
  are; no speed-up: the bootstrap dominates).
- Its rows are not written to the result cache or the repository (they carry sweep timings, and a sweep is
  an exploration, not a simulation of record); ``simulate`` the configs you pick to record them.
- No debug trace (``modifier_table`` gives any config's per-twin modifiers).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..kernels import effects as K
from ..kernels.stats import combine_columns
from ..kernels.sweep import SHARED_PARAMS, sweep_pass
from ..models import (
    InterventionConfig,
    PopulationFilter,
    SimulationResult,
)
from .assemble import completed_result
from .boundary import population_warnings
from .intervals import SEGMENT_FIELDS, FusedPass, effect_shift
from .options import Call, resolve_call

if TYPE_CHECKING:
    from .engine import SimulationEngine, _Selection

__all__ = ["check_configs", "results_frame", "sweep", "sweep_results"]

logger = logging.getLogger("twinkernel")


def check_configs(configs: Any, max_configs: int) -> list[InterventionConfig]:
    """``configs`` as a list of distinct :class:`InterventionConfig`, or an error naming the problem.

    Examples
    --------
    >>> check_configs([], 10)
    Traceback (most recent call last):
    ...
    ValueError: `configs` must hold at least one InterventionConfig; got an empty sequence
    """
    if isinstance(configs, InterventionConfig | str) or not isinstance(configs, Sequence):
        raise TypeError(
            f"`configs` must be a list or tuple of InterventionConfig; got {type(configs).__name__}"
        )
    if len(configs) == 0:
        raise ValueError("`configs` must hold at least one InterventionConfig; got an empty sequence")
    if len(configs) > max_configs:
        raise ValueError(
            f"`configs` may hold at most {max_configs} configs (simulation.sweep.max_configs); "
            f"got {len(configs)}"
        )
    seen: dict[InterventionConfig, int] = {}
    for i, ic in enumerate(configs):
        if not isinstance(ic, InterventionConfig):
            raise TypeError(f"`configs[{i}]` must be an InterventionConfig; got {type(ic).__name__}")
        if ic in seen:
            raise ValueError(
                f"`configs[{i}]` duplicates `configs[{seen[ic]}]` ({ic.canonical_json()}): "
                "each config must appear once"
            )
        seen[ic] = i
    return list(configs)


_NO_NOISE = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class _Slots:
    """One config's share of a sweep pass: what ``simulate``'s fused pass returns for it."""

    counts: np.ndarray  # (N_COUNTERS,) totals
    totals: np.ndarray  # combined sums (combine_columns)
    groups: np.ndarray  # (n_blocks, total_groups, 3)
    effect_shift: float
    nbytes: int


def _shared_key(call: Call) -> bytes:
    """Configs with equal keys can share one kernel pass (same effect-model coefficients and tables)."""
    p = call.params
    return (
        p.params[list(SHARED_PARAMS)].tobytes()
        + p.adoption_multipliers.tobytes()
        + b"|"
        + p.tier_multipliers.tobytes()
    )


def _run_pass(
    engine: SimulationEngine,
    sel: _Selection,
    calls: list[Call],
    heterogeneity: bool,
    noise: np.ndarray = _NO_NOISE,
) -> list[_Slots]:
    """Run the sweep kernel over ``sel`` for ``calls`` (batched to the partial-sum budget); ``noise``: the
    rows' noise shared between passes (NaN where not drawn yet, filled in by the kernel), or empty."""
    population = engine.population
    sim = engine.config.simulation
    c = population.kernel_columns
    offsets = population.segment_offsets
    n_blocks = (sel.n + K.SUM_BLOCK - 1) // K.SUM_BLOCK
    g_total = int(offsets[-1]) if heterogeneity else 0
    per_config = n_blocks * 8 * (K.N_COUNTERS + K.N_SUMS + 3 * g_total)
    batch = max(1, int(sim.sweep.max_partial_sums_mb * 1e6 // max(per_config, 1)))
    use_index = sel.index is not None
    index = sel.index if sel.index is not None else np.empty(0, dtype=np.int64)
    p0 = calls[0].params
    out: list[_Slots] = []
    for b0 in range(0, len(calls), batch):
        part = calls[b0 : b0 + batch]
        params = np.ascontiguousarray(np.stack([call.params.params for call in part]))
        shifts = np.array([effect_shift(call.params) for call in part], dtype=np.float64)
        counts, sums, groups = sweep_pass(
            c.decile,
            c.engagement,
            c.adoption,
            c.tier,
            c.peer,
            c.propensity,
            c.baseline,
            c.twin_key,
            index,
            use_index,
            sel.n,
            params,
            p0.adoption_multipliers,
            p0.tier_multipliers,
            np.uint64(calls[0].seed),
            sim.kernel_chunk_size,
            c.segment_codes,
            offsets,
            int(offsets[-1]),
            heterogeneity,
            shifts,
            population.baseline_mean,
            noise,
        )
        for k in range(len(part)):
            out.append(
                _Slots(
                    counts=counts[k].sum(axis=0),
                    totals=combine_columns(sums[k]),
                    groups=groups[k],
                    effect_shift=float(shifts[k]),
                    nbytes=per_config,
                )
            )
    return out


def _request_digest(engine: SimulationEngine, call: Call) -> str:
    """The digest ``simulate`` gives the same call (its cache key)."""
    return engine._request(call).digest()


def _result(
    engine: SimulationEngine, call: Call, sel: _Selection, slots: _Slots, timings: dict[str, float], t0: float
) -> SimulationResult:
    """One config's result from its slots, through the code that builds ``simulate``'s results."""
    warnings = [*population_warnings(engine.population), *call.params.warnings]
    common = engine._common_fields(_request_digest(engine, call), call, sel)
    # The sweep keeps no per-twin effects; the analytic interval reads only their count.
    placeholder = np.broadcast_to(np.float64(np.nan), (sel.n,))
    fused = FusedPass(placeholder, slots.counts, slots.totals, slots.groups, slots.effect_shift)
    return completed_result(engine, call, sel, fused, common, warnings, dict(timings), t0, slots.nbytes)


def sweep_results(
    engine: SimulationEngine,
    configs: Sequence[InterventionConfig],
    population_filter: PopulationFilter | None = None,
    seed: int | None = None,
    confidence_level: float | None = None,
    calculate_heterogeneity: bool = True,
    ci_method: str | None = None,
    n_resamples: int | None = None,
) -> list[SimulationResult]:
    """One :class:`~twinkernel.SimulationResult` per config, in the order given; see :func:`sweep`."""
    t0 = time.perf_counter()
    ics = check_configs(configs, engine.config.simulation.sweep.max_configs)
    seed_given = seed is not None
    run_seed = seed if seed is not None else secrets.randbits(63)
    calls = [
        resolve_call(
            engine.config,
            engine.effect_model,
            ic,
            population_filter,
            confidence_level,
            calculate_heterogeneity,
            run_seed,
            ci_method,
            n_resamples,
        )
        for ic in ics
    ]
    calls = [replace(call, seed_given=seed_given) for call in calls]
    if calls[0].method != "analytic":
        return [
            engine.simulate(
                call.ic,
                call.pf,
                call.confidence_level,
                call.heterogeneity,
                seed=call.seed,
                ci_method=call.method,
                n_resamples=call.n_resamples,
            )
            for call in calls
        ]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, call in enumerate(calls):
        target = (call.ic.target_deciles, call.ic.target_specialties, call.ic.target_regions)
        groups.setdefault((target, _shared_key(call)), []).append(k)
    results: list[SimulationResult | None] = [None] * len(calls)
    n_passes = 0
    # Several passes share the rows' noise: each pass draws what is still NaN and stores it for the next.
    noise = np.full(engine.population.n, np.nan) if len(groups) > 1 else _NO_NOISE
    for members in groups.values():
        t = time.perf_counter()
        first = calls[members[0]]
        sel = engine._select(first.ic, first.pf)
        timings = {"select_ms": (time.perf_counter() - t) * 1e3}
        if sel.n < engine.config.simulation.min_twins:
            for k in members:
                call = calls[k]
                common = engine._common_fields(_request_digest(engine, call), call, sel)
                warnings = [*population_warnings(engine.population), *call.params.warnings]
                results[k] = engine._failed(common, call, sel, warnings, dict(timings), t)
            continue
        t = time.perf_counter()
        slots = _run_pass(engine, sel, [calls[k] for k in members], first.heterogeneity, noise)
        timings["kernel_ms"] = (time.perf_counter() - t) * 1e3
        n_passes += 1
        for k, slot in zip(members, slots, strict=True):
            results[k] = _result(engine, calls[k], sel, slot, timings, t0)
    out = [r for r in results if r is not None]
    logger.info(
        "swept %d configs over %d twins in %d kernel pass(es), seed %d, in %.1f ms",
        len(out),
        engine.population.n,
        n_passes,
        run_seed,
        (time.perf_counter() - t0) * 1e3,
    )
    return out


def _segment_columns(engine: SimulationEngine, results: Sequence[SimulationResult]) -> list[tuple[str, str]]:
    """``(dimension, label)`` of every segment some row reports, in the population's label order."""
    present = {(dim, label) for r in results for dim, label, _ in r.effect_heterogeneity.segments()}
    labels = engine.population.kernel_columns.segment_labels
    ordered: list[tuple[str, str]] = []
    for field, dim_labels in zip(SEGMENT_FIELDS, labels, strict=True):
        dim = field.removeprefix("by_")
        ordered.extend((dim, str(label)) for label in dim_labels if (dim, str(label)) in present)
    return ordered


def results_frame(engine: SimulationEngine, results: Sequence[SimulationResult]) -> pl.DataFrame:
    """The sweep's rows: the config, the decision fields, then ``ate_<dimension>_<segment>`` columns."""
    segment_cols = _segment_columns(engine, results)
    rows: list[dict[str, Any]] = []
    for k, r in enumerate(results):
        ic = r.intervention_config
        row: dict[str, Any] = {
            "config_index": k,
            "intervention_type": ic.intervention_type,
            "channel": ic.channel,
            "intensity_multiplier": ic.intensity_multiplier,
            "duration_weeks": ic.duration_weeks,
            "target_deciles": list(ic.target_deciles),
            "target_specialties": list(ic.target_specialties),
            "target_regions": list(ic.target_regions),
            "config": ic.canonical_json(),
            "status": r.status.value,
            "twin_count": r.twin_count,
            "ate": r.simulated_ate,
            "ci_lower": r.simulated_ci_lower,
            "ci_upper": r.simulated_ci_upper,
            "std_error": r.simulated_std_error,
            "recommendation": r.recommendation.value if r.recommendation is not None else None,
            "prob_harmful": r.prob_harmful,
            "prob_above_refine": r.prob_above_refine,
            "prob_above_deploy": r.prob_above_deploy,
            "recommended_sample_size": r.recommended_sample_size,
            "statistical_power": r.statistical_power,
            "assurance": r.assurance,
            "simulation_confidence": r.simulation_confidence,
            "seed": r.seed,
            "request_digest": r.request_digest,
            "warnings": list(r.warnings),
        }
        tables = {f"by_{dim}": getattr(r.effect_heterogeneity, f"by_{dim}") for dim, _ in segment_cols}
        for dim, label in segment_cols:
            seg = tables[f"by_{dim}"].get(label)
            row[f"ate_{dim}_{label}"] = seg.ate if seg is not None else None
        rows.append(row)
    schema: dict[str, Any] = {
        "config_index": pl.Int64,
        "intervention_type": pl.String,
        "channel": pl.String,
        "intensity_multiplier": pl.Float64,
        "duration_weeks": pl.Int64,
        "target_deciles": pl.List(pl.Int64),
        "target_specialties": pl.List(pl.String),
        "target_regions": pl.List(pl.String),
        "config": pl.String,
        "status": pl.String,
        "twin_count": pl.Int64,
        "ate": pl.Float64,
        "ci_lower": pl.Float64,
        "ci_upper": pl.Float64,
        "std_error": pl.Float64,
        "recommendation": pl.String,
        "prob_harmful": pl.Float64,
        "prob_above_refine": pl.Float64,
        "prob_above_deploy": pl.Float64,
        "recommended_sample_size": pl.Int64,
        "statistical_power": pl.Float64,
        "assurance": pl.Float64,
        "simulation_confidence": pl.Float64,
        "seed": pl.UInt64,
        "request_digest": pl.String,
        "warnings": pl.List(pl.String),
        **{f"ate_{dim}_{label}": pl.Float64 for dim, label in segment_cols},
    }
    return pl.DataFrame(rows, schema=schema)


def sweep(
    engine: SimulationEngine,
    configs: Sequence[InterventionConfig],
    population_filter: PopulationFilter | None = None,
    seed: int | None = None,
    confidence_level: float | None = None,
    calculate_heterogeneity: bool = True,
    ci_method: str | None = None,
    n_resamples: int | None = None,
) -> pl.DataFrame:
    """Evaluate every config of ``configs`` on the (filtered) population: one Polars row per config.

    Each row equals ``engine.simulate(config, population_filter, seed=seed, ...)`` (ATE, interval,
    recommendation, probabilities, sample size, segment ATEs); configs that select the same twins and
    share the effect model's coefficients are computed in one kernel pass. ``seed=None`` draws one seed for
    the whole sweep (every row records it). See the module docstring for what differs from ``simulate``.

    Raises
    ------
    TypeError, ValueError
        ``configs`` is not a non-empty sequence of distinct :class:`InterventionConfig`, holds more than
        ``simulation.sweep.max_configs``, or another argument fails ``simulate``'s validation.
    """
    return results_frame(
        engine,
        sweep_results(
            engine,
            configs,
            population_filter,
            seed,
            confidence_level,
            calculate_heterogeneity,
            ci_method,
            n_resamples,
        ),
    )
