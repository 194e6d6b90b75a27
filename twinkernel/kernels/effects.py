"""Individual treatment effects: the effect-modifier kernel and its trace variant.

For twin ``i`` (a row of the population) and one intervention::

    effect_i = base * decile_m * engagement_m * adoption_m * intensity * duration * channel * tier_m
               * propensity_m * peer_gate + noise_sd * z(seed, twin_key_i)

clamped to ``[-cap, cap]``. The noise ``z`` is a standard normal drawn with the twin's stable key
(:mod:`._rng`, "Twin keys"), never its row, so a twin's effect does not depend on which rows are selected,
their order or the chunking. A twin whose peer gate is 0 (peer-influence activation below the threshold)
gets exactly 0, without noise. Scalars that are the same for every twin arrive in ``params`` (indices
``P_*``); per-category multipliers arrive as small lookup arrays. Counters of clamped inputs are returned
per chunk (``C_*`` columns) so the caller can report data quality.

Sums are written into fixed slots of ``SUM_BLOCK`` consecutive selected twins, whatever the parallel chunk
size: the caller's in-order combination of the slots is bit-identical for every thread count and every
``chunk``; only the order of the selected twins changes the last bits of a sum.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import STREAM_EFFECT_NOISE, STREAM_EFFECT_NOISE_ANGLE, key_for, twin_normal

# --- parameter vector layout -----------------------------------------------------------------------------
P_BASE = 0
P_NOISE_SD = 1
P_INTENSITY = 2
P_DURATION = 3
P_CHANNEL = 4
P_PEER_THRESHOLD = 5  # < 0 disables the peer gate
P_USE_TIER = 6  # 1.0 applies the priority-tier multiplier
P_CAP = 7
P_DECILE_INTERCEPT = 8
P_DECILE_SLOPE = 9
P_DECILE_LOW = 10
P_DECILE_HIGH = 11
P_ENGAGEMENT_INTERCEPT = 12
P_ENGAGEMENT_SLOPE = 13
P_PROPENSITY_INTERCEPT = 14
P_PROPENSITY_SLOPE = 15
N_PARAMS = 16

# --- counters ------------------------------------------------------------------------------------------
C_DECILE_CLAMPED = 0
C_ENGAGEMENT_CLAMPED = 1
C_ADOPTION_UNRECOGNISED = 2
C_TIER_CLAMPED = 3
C_PEER_CLAMPED = 4
C_PROPENSITY_CLAMPED = 5
C_EFFECT_CAPPED = 6
C_PEER_GATED = 7
N_COUNTERS = 8
INVARIANT_COUNTERS = np.array(
    [C_DECILE_CLAMPED, C_ENGAGEMENT_CLAMPED, C_ADOPTION_UNRECOGNISED, C_PROPENSITY_CLAMPED], dtype=np.int64
)
"""Counters that depend on the selected twins only (not on the intervention); see ``simulate_pass``."""
COUNTER_NAMES = (
    "decile_clamped",
    "engagement_clamped",
    "adoption_unrecognised",
    "tier_clamped",
    "peer_clamped",
    "propensity_clamped",
    "effect_capped",
    "below_peer_threshold",
)

# --- trace matrix columns ------------------------------------------------------------------------------
MODIFIER_NAMES = (
    "decile",
    "engagement",
    "adoption",
    "intensity",
    "duration",
    "channel",
    "tier",
    "propensity",
    "peer_gate",
    "total",
    "base_effect",
    "noise",
    "effect",
)
N_MODIFIERS = len(MODIFIER_NAMES)

SUM_BLOCK = 4096
"""Twins per reduction slot. Part of the kernels' definition (changing it changes the last bits of every
sum, so it needs a KERNEL_VERSION bump), hence a constant here rather than a configuration value."""


@njit(inline="always", cache=True)
def _clamp(x, lo, hi):
    if x < lo:
        return lo, True
    if x > hi:
        return hi, True
    return x, False


@njit(inline="always", cache=True)
def _clamp_flag(x, lo, hi):
    """:func:`_clamp` written as selects (no branches in the hot loop): the same value and flag."""
    below = x < lo
    above = x > hi
    value = lo if below else (hi if above else x)
    return value, below or above


@njit(inline="always", cache=True)
def _twin_effect(
    i,
    decile,
    engagement,
    adoption,
    tier,
    peer,
    propensity,
    twin_key,
    params,
    adoption_mult,
    tier_mult,
    key_radius,
    key_angle,
    mods,
    flags,
):
    """Compute one twin's modifiers into ``mods`` (length N_MODIFIERS) and clamp flags into ``flags``."""
    d, fd = _clamp(np.float64(decile[i]), params[P_DECILE_LOW], params[P_DECILE_HIGH])
    m_decile = params[P_DECILE_INTERCEPT] - params[P_DECILE_SLOPE] * (d - params[P_DECILE_LOW])
    e, fe = _clamp(engagement[i], 0.0, 1.0)
    m_eng = params[P_ENGAGEMENT_INTERCEPT] + params[P_ENGAGEMENT_SLOPE] * e
    a = np.int64(adoption[i])
    fa = a >= adoption_mult.shape[0] - 1
    if a >= adoption_mult.shape[0]:
        a = adoption_mult.shape[0] - 1
    m_adopt = adoption_mult[a]
    m_tier = 1.0
    t, ft = _clamp(np.float64(tier[i]), 1.0, 5.0)
    if params[P_USE_TIER] > 0.5:
        m_tier = tier_mult[np.int64(t)]
    else:
        ft = False
    p, fp = _clamp(propensity[i], 0.0, 1.0)
    m_prop = params[P_PROPENSITY_INTERCEPT] + params[P_PROPENSITY_SLOPE] * p
    gate = 1.0
    fpeer = False
    gated = False
    if params[P_PEER_THRESHOLD] >= 0.0:
        q, fpeer = _clamp(peer[i], 0.0, 1.0)
        if q < params[P_PEER_THRESHOLD]:
            gate = 0.0
            gated = True
    total = (
        m_decile
        * m_eng
        * m_adopt
        * params[P_INTENSITY]
        * params[P_DURATION]
        * params[P_CHANNEL]
        * m_tier
        * m_prop
        * gate
    )
    noise = 0.0
    if not gated:
        noise = params[P_NOISE_SD] * twin_normal(key_radius, key_angle, twin_key[i])
    effect = params[P_BASE] * total + noise
    effect, fc = _clamp(effect, -params[P_CAP], params[P_CAP])
    mods[0] = m_decile
    mods[1] = m_eng
    mods[2] = m_adopt
    mods[3] = params[P_INTENSITY]
    mods[4] = params[P_DURATION]
    mods[5] = params[P_CHANNEL]
    mods[6] = m_tier
    mods[7] = m_prop
    mods[8] = gate
    mods[9] = total
    mods[10] = params[P_BASE]
    mods[11] = noise
    mods[12] = effect
    flags[C_DECILE_CLAMPED] += fd
    flags[C_ENGAGEMENT_CLAMPED] += fe
    flags[C_ADOPTION_UNRECOGNISED] += fa
    flags[C_TIER_CLAMPED] += ft
    flags[C_PEER_CLAMPED] += fpeer
    flags[C_PROPENSITY_CLAMPED] += fp
    flags[C_EFFECT_CAPPED] += fc
    flags[C_PEER_GATED] += gated
    return effect


