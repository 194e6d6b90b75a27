"""Slow, obviously-correct references for the bootstrap kernels (plain NumPy, the same counter RNG).

The splitmix64 generator of ``twinkernel.kernels._rng`` is re-implemented here on NumPy ``uint64`` arrays
(wrapping arithmetic), so the references share no code with the kernels except the documented formulas:
the draw of unit/position ``i`` of replicate ``b`` is computed from first principles, the sums are plain
NumPy reductions, and the BCa acceleration is computed from explicit leave-one-out means.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.special import ndtr, ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK32 = np.uint64(0xFFFFFFFF)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def key_for(seed: int, stream: int) -> np.uint64:
    """Key of (seed, stream), as ``_rng.key_for``."""
    with np.errstate(over="ignore"):
        inner = mix64(np.array([seed], dtype=np.uint64))[0] ^ (np.uint64(stream) * _M2)
    return mix64(np.array([inner], dtype=np.uint64))[0]


def random_u64(key: np.uint64, index: np.ndarray) -> np.ndarray:
    """Draws ``index`` of the stream ``key``, as ``_rng.random_u64``."""
    return mix64(np.uint64(key) ^ mix64(np.asarray(index, dtype=np.uint64)))


def poisson1_weight_table() -> np.ndarray:
    """Poisson(1) on 16-bit lanes: thresholds ``round(65536 F(k))`` from scipy's CDF, weight capped at 8."""
    v = np.arange(65536)
    thresholds = np.round(65536.0 * stats.poisson.cdf(np.arange(8), 1.0))
    return (v[:, None] >= thresholds[None, :]).sum(axis=1)


BLOCK_ROWS = 4096  # the documented block size of the multinomial draw scheme (KERNEL_VERSION 4)


