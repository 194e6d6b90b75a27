"""Plain-Python reference of the scenario-sweep kernel (:func:`twinkernel.kernels.sweep.sweep_pass`).

One config at a time: every twin's effect from :func:`tests.naive.individual_effects` (the SPEC §3 formula
written out), then per block of ``SUM_BLOCK`` selected twins, in twin order, the counters, the shifted
sums, the min / max and the per-segment count, sum and sum of squares. Nothing is shared between configs,
which is the point: the kernel shares the noise and the columns, the reference does not.
"""

from __future__ import annotations

import math

import numpy as np

from tests import naive
from twinkernel.kernels import effects as K


def _clamped(x: float, lo: float, hi: float) -> bool:
    return x < lo or x > hi


def config_slots(
    columns,
    index,
    params: np.ndarray,
    adoption_mult: np.ndarray,
    tier_mult: np.ndarray,
    seed: int,
    codes,
    offsets: np.ndarray,
    with_groups: bool,
    effect_shift: float,
    baseline_shift: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts, sums, groups)`` per block for one config, shaped like ``simulate_pass``'s outputs."""
    rows = list(range(columns.decile.shape[0])) if index is None else [int(i) for i in index]
    effects = naive.individual_effects(columns, index, params, adoption_mult, tier_mult, seed)
    n = len(rows)
    n_blocks = (n + K.SUM_BLOCK - 1) // K.SUM_BLOCK
    g_total = int(offsets[-1]) if with_groups else 0
    counts = np.zeros((n_blocks, K.N_COUNTERS), dtype=np.int64)
    sums = np.zeros((n_blocks, K.N_SUMS))
    groups = np.zeros((n_blocks, g_total, 3))
    p = params
    for c in range(n_blocks):
        lo, hi = math.inf, -math.inf
        for j in range(c * K.SUM_BLOCK, min(n, (c + 1) * K.SUM_BLOCK)):
            i = rows[j]
            e = float(effects[j])
            d = e - effect_shift
            sums[c, K.S_EFFECT_SUM] += d
            sums[c, K.S_EFFECT_SQ] += d * d
            b = float(columns.baseline[i]) - baseline_shift
            sums[c, K.S_BASELINE_SUM] += b
            sums[c, K.S_BASELINE_SQ] += b * b
            lo, hi = min(lo, e), max(hi, e)
            counts[c, K.C_DECILE_CLAMPED] += _clamped(
                float(columns.decile[i]), p[K.P_DECILE_LOW], p[K.P_DECILE_HIGH]
            )
            counts[c, K.C_ENGAGEMENT_CLAMPED] += _clamped(float(columns.engagement[i]), 0.0, 1.0)
            counts[c, K.C_ADOPTION_UNRECOGNISED] += int(columns.adoption[i]) >= len(adoption_mult) - 1
            if p[K.P_USE_TIER] > 0.5:
                counts[c, K.C_TIER_CLAMPED] += _clamped(float(columns.tier[i]), 1.0, 5.0)
            counts[c, K.C_PROPENSITY_CLAMPED] += _clamped(float(columns.propensity[i]), 0.0, 1.0)
            if p[K.P_PEER_THRESHOLD] >= 0.0:
                q = float(columns.peer[i])
                counts[c, K.C_PEER_CLAMPED] += _clamped(q, 0.0, 1.0)
                counts[c, K.C_PEER_GATED] += min(max(q, 0.0), 1.0) < p[K.P_PEER_THRESHOLD]
            counts[c, K.C_EFFECT_CAPPED] += abs(e) >= p[K.P_CAP] and e != 0.0
            if with_groups:
                for dim, dim_codes in enumerate(codes):
                    g = int(offsets[dim]) + int(dim_codes[i])
                    groups[c, g, 0] += 1.0
                    groups[c, g, 1] += d
                    groups[c, g, 2] += d * d
        sums[c, K.S_EFFECT_MIN] = lo
        sums[c, K.S_EFFECT_MAX] = hi
    return counts, sums, groups
