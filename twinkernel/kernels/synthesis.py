"""Kernels of the mixture synthesis: latent normals and uniforms for explicit (non-contiguous) twin rows.

A twin's draws depend only on ``(seed, stream, row)``: the same values as the contiguous kernels of
:mod:`twinkernel.kernels.copula` give for that row, so rows split among mixture components draw exactly what
they would draw in one block, whatever the chunking or thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import key_for
from .copula import correlated_row, uniform_row

__all__ = [
    "correlated_normals_rows",
    "counter_uniforms_rows",
    "mixture_columns",
    "mixture_normals_rows",
]


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
        correlated_row(key, rows[i] * d, chol, out, i, d)


@njit(parallel=True, cache=True)
def counter_uniforms_rows(seed, stream, rows, stride, offset, out):
    """Fill ``out[i, c]`` with uniform draw ``rows[i] * stride + offset + c`` of a stream."""
    key = key_for(seed, stream)
    n, k = out.shape
    for i in prange(n):
        uniform_row(key, rows[i] * stride + offset, out, i, k)


@njit(parallel=True, cache=True)
def mixture_normals_rows(seed, stream, rows, component, chols, out):
    """Fill ``out[i] = chols[component[i]] @ e`` where ``e[j]`` is draw ``rows[i] * d + j``: each twin's
    :func:`correlated_normals_rows` draw with its own component's factor (for explicit twin rows, e.g.
    twins sorted by component; pass ``row_start + np.arange(n)`` for a contiguous block)."""
    key = key_for(seed, stream)
    n, d = out.shape
    for i in prange(n):
        correlated_row(key, rows[i] * d, chols[component[i]], out, i, d)


@njit(parallel=True, cache=True)
def mixture_columns(
    z,
    u,
    component,
    discrete,
    integer,
    knots,
    knot_start,
    knot_count,
    table,
    table_start,
    codes,
    slot,
    dest,
    out_code,
    out_value,
):
    """Column outputs of a mixture chunk: each twin's latent row through its own component's marginals.

    Parameters
    ----------
    z : (n, d) float64
        Latent normals (used by discrete columns).
    u : (n_continuous, n) float64
        ``Phi(z)`` of the continuous columns, row ``slot[j]`` for column ``j``.
    component : (n,) int64
        Each twin's component.
    discrete, integer : (d,) uint8
        Column kinds: discrete (level codes) and integer-valued continuous (rounded half to even).
    knots, knot_start, knot_count : flat float64, (K, d) int64, (K, d) int64
        Component ``k``'s column ``j``: latent cut points of a discrete column (``knot_count`` = levels - 1),
        the probability grid of a continuous one.
    table, table_start : flat float64, (K, d) int64
        Encoded value of each local level (discrete) or the quantile at each grid point (continuous).
    codes : flat int64
        Global level code of each local level (at ``table_start``; discrete columns only).
    slot : (d,) int64
        Row of ``u`` that holds continuous column ``j``.
    dest : (n,) int64
        Output position of row ``i`` (rows sorted by component keep each component's grids in cache while
        they are read; ``dest`` puts them back in twin order).
    out_code : (d, n) int64
        Level codes (discrete columns; continuous rows are left untouched).
    out_value : (d, n) float64
        Encoded values (every column).

    Discrete codes follow ``np.searchsorted(cuts, z, side="left")``; continuous values follow
    ``np.interp(u, grid, quantiles)`` operation for operation (clamped at the ends, the exact knot value at
    a knot), so the result is bit-identical to the per-component NumPy path.
    """
    n, d = z.shape
    for i in prange(n):
        k = component[i]
        for j in range(d):
            s = knot_start[k, j]
            c = knot_count[k, j]
            t = table_start[k, j]
            if discrete[j]:
                x = z[i, j]
                lo = 0
                hi = c
                while lo < hi:  # first cut >= x: the number of cuts below x
                    mid = (lo + hi) >> 1
                    if knots[s + mid] < x:
                        lo = mid + 1
                    else:
                        hi = mid
                out_code[j, dest[i]] = codes[t + lo]
                out_value[j, dest[i]] = table[t + lo]
                continue
            x = u[slot[j], i]
            if np.isnan(x):
                v = x
            elif x < knots[s]:
                v = table[t]
            elif x >= knots[s + c - 1]:  # at or past the last knot (np.interp's right value)
                v = table[t + c - 1]
            else:
                # last knot <= x: start at the linear guess (the grids are near-uniform) and walk; the
                # comparisons alone decide, so any guess gives np.interp's index
                q = int((x - knots[s]) / (knots[s + c - 1] - knots[s]) * (c - 1))
                q = min(max(q, 0), c - 2)
                while knots[s + q] > x:
                    q -= 1
                while knots[s + q + 1] <= x:
                    q += 1
                x0 = knots[s + q]
                if x0 == x:
                    v = table[t + q]
                else:
                    slope = (table[t + q + 1] - table[t + q]) / (knots[s + q + 1] - x0)
                    v = slope * (x - x0) + table[t + q]
                    if np.isnan(v):
                        v = slope * (x - knots[s + q + 1]) + table[t + q + 1]
                        if np.isnan(v) and table[t + q] == table[t + q + 1]:
                            v = table[t + q]
            if integer[j]:
                v = np.rint(v)
            out_value[j, dest[i]] = v
