"""Plain-Python reference implementations of the simulation kernels.

Obviously-correct loops, one twin at a time, using the same counter-based random numbers (re-implemented
here with Python integers) so the compiled kernels can be compared at tight tolerances.
"""

from __future__ import annotations

import math

import numpy as np

from twinkernel.kernels import effects as K

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB


def mix64(x: int) -> int:
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * M1) & MASK64
    z = ((z ^ (z >> 27)) * M2) & MASK64
    return z ^ (z >> 31)


def key_for(seed: int, stream: int) -> int:
    return mix64(mix64(seed & MASK64) ^ ((stream * M2) & MASK64))


def uniform(key: int, index: int) -> float:
    return (float(mix64(key ^ mix64(index & MASK64)) >> 11) + 0.5) * 2.0**-53


def standard_normal(key: int, index: int) -> float:
    u1 = uniform(key, 2 * index)
    u2 = uniform(key, 2 * index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def twin_key(twin_id: object) -> int:
    """The stable key of one twin id: mix64 of the integer, or of FNV-1a-64 of the id's UTF-8 bytes."""
    if isinstance(twin_id, (int, np.integer)) and not isinstance(twin_id, bool):
        return mix64(int(twin_id) & MASK64)
    return mix64(fnv1a64(str(twin_id).encode("utf-8")))


def twin_normal(seed: int, key: int) -> float:
    """The effect-noise normal of the twin with key ``key`` (streams 1 and 2, Box-Muller)."""
    u1 = uniform(key_for(seed, 1), key)
    u2 = uniform(key_for(seed, 2), key)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def twin_modifiers(
    key: int,
    decile: float,
    engagement: float,
    adoption_code: int,
    tier: float,
    peer: float,
    propensity: float,
    params: np.ndarray,
    adoption_mult: np.ndarray,
    tier_mult: np.ndarray,
    seed: int,
) -> dict[str, float]:
    """One twin's modifiers and effect, as in SPEC §3, written out plainly (``key``: the twin key)."""
    p = [float(v) for v in params]
    d = _clamp(float(decile), p[K.P_DECILE_LOW], p[K.P_DECILE_HIGH])
    m = {
        "decile": p[K.P_DECILE_INTERCEPT] - p[K.P_DECILE_SLOPE] * (d - p[K.P_DECILE_LOW]),
        "engagement": p[K.P_ENGAGEMENT_INTERCEPT] + p[K.P_ENGAGEMENT_SLOPE] * _clamp(engagement, 0.0, 1.0),
        "adoption": float(adoption_mult[min(int(adoption_code), len(adoption_mult) - 1)]),
        "intensity": p[K.P_INTENSITY],
        "duration": p[K.P_DURATION],
        "channel": p[K.P_CHANNEL],
        "tier": float(tier_mult[int(_clamp(float(tier), 1.0, 5.0))]) if p[K.P_USE_TIER] > 0.5 else 1.0,
        "propensity": p[K.P_PROPENSITY_INTERCEPT] + p[K.P_PROPENSITY_SLOPE] * _clamp(propensity, 0.0, 1.0),
    }
    gated = p[K.P_PEER_THRESHOLD] >= 0.0 and _clamp(peer, 0.0, 1.0) < p[K.P_PEER_THRESHOLD]
    m["peer_gate"] = 0.0 if gated else 1.0
    total = 1.0
    for name in (
        "decile",
        "engagement",
        "adoption",
        "intensity",
        "duration",
        "channel",
        "tier",
        "propensity",
        "peer_gate",
    ):
        total *= m[name]
    m["total"] = total
    m["base_effect"] = p[K.P_BASE]
    m["noise"] = 0.0 if gated else p[K.P_NOISE_SD] * twin_normal(seed, int(key))
    m["effect"] = _clamp(p[K.P_BASE] * total + m["noise"], -p[K.P_CAP], p[K.P_CAP])
    return m


def individual_effects(columns, index, params, adoption_mult, tier_mult, seed) -> np.ndarray:
    """Reference for the effects of :func:`twinkernel.kernels.effects.simulate_pass` (KernelColumns in)."""
    rows = range(columns.decile.shape[0]) if index is None else [int(i) for i in index]
    out = []
    for i in rows:
        m = twin_modifiers(
            int(columns.twin_key[i]),
            columns.decile[i],
            columns.engagement[i],
            columns.adoption[i],
            columns.tier[i],
            columns.peer[i],
            columns.propensity[i],
            params,
            adoption_mult,
            tier_mult,
            seed,
        )
        out.append(m["effect"])
    return np.array(out, dtype=np.float64)


def grouped_moments(x, codes, n_groups, index=None):
    """Reference for the per-segment statistics of the fused pass: per dimension (n, mean, var)."""
    rows = list(range(len(x))) if index is None else [int(i) for i in index]
    result = []
    for dim_codes, g_total in zip(codes, n_groups, strict=True):
        buckets: list[list[float]] = [[] for _ in range(g_total)]
        for j, row in enumerate(rows):
            buckets[int(dim_codes[row])].append(float(x[j]))
        n = np.array([len(b) for b in buckets], dtype=np.int64)
        mean = np.array([sum(b) / len(b) if b else 0.0 for b in buckets])
        var = np.array(
            [
                sum((v - sum(b) / len(b)) ** 2 for v in b) / (len(b) - 1) if len(b) > 1 else 0.0
                for b in buckets
            ]
        )
        result.append((n, mean, var))
    return result
