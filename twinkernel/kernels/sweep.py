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
configs per segment), so it vectorises. Each config's accumulators still receive the block's twins in
order, one at a time, exactly as ``simulate_pass``'s do.

The product is evaluated in the same left-to-right order as ``_twin_effect``::

    ((((((m_decile * m_eng) * m_adopt) * intensity) * duration) * channel) * m_tier) * m_prop) * gate

so precomputing ``m_decile * m_eng * m_adopt`` once changes no bit. The caller groups configs so that the
shared coefficients (``SHARED_PARAMS``, the adoption and tier tables) are equal across the K configs of a pass.
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

__all__ = ["SHARED_PARAMS", "sweep_pass"]

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
):
    """Per-block counters, sums and segment sums of ``K = params.shape[0]`` configs over ``n`` twins.

    The selected twins are ``index[:n]`` (or rows ``0 .. n - 1`` when ``use_index`` is False). ``params``
    is ``(K, N_PARAMS)``; ``adoption_mult`` and ``tier_mult`` are the (shared) lookup tables;
    ``effect_shift`` holds each config's shift. Returns, with ``B`` blocks of ``SUM_BLOCK`` twins:

    - ``counts`` ``(B, K, N_COUNTERS)`` int64, as ``simulate_pass``'s counters for each config;
    - ``sums`` ``(B, K, N_SUMS)``, as ``simulate_pass``'s ``sums`` for each config;
    - ``groups`` ``(B, K, total_groups, 3)`` (``(B, K, 0, 3)`` without groups), as its ``groups``.
    """
    k_configs = params.shape[0]
    n_blocks = (n + SUM_BLOCK - 1) // SUM_BLOCK
    blocks_per_task = max(1, (chunk + SUM_BLOCK - 1) // SUM_BLOCK)
    n_tasks = (n_blocks + blocks_per_task - 1) // blocks_per_task
    g_total = total_groups if with_groups else 0
    counts = np.zeros((n_blocks, k_configs, N_COUNTERS), dtype=np.int64)
    sums = np.zeros((n_blocks, k_configs, N_SUMS), dtype=np.float64)
    groups = np.zeros((n_blocks, k_configs, g_total, 3), dtype=np.float64)
    n_dims = len(codes)
    key_radius = key_for(seed, STREAM_EFFECT_NOISE)
    key_angle = key_for(seed, STREAM_EFFECT_NOISE_ANGLE)
    shared = params[0]
    cap = shared[P_CAP]
    n_adopt = adoption_mult.shape[0]
    # Per-config values as contiguous vectors: the inner loops run over configs, so they vectorise.
    base = np.ascontiguousarray(params[:, P_BASE])
    noise_sd = np.ascontiguousarray(params[:, P_NOISE_SD])
    intensity = np.ascontiguousarray(params[:, P_INTENSITY])
    duration = np.ascontiguousarray(params[:, P_DURATION])
    channel = np.ascontiguousarray(params[:, P_CHANNEL])
    use_tier = np.empty(k_configs, dtype=np.bool_)
    use_gate = np.empty(k_configs, dtype=np.bool_)
    threshold = np.empty(k_configs, dtype=np.float64)
    for kc in range(k_configs):
        use_tier[kc] = params[kc, P_USE_TIER] > 0.5
        use_gate[kc] = params[kc, P_PEER_THRESHOLD] >= 0.0
        # Peer scores are clamped to [0, 1] first, so -inf never gates: the same as no gate.
        threshold[kc] = params[kc, P_PEER_THRESHOLD] if use_gate[kc] else -np.inf
    for t in prange(n_tasks):
        s_e = np.empty(k_configs, dtype=np.float64)
        s_ee = np.empty(k_configs, dtype=np.float64)
        lo = np.empty(k_configs, dtype=np.float64)
        hi = np.empty(k_configs, dtype=np.float64)
        n_capped = np.empty(k_configs, dtype=np.int64)
        n_gated = np.empty(k_configs, dtype=np.int64)
        delta = np.empty(k_configs, dtype=np.float64)
        delta_sq = np.empty(k_configs, dtype=np.float64)
        g_count = np.zeros(max(g_total, 1), dtype=np.float64)
        g_s1 = np.zeros((max(g_total, 1), k_configs), dtype=np.float64)
        g_s2 = np.zeros((max(g_total, 1), k_configs), dtype=np.float64)
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
            s_e[:] = 0.0
            s_ee[:] = 0.0
            lo[:] = np.inf
            hi[:] = -np.inf
            n_capped[:] = 0
            n_gated[:] = 0
            if with_groups:
                g_count[:] = 0.0
                g_s1[:, :] = 0.0
                g_s2[:, :] = 0.0
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
                z = twin_normal(key_radius, key_angle, twin_key[i])
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
                for kc in range(k_configs):
                    gated = q < threshold[kc]
                    gate = 0.0 if gated else 1.0
                    mt = m_tier if use_tier[kc] else 1.0
                    total = prefix * intensity[kc] * duration[kc] * channel[kc] * mt * m_prop * gate
                    noise = 0.0 if gated else noise_sd[kc] * z
                    eff = base[kc] * total + noise
                    below = eff < -cap
                    above = eff > cap
                    eff = -cap if below else eff
                    eff = cap if above else eff
                    n_capped[kc] += below or above
                    n_gated[kc] += gated
                    dlt = eff - effect_shift[kc]
                    dd = dlt * dlt
                    delta[kc] = dlt
                    delta_sq[kc] = dd
                    s_e[kc] += dlt
                    s_ee[kc] += dd
                    lo[kc] = min(lo[kc], eff)
                    hi[kc] = max(hi[kc], eff)
                if with_groups:
                    for k in range(n_dims):
                        g_of[k] = offsets[k] + np.int64(codes[k][i])
                    for k in range(n_dims):
                        g = g_of[k]
                        g_count[g] += 1.0
                        row1 = g_s1[g]
                        row2 = g_s2[g]
                        for kc in range(k_configs):
                            row1[kc] += delta[kc]
                            row2[kc] += delta_sq[kc]
            for kc in range(k_configs):
                sums[c, kc, S_EFFECT_SUM] = s_e[kc]
                sums[c, kc, S_EFFECT_SQ] = s_ee[kc]
                sums[c, kc, S_BASELINE_SUM] = s_b
                sums[c, kc, S_BASELINE_SQ] = s_bb
                sums[c, kc, S_EFFECT_MIN] = lo[kc]
                sums[c, kc, S_EFFECT_MAX] = hi[kc]
                counts[c, kc, C_DECILE_CLAMPED] = f_decile
                counts[c, kc, C_ENGAGEMENT_CLAMPED] = f_eng
                counts[c, kc, C_ADOPTION_UNRECOGNISED] = f_adopt
                counts[c, kc, C_TIER_CLAMPED] = f_tier if use_tier[kc] else 0
                counts[c, kc, C_PEER_CLAMPED] = f_peer if use_gate[kc] else 0
                counts[c, kc, C_PROPENSITY_CLAMPED] = f_prop
                counts[c, kc, C_EFFECT_CAPPED] = n_capped[kc]
                counts[c, kc, C_PEER_GATED] = n_gated[kc]
                if with_groups:
                    for g in range(g_total):
                        groups[c, kc, g, 0] = g_count[g]
                        groups[c, kc, g, 1] = g_s1[g, kc]
                        groups[c, kc, g, 2] = g_s2[g, kc]
    return counts, sums, groups
