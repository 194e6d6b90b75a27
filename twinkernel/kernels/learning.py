"""Final-stage moments of double machine learning: weighted Gram matrices and cluster score sums.

The final stage of :mod:`twinkernel.effect_learning` regresses outcome residuals on treatment residuals
times the effect model's derivatives (a design ``X`` of n rows and k columns). Each Gauss-Newton step needs
X'WX and X'Wy; the sandwich standard errors need the "meat" Σ_g s_g s_gᵀ over clusters g (rows, or the
rows of one entity) of the score sums s_g = Σ_{i∈g} x_i r_i.

Sums are written into fixed blocks of ``MOMENT_BLOCK`` consecutive rows, whatever the thread count; the
caller combines the blocks in order, so results are bit-identical on any number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MOMENT_BLOCK = 16384
"""Rows per reduction block. Part of the kernels' definition (changing it changes the last bits of the
moments), hence a constant rather than a configuration value."""


@njit(parallel=True, cache=True)
def blocked_moments(x, w, y, block):
    """Per block b of ``block`` rows: ``xx[b] = Σ w_i x_i x_iᵀ`` and ``xy[b] = Σ w_i x_i y_i``.

    ``x`` is a C-contiguous (n, k) float64 array, ``w`` and ``y`` float64 of length n. Returns
    ``(xx, xy)`` of shapes (n_blocks, k, k) and (n_blocks, k); only the lower triangle of each ``xx[b]`` is
    filled (the caller mirrors it).
    """
    n, k = x.shape
    n_blocks = (n + block - 1) // block
    xx = np.zeros((max(n_blocks, 1), k, k))
    xy = np.zeros((max(n_blocks, 1), k))
    for b in prange(n_blocks):
        lo = b * block
        hi = min(n, lo + block)
        for i in range(lo, hi):
            wi = w[i]
            if wi == 0.0:
                continue
            for a in range(k):
                xa = x[i, a] * wi
                xy[b, a] += xa * y[i]
                for c in range(a + 1):
                    xx[b, a, c] += xa * x[i, c]
    return xx, xy


@njit(parallel=True, cache=True)
def cluster_scores(x, r, order, starts):
    """Score sums per cluster: ``s[g] = Σ_{i in order[starts[g]:starts[g+1]]} x_i r_i``.

    ``order`` lists the rows grouped by cluster and ``starts`` (length G + 1) the boundaries, so every
    cluster is summed by one thread in row order.
    """
    k = x.shape[1]
    g_count = starts.shape[0] - 1
    s = np.zeros((g_count, k))
    for g in prange(g_count):
        for j in range(starts[g], starts[g + 1]):
            i = order[j]
            ri = r[i]
            for a in range(k):
                s[g, a] += x[i, a] * ri
    return s