@njit(parallel=True, cache=True)
def individual_effects_traced(
    decile,
    engagement,
    adoption,
    tier,
    peer,
    propensity,
    twin_key,
    index,
    use_index,
    params,
    adoption_mult,
    tier_mult,
    seed,
    chunk,
    out,
    trace,
):
    """Fill ``out[j]`` with the effect of twin ``index[j]`` (or of twin ``j`` when ``use_index`` is False)
    and ``trace[j, :]`` with its modifiers (MODIFIER_NAMES); the effects equal :func:`simulate_pass`'s.

    Returns an ``(n_chunks, N_COUNTERS)`` int64 array of clamp counters, one row per fixed-size chunk.
    """
    n = out.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    counts = np.zeros((n_chunks, N_COUNTERS), dtype=np.int64)
    key_radius = key_for(seed, STREAM_EFFECT_NOISE)
    key_angle = key_for(seed, STREAM_EFFECT_NOISE_ANGLE)
    for c in prange(n_chunks):
        mods = np.empty(N_MODIFIERS, dtype=np.float64)
        flags = np.zeros(N_COUNTERS, dtype=np.int64)
        stop = min(n, (c + 1) * chunk)
        for j in range(c * chunk, stop):
            i = index[j] if use_index else j
            out[j] = _twin_effect(
                i,
                decile,
                engagement,
                adoption,
                tier,
                peer,
                propensity,
                twin_key,
                params,
                adoption_mult,
                tier_mult,
                key_radius,
                key_angle,
                mods,
                flags,
            )
            for k in range(N_MODIFIERS):
                trace[j, k] = mods[k]
        for k in range(N_COUNTERS):
            counts[c, k] = flags[k]
    return counts


# --- the fused simulation pass -------------------------------------------------------------------------
S_EFFECT_SUM = 0  # sum(effect - effect_shift)
S_EFFECT_SQ = 1  # sum((effect - effect_shift) ** 2)
S_BASELINE_SUM = 2  # sum(baseline - baseline_shift)
S_BASELINE_SQ = 3
S_EFFECT_MIN = 4
S_EFFECT_MAX = 5
N_SUMS = 6


