"""Deterministic reductions of per-slot partial sums (written by :func:`effects.simulate_pass`).

A ``prange`` float reduction is not bit-identical across thread counts, so the kernels write partial sums
into their own slots (one per block of ``effects.SUM_BLOCK`` selected twins: slots depend neither on the
thread count nor on the parallel chunk size) and the functions here combine the slots sequentially.
Sums are taken about a shift near the mean so the variance does not lose precision to cancellation.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def combine_columns(partials):
    """Combine per-slot rows in order: columns 0..3 are added, column 4 is a minimum, column 5 a maximum."""
    out = np.zeros(partials.shape[1], dtype=np.float64)
    out[4] = np.inf
    out[5] = -np.inf
    for c in range(partials.shape[0]):
        for k in range(4):
            out[k] += partials[c, k]
        out[4] = min(out[4], partials[c, 4])
        out[5] = max(out[5], partials[c, 5])
    return out


def shifted_variance(s1: float, s2: float, n: int) -> float:
    """Sample variance (n - 1) from the sums of shifted values and of their squares; 0.0 when n < 2."""
    if n < 2:
        return 0.0
    return max(float(s2) - float(s1) * float(s1) / n, 0.0) / (n - 1)


@njit(cache=True)
def combine_grouped(partials, shift):
    """Combine slots in order into per-group ``(n, mean, variance)`` arrays (variance with n - 1)."""
    g_total = partials.shape[1]
    n = np.zeros(g_total, dtype=np.int64)
    mean = np.zeros(g_total, dtype=np.float64)
    var = np.zeros(g_total, dtype=np.float64)
    for g in range(g_total):
        cnt = 0.0
        s1 = 0.0
        s2 = 0.0
        for c in range(partials.shape[0]):
            cnt += partials[c, g, 0]
            s1 += partials[c, g, 1]
            s2 += partials[c, g, 2]
        n[g] = np.int64(cnt)
        if cnt > 0:
            mean[g] = shift + s1 / cnt
        if cnt > 1:
            var[g] = max(s2 - s1 * s1 / cnt, 0.0) / (cnt - 1.0)
    return n, mean, var
