"""The engine's one kernel pass over a selection of twins: effects, their moments and the segment sums.

:meth:`SimulationEngine._fused_pass <twinkernel.simulation_engine.engine.SimulationEngine._fused_pass>` is
the one place that calls :func:`twinkernel.kernels.effects.simulate_pass`; this module holds its body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import effects as K
from ..kernels.stats import combine_columns
from ..population import TwinPopulation
from .intervals import FusedPass, effect_shift
from .options import Call

__all__ = ["SelectionInvariants", "fused_pass", "needs_effects", "pass_bytes"]

_EMPTY_INDEX = np.empty(0, dtype=np.int64)
_NO_EFFECTS = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class SelectionInvariants:
    """What a pass over every twin computes that does not depend on the intervention (per slot)."""

    counts: np.ndarray  # (n_slots, len(K.INVARIANT_COUNTERS)) int64
    baseline: np.ndarray  # (n_slots, 2): shifted baseline sum and sum of squares
    group_counts: np.ndarray  # (n_slots, total_groups), or (n_slots, 0) without segments


def needs_effects(call: Call) -> bool:
    """Whether anything after the pass reads the per-twin effects: only the bootstrap intervals do."""
    return call.method != "analytic"


def fused_pass(
    population: TwinPopulation,
    index: np.ndarray | None,
    n: int,
    call: Call,
    chunk: int,
    keep_effects: bool = True,
    invariants: dict[tuple[bool, float, float, int], SelectionInvariants] | None = None,
) -> FusedPass:
    """Run the fused kernel over ``index`` (population rows; ``None``: every row in order, ``n`` of them).

    With ``keep_effects`` False the kernel stores no per-twin effect (80 MB it would write and page in at
    10 M twins) and ``FusedPass.effects`` is a read-only all-NaN view of length ``n`` that owns no memory:
    its shape still gives the twin count, and any use of its values shows NaN rather than a wrong number.

    ``invariants`` (the engine's, per population) keeps, for a pass over every twin, the per-slot tables
    that depend only on the twins (input clamp counters, baseline sums, segment counts): the first such
    pass fills it, later ones skip that work in the kernel and copy the kept tables in, the same bits.
    """
    p = call.params
    c = population.kernel_columns
    offsets = population.segment_offsets
    shift = effect_shift(p)  # sums about a shift near the mean: the variance keeps its precision
    effects = np.empty(n, dtype=np.float64) if keep_effects else _NO_EFFECTS
    reuse = invariants is not None and index is None
    # What the kept tables depend on besides the twins: segments or not, the decile clamp range, the
    # adoption table's length (its last entry counts unrecognised stages).
    key = (call.heterogeneity, p.value(K.P_DECILE_LOW), p.value(K.P_DECILE_HIGH), len(p.adoption_multipliers))
    known = invariants.get(key) if invariants is not None and reuse else None
    counts, sums, groups = K.simulate_pass(
        c.decile,
        c.engagement,
        c.adoption,
        c.tier,
        c.peer,
        c.propensity,
        c.baseline,
        c.twin_key,
        _EMPTY_INDEX if index is None else index,
        index is not None,
        p.params,
        p.adoption_multipliers,
        p.tier_multipliers,
        np.uint64(call.seed),
        chunk,
        c.segment_codes,
        offsets,
        int(offsets[-1]),
        call.heterogeneity,
        shift,
        population.baseline_mean,
        effects,
        known is None,
    )
    if known is not None:
        counts[:, K.INVARIANT_COUNTERS] = known.counts
        sums[:, K.S_BASELINE_SUM : K.S_BASELINE_SQ + 1] = known.baseline
        groups[:, :, 0] = known.group_counts
    elif reuse and invariants is not None:
        invariants[key] = SelectionInvariants(
            counts[:, K.INVARIANT_COUNTERS].copy(),
            sums[:, K.S_BASELINE_SUM : K.S_BASELINE_SQ + 1].copy(),
            groups[:, :, 0].copy(),
        )
    if not keep_effects:
        effects = np.broadcast_to(np.float64(np.nan), (n,))
    return FusedPass(effects, counts.sum(axis=0), combine_columns(sums), groups, shift, sums)


def pass_bytes(fused: FusedPass) -> int:
    """Bytes the pass allocated: per-twin effects (none when it kept none: the NaN view owns nothing) and
    its per-slot tables (clamp counters, sums, segment sums)."""
    n = fused.effects.shape[0]
    slots = (n + K.SUM_BLOCK - 1) // K.SUM_BLOCK
    effects = fused.effects.nbytes if fused.effects.flags.owndata else 0
    return int(effects + fused.groups.nbytes + slots * (K.N_COUNTERS + K.N_SUMS) * 8)