@njit(inline="always", cache=True)
def _add_segments(local, deviations, index, use_index, start, stop, codes, offsets, k, count):
    """Add the block's deviations to the groups of dimensions ``k .. k + 3`` (fewer at the end).

    ``count`` False leaves the group counts (column 0) alone. Up to four dimensions per sweep, so the CPU
    overlaps four groups' add chains; each code array is picked
    once per sweep rather than per twin; every group still adds its twins in selection order (the groups of
    different dimensions are disjoint), so the sums are those of a twin-by-twin loop, bit for bit.
    """
    last = len(codes) - 1
    width = min(4, last + 1 - k)
    codes_a = codes[k]
    codes_b = codes[min(k + 1, last)]
    codes_c = codes[min(k + 2, last)]
    codes_d = codes[min(k + 3, last)]
    first_a = offsets[k]
    first_b = offsets[min(k + 1, last)]
    first_c = offsets[min(k + 2, last)]
    first_d = offsets[min(k + 3, last)]
    for j in range(start, stop):
        r = index[j] if use_index else j
        dev = deviations[j - start]
        sq = dev * dev
        g = first_a + np.int64(codes_a[r])
        if count:
            local[g, 0] += 1.0
        local[g, 1] += dev
        local[g, 2] += sq
        if width > 1:
            g = first_b + np.int64(codes_b[r])
            if count:
                local[g, 0] += 1.0
            local[g, 1] += dev
            local[g, 2] += sq
        if width > 2:
            g = first_c + np.int64(codes_c[r])
            if count:
                local[g, 0] += 1.0
            local[g, 1] += dev
            local[g, 2] += sq
        if width > 3:
            g = first_d + np.int64(codes_d[r])
            if count:
                local[g, 0] += 1.0
            local[g, 1] += dev
            local[g, 2] += sq