def binomial_by_mode_order(u: float, n: int, p: float) -> int:
    """Inverse of Binomial(n, p) over the support ordered m, m+1, m-1, m+2, ... (scipy's pmf)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    m = min(n, int((n + 1) * p))
    order = [m]
    for i in range(1, n + 1):
        order.extend(k for k in (m + i, m - i) if 0 <= k <= n)
        if m - i < 0 and m + i > n:
            break
    order_arr = np.array(order)
    cum = np.cumsum(stats.binom.pmf(order_arr, n, p))
    pos = int(np.searchsorted(cum, u, side="right"))
    return int(order_arr[pos]) if pos < order_arr.shape[0] else m


def mix64_int(x: int) -> int:
    """splitmix64 finaliser on a Python int (arbitrary-precision, masked to 64 bits)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def multinomial_means(values: np.ndarray, starts: np.ndarray, key: np.uint64, n_resamples: int) -> np.ndarray:
    """Replicate means per group, draw by draw, following the documented block scheme.

    Group ``g`` is cut into blocks of ``BLOCK_ROWS`` rows (numbered across all groups); block ``k`` of
    replicate ``b`` has hash ``h = random_u64(random_u64(key, b), k)``, its count is a conditional
    binomial of the uniform ``((h >> 11) + 0.5) / 2**53`` (the group's last block takes the rest), and its
    draw ``j`` comes from ``mix64(h + (j // f) * golden)``: five 12-bit fields in a full block, else the
    high then low 32-bit half mapped by ``(half * rows) >> 32``. Sums are plain Python sums.
    """
    mask = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15
    blocks = []  # (group, lo, rows) in block order
    for g in range(starts.shape[0] - 1):
        for lo in range(int(starts[g]), int(starts[g + 1]), BLOCK_ROWS):
            blocks.append((g, lo, min(BLOCK_ROWS, int(starts[g + 1]) - lo)))
    out = np.full((starts.shape[0] - 1, n_resamples), np.nan)
    for b in range(n_resamples):
        kb = random_u64(key, np.array([b]))[0]
        hashes = random_u64(kb, np.arange(len(blocks)))
        totals = np.zeros(starts.shape[0] - 1)
        left = {g: (int(starts[g + 1] - starts[g]),) * 2 for g in range(starts.shape[0] - 1)}
        for k, (g, lo, rows) in enumerate(blocks):
            h = int(hashes[k])
            draws_left, rows_left = left[g]
            if lo + rows == int(starts[g + 1]):
                c = draws_left
            else:
                u = ((h >> 11) + 0.5) / 2.0**53
                c = binomial_by_mode_order(u, draws_left, rows / rows_left)
            left[g] = (draws_left - c, rows_left - rows)
            picks = []
            for j in range(c):
                if rows == BLOCK_ROWS:
                    d = mix64_int((h + (j // 5) * golden) & mask)
                    picks.append((d >> (12 * (j % 5))) & (BLOCK_ROWS - 1))
                else:
                    d = mix64_int((h + (j // 2) * golden) & mask)
                    half = d >> 32 if j % 2 == 0 else d & 0xFFFFFFFF
                    picks.append((half * rows) >> 32)
            totals[g] += float(np.sum(values[lo + np.array(picks, dtype=np.int64)])) if c else 0.0
        for g in range(starts.shape[0] - 1):
            m = int(starts[g + 1] - starts[g])
            if m:
                out[g, b] = totals[g] / m
    return out


def quantization(values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """``(center, scale, q)``: the range onto ``[-2**P, 2**P]``, ``P = min(52, 56 - bit_length(n))``."""
    n = values.shape[0]
    lo, hi = float(values.min()), float(values.max())
    center = 0.5 * lo + 0.5 * hi
    half = 0.5 * hi - 0.5 * lo
    scale = half / 2.0 ** min(52, 56 - n.bit_length()) if half > 0 else 1.0
    q = np.rint((values - center) * (1.0 / scale)).astype(np.int64)
    return center, scale, q


def poisson_weights(key: np.uint64, n_resamples: int, rows: np.ndarray) -> np.ndarray:
    """``(B, len(rows))`` Poisson(1) weights: lane ``b % 4`` of ``random_u64(random_u64(key, b // 4), i)``."""
    table = poisson1_weight_table()
    out = np.empty((n_resamples, rows.shape[0]), dtype=np.int64)
    for b in range(n_resamples):
        kq = random_u64(key, np.array([b // 4]))[0]
        h = random_u64(kq, rows)
        lane = (h >> np.uint64(16 * (b % 4))) & np.uint64(0xFFFF)
        out[b] = table[lane.astype(np.int64)]
    return out


def column_masks(codes: list[np.ndarray], n_groups: list[int], n: int) -> list[np.ndarray]:
    """Boolean row mask of every column: the overall mean, then every group of every dimension."""
    masks = [np.ones(n, dtype=bool)]
    for c, g in zip(codes, n_groups, strict=True):
        masks.extend(c == k for k in range(g))
    return masks


def poisson_sums(
    q: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    key: np.uint64,
    n_resamples: int,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer ``sum(w q)`` and ``sum(w)`` per replicate and column."""
    n = q.shape[0]
    w = poisson_weights(key, n_resamples, np.arange(offset, offset + n, dtype=np.uint64))
    masks = column_masks(codes, n_groups, n)
    sums = np.stack([(w[:, m] * q[m]).sum(axis=1) for m in masks], axis=1)
    weights = np.stack([w[:, m].sum(axis=1) for m in masks], axis=1)
    return sums, weights


def poisson_thresholds(level: int) -> np.ndarray:
    """``floor(F(k) 2**64)`` of Poisson(2**level) from scipy's CDF (last entry saturated)."""
    lam = 2.0**level
    kmax = int(lam + 14.0 * math.sqrt(lam) + 30.0)
    cdf = stats.poisson.cdf(np.arange(kmax + 1), lam)
    thr = np.array([min(int(c * 2.0**64), 2**64 - 1) for c in cdf], dtype=np.uint64)
    thr[-1] = np.uint64(2**64 - 1)
    return thr


def blb_sums(
    q: np.ndarray,
    levels: np.ndarray,
    codes: list[np.ndarray],
    n_groups: list[int],
    key: np.uint64,
    n_subsets: int,
    per_subset: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BLB with Poisson counts, row by row: subset membership, counts and the subsets' weighted centres."""
    n = q.shape[0]
    rows = np.arange(n, dtype=np.uint64)
    masks = column_masks(codes, n_groups, n)
    thr = {lv: poisson_thresholds(lv) for lv in np.unique(levels)}
    sums, weights, csum, cweight = [], [], [], []
    for s in range(n_subsets):
        ks = random_u64(key, np.array([2 * s]))[0]
        h = random_u64(ks, rows)
        keep = np.array([lv == 0 or int(h[i]) >> (64 - int(lv)) == 0 for i, lv in enumerate(levels)])
        lam = np.where(keep, 2 ** levels.astype(np.int64), 0)
        csum.append([(lam[m] * q[m]).sum() for m in masks])
        cweight.append([lam[m].sum() for m in masks])
        kr = random_u64(key, np.array([2 * s + 1]))[0]
        for k in range(per_subset):
            kk = random_u64(kr, np.array([k]))[0]
            r = random_u64(kk, rows)
            c = np.zeros(n, dtype=np.int64)
            for i in np.flatnonzero(keep):
                c[i] = min(
                    int(np.searchsorted(thr[levels[i]], r[i], side="right")), thr[levels[i]].shape[0] - 1
                )
            sums.append([(c[m] * q[m]).sum() for m in masks])
            weights.append([c[m].sum() for m in masks])
    return (np.array(sums), np.array(weights), np.array(csum), np.array(cweight))


def jackknife_acceleration(x: np.ndarray) -> float:
    """BCa acceleration from explicit leave-one-out means (O(n**2) on purpose)."""
    n = x.shape[0]
    loo = np.array([np.delete(x, i).mean() for i in range(n)])
    d = loo.mean() - loo
    den = 6.0 * (d**2).sum() ** 1.5
    return float((d**3).sum() / den) if den > 0 else 0.0


def interval(reps: np.ndarray, estimate: float, x: np.ndarray, method: str, confidence_level: float):
    """Percentile, basic or BCa interval of one replicate vector (numpy's linear quantile rule)."""
    alpha = (1.0 - confidence_level) / 2.0
    if method == "percentile":
        return float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha))
    if method == "basic":
        return 2 * estimate - float(np.quantile(reps, 1 - alpha)), 2 * estimate - float(
            np.quantile(reps, alpha)
        )
    b = reps.shape[0]
    tie = 1e-12 * (abs(estimate) + (x.max() - x.min()))  # replicates within rounding of the estimate are ties
    p = (np.sum(reps < estimate - tie) + 0.5 * np.sum(np.abs(reps - estimate) <= tie)) / b
    z0 = ndtri(min(max(p, 0.5 / b), 1 - 0.5 / b))
    a = jackknife_acceleration(x)
    za, zb = ndtri(alpha), ndtri(1 - alpha)
    a1 = ndtr(z0 + (z0 + za) / (1 - a * (z0 + za)))
    a2 = ndtr(z0 + (z0 + zb) / (1 - a * (z0 + zb)))
    return float(np.quantile(reps, a1)), float(np.quantile(reps, a2))
