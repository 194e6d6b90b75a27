"""Kernels for twin generation: correlated latent normals and a batched tree-ensemble predictor.

Both are pure functions of arrays and scalars. Latent normals come from the counter RNG, so row ``i`` of a
generated population is the same whatever the chunking or thread count (and ``generate(n)`` is a prefix of
``generate(m)`` for ``m > n``).

The tree predictor walks every tree for one row before moving to the next row. scikit-learn's
``HistGradientBoostingRegressor.predict`` walks one tree over all rows at a time, which streams the whole
feature matrix through memory once per tree; row-major traversal keeps a row and the (small) node arrays in
cache. Leaf values are added in the same order as scikit-learn (baseline, then tree 0, 1, ...), so the
result is bit-identical to ``predict``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import key_for, standard_normal, uniform

__all__ = ["correlated_normals", "counter_uniforms", "tree_ensemble_predict"]


@njit(inline="always", cache=True)
def correlated_row(key, base, chol, out, i, d):
    """Write ``out[i, :d] = chol @ e`` where ``e[j]`` is draw ``base + j`` of the stream ``key``.

    The one body of every latent-normal kernel (contiguous rows here, explicit rows and mixture components
    in :mod:`twinkernel.kernels.synthesis`): they differ only in ``base`` and ``chol``, so a twin gets the
    same bits from each. ``d`` is passed in (reading ``out.shape[1]`` here measured ~5 % slower).
    """
    e = np.empty(d)
    for j in range(d):
        e[j] = standard_normal(key, base + j)
    for r in range(d):
        acc = 0.0
        for c in range(r + 1):
            acc += chol[r, c] * e[c]
        out[i, r] = acc


@njit(inline="always", cache=True)
def uniform_row(key, base, out, i, k):
    """Write ``out[i, c]`` = uniform draw ``base + c`` of the stream ``key`` for ``c < k`` (every
    uniform-row kernel's body)."""
    for c in range(k):
        out[i, c] = uniform(key, base + c)


@njit(parallel=True, cache=True)
def correlated_normals(seed, stream, row_start, chol, out):
    """Fill ``out[i] = chol @ e`` where ``e[j]`` is draw ``(row_start + i) * d + j`` of a stream.

    Parameters
    ----------
    seed, stream : int
        Counter-RNG seed and stream id.
    row_start : int
        Global index of ``out``'s first row.
    chol : (d, d) float64
        Lower-triangular factor of the latent correlation matrix.
    out : (n, d) float64
        Written in place.
    """
    key = key_for(seed, stream)
    n, d = out.shape
    for i in prange(n):
        correlated_row(key, (row_start + i) * d, chol, out, i, d)


@njit(parallel=True, cache=True)
def counter_uniforms(seed, stream, row_start, stride, offset, out):
    """Fill ``out[i, c]`` with uniform draw ``(row_start + i) * stride + offset + c`` of a stream.

    ``stride`` must be at least ``offset + out.shape[1]`` so rows never share draws.
    """
    key = key_for(seed, stream)
    n, k = out.shape
    for i in prange(n):
        uniform_row(key, (row_start + i) * stride + offset, out, i, k)


@njit(parallel=True, cache=True)
def tree_ensemble_predict(
    X, baseline, roots, feature, threshold, missing_left, left, right, is_leaf, value, out
):
    """Sum of leaf values over all trees, per row: ``out[i] = baseline + sum_t leaf_t(X[i])``.

    Parameters
    ----------
    X : (n, p) float64
        Feature matrix (C order); NaN goes the way ``missing_left`` says.
    baseline : float
        Added first (scikit-learn's ``_baseline_prediction``).
    roots : (n_trees,) int64
        Offset of each tree's root node in the concatenated node arrays.
    feature, threshold, missing_left, left, right, is_leaf, value : node arrays
        Child indices are global (already offset by the tree's root).
    out : (n,) float64
        Written in place.
    """
    n = X.shape[0]
    n_trees = roots.shape[0]
    for i in prange(n):
        acc = 0.0
        acc += baseline
        for t in range(n_trees):
            node = roots[t]
            while not is_leaf[node]:
                x = X[i, feature[node]]
                if np.isnan(x):
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            acc += value[node]
        out[i] = acc