@njit(parallel=True, cache=True)
def simulate_pass(
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
    out,
    invariants=True,
):
    """Effects, their moments, the baseline's moments and per-segment sums in one pass over the twins.

    The selection is ``index`` (population rows) when ``use_index`` is True, else every row in order;
    ``n`` is its length. Fills ``out[j]`` with the effect of the ``j``-th selected twin when ``out`` has
    length ``n``; an empty ``out`` skips the stores (an analytic interval needs only the sums). Returns
    three per-slot tables, one row per block of ``SUM_BLOCK`` consecutive selected twins (so the caller's
    in-order combination is the same for any thread count and any ``chunk``, which only sets how many
    rows one parallel task handles, rounded up to whole blocks):

    - ``counts`` ``(n_blocks, N_COUNTERS)`` int64 clamp counters;
    - ``sums`` ``(n_blocks, N_SUMS)``: shifted sums and squares of effects and baselines, effect min / max;
    - ``groups`` ``(n_blocks, total_groups, 3)``: per segment count, ``sum(effect - effect_shift)`` and
      its square (all zeros when ``with_groups`` is False). ``codes`` is a tuple of same-dtype code arrays
      indexed by population row; dimension ``k`` owns groups ``offsets[k] .. offsets[k + 1] - 1``.

    ``invariants`` False skips what depends only on the selection, not on the intervention (the
    ``INVARIANT_COUNTERS`` columns, the baseline sums, the group counts): they are left 0 for a caller that
    kept them from an earlier pass over the same selection.

    The effect is :func:`_twin_effect`'s, bit for bit (same operations in the same order; a multiplier
    that is exactly 1.0 for the call, the tier or the peer gate, is skipped, which changes no bit), but the
    hot loop keeps what it needs in registers: clamps are selects, clamp counters are scalars per block
    rather than an array updated per twin, the modifiers are not stored, and the tier and peer branches
    test flags read once per call. Segment sums are a second loop over the block's deviations (kept in a
    per-task buffer of ``SUM_BLOCK`` values, see :func:`_add_segments`) into a small per-task table copied
    to the block's slot at its end; every group still adds its twins in selection order.
    """
    n = index.shape[0] if use_index else decile.shape[0]
    store = out.shape[0] > 0
    n_blocks = (n + SUM_BLOCK - 1) // SUM_BLOCK
    blocks_per_task = max(1, (chunk + SUM_BLOCK - 1) // SUM_BLOCK)
    n_tasks = (n_blocks + blocks_per_task - 1) // blocks_per_task
    n_groups = total_groups if with_groups else 0
    counts = np.zeros((n_blocks, N_COUNTERS), dtype=np.int64)
    sums = np.zeros((n_blocks, N_SUMS), dtype=np.float64)
    groups = np.zeros((n_blocks, n_groups, 3), dtype=np.float64)
    n_dims = len(codes)
    key_radius = key_for(seed, STREAM_EFFECT_NOISE)
    key_angle = key_for(seed, STREAM_EFFECT_NOISE_ANGLE)
    d_low = params[P_DECILE_LOW]
    d_high = params[P_DECILE_HIGH]
    d_intercept = params[P_DECILE_INTERCEPT]
    d_slope = params[P_DECILE_SLOPE]
    e_intercept = params[P_ENGAGEMENT_INTERCEPT]
    e_slope = params[P_ENGAGEMENT_SLOPE]
    p_intercept = params[P_PROPENSITY_INTERCEPT]
    p_slope = params[P_PROPENSITY_SLOPE]
    intensity = params[P_INTENSITY]
    duration = params[P_DURATION]
    channel = params[P_CHANNEL]
    base = params[P_BASE]
    noise_sd = params[P_NOISE_SD]
    cap = params[P_CAP]
    threshold = params[P_PEER_THRESHOLD]
    use_tier = params[P_USE_TIER] > 0.5
    use_peer = threshold >= 0.0
    last_adoption = adoption_mult.shape[0] - 1
    for t in prange(n_tasks):
        local = np.zeros((n_groups, 3), dtype=np.float64)
        deviations = np.empty(SUM_BLOCK if with_groups else 0, dtype=np.float64)
        for c in range(t * blocks_per_task, min(n_blocks, (t + 1) * blocks_per_task)):
            f_decile = 0
            f_engagement = 0
            f_adoption = 0
            f_tier = 0
            f_peer = 0
            f_propensity = 0
            f_capped = 0
            f_gated = 0
            s_e = 0.0
            s_ee = 0.0
            s_b = 0.0
            s_bb = 0.0
            lo = np.inf
            hi = -np.inf
            start = c * SUM_BLOCK
            stop = min(n, start + SUM_BLOCK)
            for j in range(start, stop):
                i = index[j] if use_index else j
                d, fd = _clamp_flag(np.float64(decile[i]), d_low, d_high)
                e, fe = _clamp_flag(engagement[i], 0.0, 1.0)
                a = np.int64(adoption[i])
                fa = a >= last_adoption
                a = last_adoption if fa else a
                total = (d_intercept - d_slope * (d - d_low)) * (e_intercept + e_slope * e)
                total *= adoption_mult[a]
                total *= intensity
                total *= duration
                total *= channel
                if use_tier:
                    tt, ft = _clamp_flag(np.float64(tier[i]), 1.0, 5.0)
                    f_tier += ft
                    total *= tier_mult[np.int64(tt)]
                p, fp = _clamp_flag(propensity[i], 0.0, 1.0)
                if invariants:
                    f_decile += fd
                    f_engagement += fe
                    f_adoption += fa
                    f_propensity += fp
                    b = baseline[i] - baseline_shift
                    s_b += b
                    s_bb += b * b
                total *= p_intercept + p_slope * p
                gated = False
                if use_peer:
                    q, fq = _clamp_flag(peer[i], 0.0, 1.0)
                    f_peer += fq
                    gated = q < threshold
                if gated:
                    f_gated += 1
                    effect = base * (total * 0.0) + 0.0  # _twin_effect's gate of 0: NaN stays NaN
                else:
                    effect = base * total + noise_sd * twin_normal(key_radius, key_angle, twin_key[i])
                effect, fc = _clamp_flag(effect, -cap, cap)
                f_capped += fc
                if store:
                    out[j] = effect
                dev = effect - effect_shift
                s_e += dev
                s_ee += dev * dev
                lo = min(lo, effect)
                hi = max(hi, effect)
                if with_groups:
                    deviations[j - start] = dev
            if with_groups:
                local[:, :] = 0.0
                for k in range(0, n_dims, 4):
                    _add_segments(
                        local, deviations, index, use_index, start, stop, codes, offsets, k, invariants
                    )
                groups[c, :, :] = local
            sums[c, S_EFFECT_SUM] = s_e
            sums[c, S_EFFECT_SQ] = s_ee
            sums[c, S_BASELINE_SUM] = s_b
            sums[c, S_BASELINE_SQ] = s_bb
            sums[c, S_EFFECT_MIN] = lo
            sums[c, S_EFFECT_MAX] = hi
            counts[c, C_DECILE_CLAMPED] = f_decile
            counts[c, C_ENGAGEMENT_CLAMPED] = f_engagement
            counts[c, C_ADOPTION_UNRECOGNISED] = f_adoption
            counts[c, C_TIER_CLAMPED] = f_tier
            counts[c, C_PEER_CLAMPED] = f_peer
            counts[c, C_PROPENSITY_CLAMPED] = f_propensity
            counts[c, C_EFFECT_CAPPED] = f_capped
            counts[c, C_PEER_GATED] = f_gated
    return counts, sums, groups
