"""Many intervention configs over one selection of twins in one pass: the scenario-sweep kernel.

:func:`sweep_pass` computes, for ``K`` parameter vectors at once, what :func:`.effects.simulate_pass`
computes for one: per block of ``SUM_BLOCK`` consecutive selected twins, the clamp counters, the shifted
sums of effects and baselines, the effect min / max, and the per-segment count, sum and sum of squares. The
blocks, the order in which each block's twins are added and the arithmetic of each effect are the same as
``simulate_pass``'s, so combining a config's slots with :func:`.stats.combine_columns` and
:func:`.stats.combine_grouped` gives bit-identical totals.

What it saves: a twin's noise ``z(seed, twin_key)`` does not depend on the config (only its scale
``noise_sd`` does), nor do the columns it reads, nor the modifiers whose coefficients are the effect model's
and not the intervention's (decile, engagement, adoption stage, propensity, the tier multiplier and the
peer score). Each twin's shared values are computed once; then the innermost loop runs over the configs,
with only the per-intervention factors left (base effect, noise sd, intensity, duration, channel, the tier
switch, the peer threshold) and per-config accumulators held as contiguous vectors (and one row over the
configs per segment), so it vectorises (over at least ``MIN_ROW`` lanes, see there). Each config's
accumulators still receive the block's twins in order, one at a time, exactly as ``simulate_pass``'s do.

The product is evaluated in the same left-to-right order as ``_twin_effect``::

    ((((((m_decile * m_eng) * m_adopt) * intensity) * duration) * channel) * m_tier) * m_prop) * gate

so precomputing ``m_decile * m_eng * m_adopt`` once changes no bit. The caller groups configs so that the
shared coefficients (``SHARED_PARAMS``, the adoption and tier tables) are equal across a pass's configs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import STREAM_EFFECT_NOISE, STREAM_EFFECT_NOISE_ANGLE, key_for, twin_normal
from .effects import (
    C_ADOPTION_UNRECOGNISED,
    C_DECILE_CLAMPED,
    C_EFFECT_CAPPED,
    C_ENGAGEMENT_CLAMPED,
    C_PEER_CLAMPED,
    C_PEER_GATED,
    C_PROPENSITY_CLAMPED,
    C_TIER_CLAMPED,
    N_COUNTERS,
    N_SUMS,
    P_BASE,
    P_CAP,
    P_CHANNEL,
    P_DECILE_HIGH,
    P_DECILE_INTERCEPT,
    P_DECILE_LOW,
    P_DECILE_SLOPE,
    P_DURATION,
    P_ENGAGEMENT_INTERCEPT,
    P_ENGAGEMENT_SLOPE,
    P_INTENSITY,
    P_NOISE_SD,
    P_PEER_THRESHOLD,
    P_PROPENSITY_INTERCEPT,
    P_PROPENSITY_SLOPE,
    P_USE_TIER,
    S_BASELINE_SQ,
    S_BASELINE_SUM,
    S_EFFECT_MAX,
    S_EFFECT_MIN,
    S_EFFECT_SQ,
    S_EFFECT_SUM,
    SUM_BLOCK,
)

__all__ = ["MIN_ROW", "SHARED_PARAMS", "sweep_pass"]

SHARED_PARAMS = (
    P_CAP,
    P_DECILE_INTERCEPT,
    P_DECILE_SLOPE,
    P_DECILE_LOW,
    P_DECILE_HIGH,
    P_ENGAGEMENT_INTERCEPT,
    P_ENGAGEMENT_SLOPE,
    P_PROPENSITY_INTERCEPT,
    P_PROPENSITY_SLOPE,
)
"""Parameter indices that must be equal across the configs of one sweep (the effect model's, not the
intervention's): the kernel reads them from ``params[0]``."""


# Rows of the per-config parameter array and of the per-block accumulator array.
CP_THRESHOLD, CP_USE_TIER, CP_INTENSITY, CP_DURATION, CP_CHANNEL, CP_NOISE_SD, CP_BASE, CP_SHIFT = range(8)
N_CP = 8
A_SUM, A_SQ, A_MIN, A_MAX, A_FLAGS, A_DELTA = range(6)
N_ACC = 6
GATED_UNIT = 65536.0
"""``A_FLAGS`` counts capped effects in units of 1 and gated ones in units of this (a block has at most
``SUM_BLOCK`` < 65536 twins, so both counts are exact in one float): one row, one store less per twin."""
MIN_ROW = 32
"""Least number of lanes the loops over configs run over (lanes past ``K`` hold zeros and are never
written out). The compiler guards its vector loop with run-time checks that the per-config rows do not
overlap and takes the scalar loop when the trip count is too small to pay for them: measured here, the
effect loop ran scalar below 28 configs (below 36 before ``A_FLAGS`` merged two rows), and a 25-config pass
(a target selection of the benchmark) then took as long as a 48-config one. Running at least ``MIN_ROW``
lanes keeps every pass vectorised."""


@njit(inline="always", cache=True)
def _clamp(x, lo, hi):
    if x < lo:
        return lo, True
    if x > hi:
        return hi, True
    return x, False


@njit(parallel=True, cache=True)
def sweep_pass(
    decile,
    engagement,
    adoption,
    tier,
    peer,
    propensity,
    baseline,
    twin_key,
    index,
    use_index,
    n,
    params,
    adoption_mult,
    tier_mult,
    seed,
    chunk,
    codes,
    offsets,
    total_groups,
    with_groups,
    effect_shift,
    baseline_shift,
    drawn,
):
    """Per-block counters, sums and segment sums of ``K = params.shape[0]`` configs over ``n`` twins.

    The selected twins are ``index[:n]`` (or rows ``0 .. n - 1`` when ``use_index`` is False). ``params``
    is ``(K, N_PARAMS)``; ``adoption_mult`` and ``tier_mult`` are the (shared) lookup tables;
    ``effect_shift`` holds each config's shift. ``drawn`` is empty (draw every twin's noise), or one value
    per population row, NaN where not drawn yet: a twin's noise ``z(seed, twin_key)`` is read from it, or
    drawn and stored there (a sweep over several target selections shares one such array between its
    passes, so each row's noise is drawn once; a value that happened to be NaN is merely drawn again, the
    same bits). Returns, with ``B`` blocks of ``SUM_BLOCK`` twins:

    - ``counts`` ``(K, B, N_COUNTERS)`` int64: ``counts[k]`` is ``simulate_pass``'s counters for config k;
    - ``sums`` ``(K, B, N_SUMS)``: ``sums[k]`` is its ``sums``;
    - ``groups`` ``(K, B, total_groups, 3)`` (``(K, B, 0, 3)`` without groups): ``groups[k]`` is its
      ``groups``.
    """
    k_configs = params.shape[0]
    n_blocks = (n + SUM_BLOCK - 1) // SUM_BLOCK
    blocks_per_task = max(1, (chunk + SUM_BLOCK - 1) // SUM_BLOCK)
    n_tasks = (n_blocks + blocks_per_task - 1) // blocks_per_task
    g_total = total_groups if with_groups else 0
    counts = np.zeros((k_configs, n_blocks, N_COUNTERS), dtype=np.int64)
    sums = np.zeros((k_configs, n_blocks, N_SUMS), dtype=np.float64)
    groups = np.zeros((k_configs, n_blocks, g_total, 3), dtype=np.float64)
    n_dims = len(codes)
    key_radius = key_for(seed, STREAM_EFFECT_NOISE)
    key_angle = key_for(seed, STREAM_EFFECT_NOISE_ANGLE)
    use_drawn = drawn.shape[0] > 0
    shared = params[0]
    cap = shared[P_CAP]
    n_adopt = adoption_mult.shape[0]
    # Per-config values as rows of one array (CP_*), and per-twin results and per-block accumulators as rows
    # of two more: the inner loops over configs then touch three arrays, few enough for the compiler to
    # prove them independent and vectorise.
    # Rows of k_row >= MIN_ROW lanes; the loops over configs run over all of them (see MIN_ROW).
    k_row = max(k_configs, MIN_ROW)
    cp = np.zeros((N_CP, k_row), dtype=np.float64)
    for kc in range(k_configs):
        # Peer scores are clamped to [0, 1] first, so -inf never gates: the same as no gate.
        cp[CP_THRESHOLD, kc] = (
            params[kc, P_PEER_THRESHOLD] if params[kc, P_PEER_THRESHOLD] >= 0.0 else -np.inf
        )
        cp[CP_USE_TIER, kc] = 1.0 if params[kc, P_USE_TIER] > 0.5 else 0.0
        cp[CP_INTENSITY, kc] = params[kc, P_INTENSITY]
        cp[CP_DURATION, kc] = params[kc, P_DURATION]
        cp[CP_CHANNEL, kc] = params[kc, P_CHANNEL]
        cp[CP_NOISE_SD, kc] = params[kc, P_NOISE_SD]
        cp[CP_BASE, kc] = params[kc, P_BASE]
        cp[CP_SHIFT, kc] = effect_shift[kc]
    for t in prange(n_tasks):
        acc = np.zeros((N_ACC, k_row), dtype=np.float64)
        g_count = np.zeros(max(g_total, 1), dtype=np.float64)
        g_acc = np.zeros((max(g_total, 1), 2, k_row), dtype=np.float64)
        g_of = np.empty(max(n_dims, 1), dtype=np.int64)
        for c in range(t * blocks_per_task, min(n_blocks, (t + 1) * blocks_per_task)):
            f_decile = 0
            f_eng = 0
            f_adopt = 0
            f_tier = 0
            f_peer = 0
            f_prop = 0
            s_b = 0.0
            s_bb = 0.0
            acc[A_SUM, :] = 0.0
            acc[A_SQ, :] = 0.0
            acc[A_MIN, :] = np.inf
            acc[A_MAX, :] = -np.inf
            acc[A_FLAGS, :] = 0.0
            if with_groups:
                g_count[:] = 0.0
                g_acc[:, :, :] = 0.0
            for j in range(c * SUM_BLOCK, min(n, (c + 1) * SUM_BLOCK)):
                i = index[j] if use_index else j
                # What does not depend on the config, as in _twin_effect.
                d, fd = _clamp(np.float64(decile[i]), shared[P_DECILE_LOW], shared[P_DECILE_HIGH])
                m_decile = shared[P_DECILE_INTERCEPT] - shared[P_DECILE_SLOPE] * (d - shared[P_DECILE_LOW])
                e, fe = _clamp(engagement[i], 0.0, 1.0)
                m_eng = shared[P_ENGAGEMENT_INTERCEPT] + shared[P_ENGAGEMENT_SLOPE] * e
                a = np.int64(adoption[i])
                fa = a >= n_adopt - 1
                if a >= n_adopt:
                    a = n_adopt - 1
                prefix = m_decile * m_eng * adoption_mult[a]
                tv, ft = _clamp(np.float64(tier[i]), 1.0, 5.0)
                m_tier = tier_mult[np.int64(tv)]
                p, fp = _clamp(propensity[i], 0.0, 1.0)
                m_prop = shared[P_PROPENSITY_INTERCEPT] + shared[P_PROPENSITY_SLOPE] * p
                q, fq = _clamp(peer[i], 0.0, 1.0)
                z = drawn[i] if use_drawn else np.nan
                if np.isnan(z):
                    z = twin_normal(key_radius, key_angle, twin_key[i])
                    if use_drawn:
                        drawn[i] = z
                f_decile += fd
                f_eng += fe
                f_adopt += fa
                f_tier += ft
                f_peer += fq
                f_prop += fp
                b = baseline[i] - baseline_shift
                s_b += b
                s_bb += b * b
                # Every config's effect; the product in _twin_effect's order (x 1.0 without tier: same bits).
                for kc in range(k_row):  # k_row >= MIN_ROW lanes: see MIN_ROW
                    gated = q < cp[CP_THRESHOLD, kc]
                    gate = 0.0 if gated else 1.0
                    mt = m_tier if cp[CP_USE_TIER, kc] > 0.5 else 1.0
                    total = prefix * cp[CP_INTENSITY, kc] * cp[CP_DURATION, kc] * cp[CP_CHANNEL, kc] * mt
                    total = total * m_prop * gate
                    noise = 0.0 if gated else cp[CP_NOISE_SD, kc] * z
                    eff = cp[CP_BASE, kc] * total + noise
                    below = eff < -cap
                    above = eff > cap
                    eff = -cap if below else eff
                    eff = cap if above else eff
                    dlt = eff - cp[CP_SHIFT, kc]
                    dd = dlt * dlt
                    acc[A_SUM, kc] += dlt
                    acc[A_SQ, kc] += dd
                    acc[A_MIN, kc] = min(acc[A_MIN, kc], eff)
                    acc[A_MAX, kc] = max(acc[A_MAX, kc], eff)
                    acc[A_FLAGS, kc] += (1.0 if (below | above) else 0.0) + (GATED_UNIT if gated else 0.0)
                    acc[A_DELTA, kc] = dlt
                if with_groups:
                    for k in range(n_dims):
                        g_of[k] = offsets[k] + np.int64(codes[k][i])
                    for k in range(n_dims):
                        g = g_of[k]
                        g_count[g] += 1.0
                        for kc in range(k_row):  # k_row >= MIN_ROW lanes: see MIN_ROW
                            dlt = acc[A_DELTA, kc]
                            g_acc[g, 0, kc] += dlt
                            g_acc[g, 1, kc] += dlt * dlt  # the same product as the block's square sum
            for kc in range(k_configs):
                use_tier = cp[CP_USE_TIER, kc] > 0.5
                use_gate = cp[CP_THRESHOLD, kc] > -np.inf
                sums[kc, c, S_EFFECT_SUM] = acc[A_SUM, kc]
                sums[kc, c, S_EFFECT_SQ] = acc[A_SQ, kc]
                sums[kc, c, S_BASELINE_SUM] = s_b
                sums[kc, c, S_BASELINE_SQ] = s_bb
                sums[kc, c, S_EFFECT_MIN] = acc[A_MIN, kc]
                sums[kc, c, S_EFFECT_MAX] = acc[A_MAX, kc]
                counts[kc, c, C_DECILE_CLAMPED] = f_decile
                counts[kc, c, C_ENGAGEMENT_CLAMPED] = f_eng
                counts[kc, c, C_ADOPTION_UNRECOGNISED] = f_adopt
                counts[kc, c, C_TIER_CLAMPED] = f_tier if use_tier else 0
                counts[kc, c, C_PEER_CLAMPED] = f_peer if use_gate else 0
                counts[kc, c, C_PROPENSITY_CLAMPED] = f_prop
                flagged = np.int64(acc[A_FLAGS, kc])
                counts[kc, c, C_EFFECT_CAPPED] = flagged % np.int64(GATED_UNIT)
                counts[kc, c, C_PEER_GATED] = flagged // np.int64(GATED_UNIT)
                if with_groups:
                    for g in range(g_total):
                        groups[kc, c, g, 0] = g_count[g]
                        groups[kc, c, g, 1] = g_acc[g, 0, kc]
                        groups[kc, c, g, 2] = g_acc[g, 1, kc]
    return counts, sums, groups
