"""Deterministic moments: overall and per segment, reduced over fixed-size chunks in a fixed order.

A ``prange`` float reduction is not bit-identical across thread counts, so every kernel here writes
per-chunk partial sums into its own slot (chunks depend only on ``chunk``, never on the thread count) and
combines the slots sequentially afterwards. Sums are taken about a shift (the overall mean) so the
variance does not lose precision to cancellation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def chunk_sums(x, index, use_index, shift, chunk):
    """Per-chunk ``sum(v - shift)`` and ``sum((v - shift)**2)`` of ``x[index]`` (or all of ``x``).

    Returns a ``(n_chunks, 2)`` array.
    """
    n = index.shape[0] if use_index else x.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    out = np.zeros((n_chunks, 2), dtype=np.float64)
    for c in prange(n_chunks):
        s1 = 0.0
        s2 = 0.0
        for j in range(c * chunk, min(n, (c + 1) * chunk)):
            v = x[index[j]] if use_index else x[j]
            d = v - shift
            s1 += d
            s2 += d * d
        out[c, 0] = s1
        out[c, 1] = s2
    return out


@njit(cache=True)
def combine_sums(partials):
    """Add the chunk rows in order: ``(s1, s2)``."""
    s1 = 0.0
    s2 = 0.0
    for c in range(partials.shape[0]):
        s1 += partials[c, 0]
        s2 += partials[c, 1]
    return s1, s2


@njit(cache=True)
def combine_columns(partials):
    """Combine per-chunk rows in order: columns 0..3 are added, column 4 is a minimum, column 5 a maximum."""
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


def moments(x, index=None, chunk=8192):
    """``(n, mean, variance)`` of ``x`` (or ``x[index]``), bit-identical for any thread count.

    ``variance`` uses ``n - 1`` in the denominator (0.0 when ``n < 2``).
    """
    use_index = index is not None
    idx = index if use_index else _EMPTY_INDEX
    n = idx.shape[0] if use_index else x.shape[0]
    if n == 0:
        return 0, 0.0, 0.0
    s1, _ = combine_sums(chunk_sums(x, idx, use_index, 0.0, chunk))
    mean0 = s1 / n
    d1, d2 = combine_sums(chunk_sums(x, idx, use_index, mean0, chunk))
    mean = mean0 + d1 / n
    var = max(d2 - d1 * d1 / n, 0.0) / (n - 1) if n > 1 else 0.0
    return n, mean, var


_EMPTY_INDEX = np.empty(0, dtype=np.int64)


@njit(parallel=True, cache=True)
def grouped_chunk_sums(x, codes, offsets, total_groups, index, use_index, shift, chunk):
    """Per-chunk counts and shifted sums for several segment columns in one pass.

    ``codes`` is a tuple of same-dtype integer arrays, one per dimension, indexed like ``x`` through
    ``index``; dimension ``k`` owns groups ``offsets[k] .. offsets[k+1]-1`` of the output. ``x`` is the
    per-selected-twin value (length = number selected), while ``codes`` are per population row.

    Returns ``(n_chunks, total_groups, 3)``: count, ``sum(v - shift)``, ``sum((v - shift)**2)``.
    """
    n = x.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    out = np.zeros((n_chunks, total_groups, 3), dtype=np.float64)
    n_dims = len(codes)
    for c in prange(n_chunks):
        for j in range(c * chunk, min(n, (c + 1) * chunk)):
            row = index[j] if use_index else j
            d = x[j] - shift
            dd = d * d
            for k in range(n_dims):
                g = offsets[k] + np.int64(codes[k][row])
                out[c, g, 0] += 1.0
                out[c, g, 1] += d
                out[c, g, 2] += dd
    return out


@njit(cache=True)
def combine_grouped(partials, shift):
    """Combine chunk slots in order into per-group ``(n, mean, variance)`` arrays (variance with n - 1)."""
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


def grouped_moments(x, codes, n_groups, index=None, shift=0.0, chunk=8192):
    """Per-segment ``(n, mean, variance)`` for several segment dimensions in one pass over ``x``.

    Parameters
    ----------
    x
        float64 values, one per selected twin.
    codes
        Tuple of same-dtype integer code arrays (one per dimension), one entry per population row.
    n_groups
        Number of groups in each dimension.
    index
        Population rows of the selected twins (``None``: the selection is every row in order).

    Returns
    -------
    list of ``(n, mean, var)`` array triples, one per dimension.
    """
    offsets = np.zeros(len(n_groups) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.asarray(n_groups, dtype=np.int64))
    use_index = index is not None
    idx = index if use_index else _EMPTY_INDEX
    partials = grouped_chunk_sums(x, tuple(codes), offsets, int(offsets[-1]), idx, use_index, shift, chunk)
    n, mean, var = combine_grouped(partials, shift)
    return [
        (n[offsets[k] : offsets[k + 1]], mean[offsets[k] : offsets[k + 1]], var[offsets[k] : offsets[k + 1]])
        for k in range(len(n_groups))
    ]
