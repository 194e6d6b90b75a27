"""Kernels of the mixture synthesis: latent normals and uniforms for explicit (non-contiguous) twin rows.

A twin's draws depend only on ``(seed, stream, row)``: the same values as the contiguous kernels of
:mod:`twinkernel.kernels.copula` give for that row, so rows split among mixture components draw exactly what
they would draw in one block, whatever the chunking or thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import key_for, standard_normal, uniform

__all__ = ["correlated_normals_rows", "counter_uniforms_rows", "mixture_normals"]


@njit(parallel=True, cache=True)
def correlated_normals_rows(seed, stream, rows, chol, out):
    """Fill ``out[i] = chol @ e`` where ``e[j]`` is draw ``rows[i] * d + j`` of a stream.

    Parameters
    ----------
    seed, stream : int
        Counter-RNG seed and stream id.
    rows : (n,) int64
        Global row index of each output row.
    chol : (d, d) float64
        Lower-triangular factor.
    out : (n, d) float64
        Written in place.
    """
    key = key_for(seed, stream)
    n, d = out.shape
    for i in prange(n):
        base = rows[i] * d
        e = np.empty(d)
        for j in range(d):
            e[j] = standard_normal(key, base + j)
        for r in range(d):
            acc = 0.0
            for c in range(r + 1):
                acc += chol[r, c] * e[c]
            out[i, r] = acc


@njit(parallel=True, cache=True)
def counter_uniforms_rows(seed, stream, rows, stride, offset, out):
    """Fill ``out[i, c]`` with uniform draw ``rows[i] * stride + offset + c`` of a stream."""
    key = key_for(seed, stream)
    n, k = out.shape
    for i in prange(n):
        base = rows[i] * stride + offset
        for c in range(k):
            out[i, c] = uniform(key, base + c)


@njit(parallel=True, cache=True)
def mixture_normals(seed, stream, row_start, component, chols, out):
    """Fill ``out[i] = chols[component[i]] @ e`` where ``e[j]`` is draw ``(row_start + i) * d + j``.

    One call for a whole chunk of a mixture: row ``i`` draws what :func:`correlated_normals_rows` gives it
    with its own component's factor.
    """
    key = key_for(seed, stream)
    n, d = out.shape
    for i in prange(n):
        base = (row_start + i) * d
        chol = chols[component[i]]
        e = np.empty(d)
        for j in range(d):
            e[j] = standard_normal(key, base + j)
        for r in range(d):
            acc = 0.0
            for c in range(r + 1):
                acc += chol[r, c] * e[c]
            out[i, r] = acc
