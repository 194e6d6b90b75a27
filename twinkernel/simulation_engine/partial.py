"""``simulate(timeout_s=...)``: blocks of the selection in a seeded random order, and PARTIAL results.

The design (``docs/performance.md``, "Timeouts and partial results"):

- The selected twins, in selection order, form ``K`` full blocks of ``B`` twins (``B`` is
  ``simulation.timeout.slots_per_block`` kernel reduction slots of ``effects.SUM_BLOCK`` twins) and one
  remainder block of ``n - K·B`` twins. The full blocks are visited in a random permutation drawn from the
  call's seed (stream ``STREAM_BLOCK_ORDER``: counter-based, the same on any machine).
- The first batch (the remainder block and the first ``first_batch_blocks`` blocks of the permutation) is
  always processed; each later batch of ``batch_blocks`` blocks is processed while the clock is before the
  deadline. Every batch is one call of the engine's fused pass on a sub-selection, in the caller's thread:
  nothing keeps running after the call returns, and the batches' arrays are released with it.
- A twin's effect is keyed by its twin id, so it is the same as in a full run; only which blocks get
  processed depends on the time.
- Every block processed: the effects, the per-slot sums and the per-slot segment sums go back into selection
  order and are combined as the one-pass run combines them, so the result equals the run without a timeout
  bit for bit (COMPLETED).
- Time ran out after ``m < K`` full blocks: those are a simple random sample without replacement of the
  ``K`` full blocks (the permutation is uniform and independent of the effects; ``m`` depends only on the
  clock). With ``R`` the remainder block's total and ``ȳ`` the mean of the sampled blocks' mean effects,
  ``ATE = (R + K·B·ȳ) / n`` is unbiased for the full run's ATE over the permutation, for any ``m``. Its
  variance ``(K·B/n)² (1 − m/K) s²/m`` uses the spread ``s²`` of the block means (so correlation inside a
  block, as in data sorted by segment, counts) with the finite population correction ``1 − m/K``; the
  interval uses Student's t with ``m − 1`` degrees of freedom.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from ..config_timeout import TimeoutConfig
from ..kernels import effects as K
from ..kernels._rng import STREAM_BLOCK_ORDER, fill_uniform
from ..kernels.stats import combine_columns, shifted_variance
from ..models import EffectHeterogeneity, SimulationResult, SimulationStatus
from .assemble import result_of
from .boundary import data_quality
from .intervals import FusedPass, Interval
from .options import Call, Selection, as_number

if TYPE_CHECKING:
    from .engine import SimulationEngine

__all__ = ["PARTIAL_CI_METHOD", "BlockRun", "block_order", "check_timeout", "partial_result", "run_blocks"]

PARTIAL_CI_METHOD = "block_sample"
"""``SimulationResult.ci_method`` of a PARTIAL result: the design-based interval over sampled blocks."""

FusedPassFn = Callable[[Selection, Call], FusedPass]


def check_timeout(timeout_s: Any) -> float | None:
    """``timeout_s`` as a positive float of seconds (or ``None``), else a ValueError naming it.

    Examples
    --------
    >>> check_timeout(0)
    Traceback (most recent call last):
    ...
    ValueError: `timeout_s` must be a positive number of seconds or None; got 0
    """
    if timeout_s is None:
        return None
    value = as_number("timeout_s", timeout_s)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"`timeout_s` must be a positive number of seconds or None; got {timeout_s!r}")
    return value


def block_order(seed: int, n_blocks: int) -> np.ndarray:
    """The seeded random permutation of ``n_blocks`` blocks (the order a timed simulation visits them)."""
    keys = np.empty(n_blocks, dtype=np.float64)
    fill_uniform(np.uint64(seed), STREAM_BLOCK_ORDER, 0, keys)
    return np.argsort(keys, kind="stable")


@dataclass(frozen=True)
class BlockRun:
    """What :func:`run_blocks` produced: the exact one-pass totals, or a partial estimate."""

    fused: FusedPass | None  # every block processed: equal to the engine's one-pass FusedPass
    interval: Interval | None = None  # partial: the estimate and its block-sample interval
    rows: np.ndarray | None = None  # partial: the population rows processed
    counts: np.ndarray | None = None  # partial: the clamp counters of the processed twins
    blocks_used: int = 0
    blocks_total: int = 0
    batches: int = 0

    @property
    def complete(self) -> bool:
        return self.fused is not None


def _batches(seed: int, n_full: int, cfg: TimeoutConfig) -> list[np.ndarray]:
    order = block_order(seed, n_full)
    first = cfg.first_batch_blocks
    return [order[:first]] + [order[i : i + cfg.batch_blocks] for i in range(first, n_full, cfg.batch_blocks)]


def _positions(blocks: np.ndarray, size: int, stop: int, start: int) -> np.ndarray:
    """The positions ``blocks × size + 0..size-1``, then ``start .. stop - 1`` (the remainder block)."""
    pos = (blocks[:, None] * size + np.arange(size)[None, :]).ravel()
    return np.concatenate([pos, np.arange(start, stop)]) if stop > start else pos


def run_blocks(
    fused_pass: FusedPassFn,
    sel: Selection,
    call: Call,
    cfg: TimeoutConfig,
    timeout_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> BlockRun:
    """Process the selection in batches of seeded random blocks until done or ``clock()`` passes the deadline.

    ``fused_pass`` is the engine's ``_fused_pass`` (the one place that calls the kernel); ``clock`` is read
    once at the start (deadline = start + ``timeout_s``) and once before every batch after the first.
    """
    n = sel.n
    spb = cfg.slots_per_block
    size = spb * K.SUM_BLOCK
    n_full, rem = divmod(n, size)
    n_slots = -(-n // K.SUM_BLOCK)
    deadline = clock() + timeout_s
    batches = _batches(call.seed, n_full, cfg)
    pieces: list[np.ndarray] = []  # each batch's effects; one array of n is built only if all blocks ran
    slot_sums: np.ndarray | None = None
    groups: np.ndarray | None = None
    counts: np.ndarray | None = None
    totals = np.zeros(K.N_SUMS, dtype=np.float64)
    totals[K.S_EFFECT_MIN], totals[K.S_EFFECT_MAX] = np.inf, -np.inf
    means: list[np.ndarray] = []
    remainder_total = 0.0
    exact = True
    done = 0
    effect_shift = 0.0
    processed = 0
    for b, blocks in enumerate(batches):
        if b > 0 and clock() >= deadline:
            break
        pos = _positions(blocks, size, n if b == 0 else n_full * size, n_full * size)
        slots = _positions(blocks, spb, n_slots if b == 0 else n_full * spb, n_full * spb)
        sub_rows = pos if sel.index is None else sel.index[pos]
        fp = fused_pass(Selection(sub_rows, int(pos.shape[0]), sel.population_size, sel.targeted), call)
        del pos, sub_rows
        pieces.append(fp.effects)
        # Per-slot rows of this batch, one per reduction slot, can be put back in selection order.
        rows_ok = fp.slot_sums is not None and fp.slot_sums.shape[0] == fp.groups.shape[0] == len(slots)
        exact = exact and rows_ok
        if exact and fp.slot_sums is not None:
            if slot_sums is None or groups is None:
                slot_sums = np.empty((n_slots, fp.slot_sums.shape[1]), dtype=np.float64)
                groups = np.zeros((n_slots, *fp.groups.shape[1:]), dtype=np.float64)
            slot_sums[slots] = fp.slot_sums
            groups[slots] = fp.groups
        counts = fp.counts.copy() if counts is None else counts + fp.counts
        totals[: K.S_EFFECT_MIN] += fp.totals[: K.S_EFFECT_MIN]
        totals[K.S_EFFECT_MIN] = min(totals[K.S_EFFECT_MIN], fp.totals[K.S_EFFECT_MIN])
        totals[K.S_EFFECT_MAX] = max(totals[K.S_EFFECT_MAX], fp.totals[K.S_EFFECT_MAX])
        n_blocks = int(blocks.shape[0])
        means.append(fp.effects[: n_blocks * size].reshape(n_blocks, size).mean(axis=1))
        if b == 0 and rem:
            remainder_total = float(fp.effects[n_blocks * size :].sum())
        done += n_blocks
        processed += 1
        effect_shift = fp.effect_shift
    assert counts is not None  # the first batch always runs
    if done == n_full:
        if not exact or slot_sums is None or groups is None:
            # The pass no longer returns per-slot sums: only a one-pass run reproduces its rounding.
            return BlockRun(fused_pass(sel, call), blocks_used=done, blocks_total=n_full, batches=processed)
        effects = np.empty(n, dtype=np.float64)
        for b in range(processed):
            effects[_positions(batches[b], size, n if b == 0 else n_full * size, n_full * size)] = pieces[b]
            pieces[b] = effects[:0]  # release the batch's array as soon as it is copied
        fused = FusedPass(effects, counts, combine_columns(slot_sums), groups, effect_shift, slot_sums)
        return BlockRun(fused, blocks_used=done, blocks_total=n_full, batches=processed)
    del pieces, slot_sums, groups
    used = _positions(np.concatenate(batches[:processed]), size, n, n_full * size)
    used = used if sel.index is None else sel.index[used]
    level = call.confidence_level
    ci = _estimate(np.concatenate(means), remainder_total, n, n_full, size, totals, used.shape[0], level)
    return BlockRun(None, ci, used, counts, blocks_used=done, blocks_total=n_full, batches=processed)


def _estimate(
    means: np.ndarray,
    remainder_total: float,
    n: int,
    n_full: int,
    size: int,
    totals: np.ndarray,
    n_used: int,
    confidence_level: float,
) -> Interval:
    """The unbiased block-sample ATE, its standard error (finite population correction) and interval."""
    m = int(means.shape[0])
    weight = n_full * size / n
    ate = remainder_total / n + weight * float(means.mean())
    se = weight * math.sqrt((1.0 - m / n_full) * float(means.var(ddof=1)) / m)
    crit = float(sps.t.ppf(0.5 + confidence_level / 2.0, m - 1))
    constant = totals[K.S_EFFECT_MIN] == totals[K.S_EFFECT_MAX]
    var = 0.0 if constant else shifted_variance(totals[K.S_EFFECT_SUM], totals[K.S_EFFECT_SQ], n_used)
    baseline_var = shifted_variance(totals[K.S_BASELINE_SUM], totals[K.S_BASELINE_SQ], n_used)
    return Interval(ate, var, baseline_var, se, ate - crit * se, ate + crit * se)


def partial_result(
    engine: SimulationEngine,
    run: BlockRun,
    common: dict[str, Any],
    call: Call,
    sel: Selection,
    warnings: list[str],
    timings: dict[str, float],
    t_start: float,
) -> SimulationResult:
    """The PARTIAL result of a run that ran out of time (see the module docstring for the estimate).

    The recommendation is decided on the partial ATE with its sampling variance added to the effect
    uncertainty (σ_δ² + SE²), so it and the prediction interval are wider than a full run's; segment effects
    are left out (each segment would see only some blocks), with a warning.
    """
    ci, rows, counts = run.interval, run.rows, run.counts
    assert ci is not None and rows is not None and counts is not None
    n_used = int(rows.shape[0])
    used = Selection(rows, n_used, sel.population_size, sel.targeted)
    dq = data_quality(engine.population, counts, rows)
    share = n_used / sel.n
    warnings.append(
        f"timeout: PARTIAL result from {n_used} of {sel.n} twins ({share:.1%}; {run.blocks_used} of "
        f"{run.blocks_total} random blocks); the ATE is a block-sample estimate for all {sel.n} twins and "
        "its interval accounts for the blocks not simulated"
    )
    warnings.append(
        "timeout: the recommendation uses the partial ATE with its sampling error added to the effect "
        f"uncertainty (SE {ci.se:.5f}); data_quality counts only the twins simulated"
    )
    if call.heterogeneity:
        warnings.append("timeout: a PARTIAL result leaves out segment effects (each saw only some blocks)")
    if call.method != "analytic":
        warnings.append(
            f"timeout: ci_method {call.method!r} was not used; a PARTIAL result's interval is the "
            f"block-sample interval ({PARTIAL_CI_METHOD!r})"
        )
    inflated = replace(call, params=replace(call.params, tau=math.hypot(call.params.tau, ci.se)))
    decision = engine._decide(ci, used, inflated, dq, warnings)
    decision["between_experiment_sd"] = call.params.tau
    return result_of(
        {**common, "ci_method": PARTIAL_CI_METHOD, "n_resamples": None}, decision, sel.n, ci,
        EffectHeterogeneity(), call, SimulationStatus.PARTIAL, warnings, timings, t_start, dq,
        rows.nbytes + n_used * 8, twins_used=n_used,
    )  # fmt: skip
