"""Kernels for twin generation: correlated latent normals and a batched tree-ensemble predictor.

Both are pure functions of arrays and scalars. Latent normals come from the counter RNG, so row ``i`` of a
generated population is the same whatever the chunking or thread count (and ``generate(n)`` is a prefix of
``generate(m)`` for ``m > n``).

The tree predictor walks every tree for a small group of rows before moving to the next group, the rows of
a group side by side. scikit-learn's ``HistGradientBoostingRegressor.predict`` walks one tree over all rows
at a time, which streams the whole feature matrix through memory once per tree; row-major traversal keeps
the rows and the (small) node arrays in cache. Leaf values are added in the same order as scikit-learn
(baseline, then tree 0, 1, ...), so the result is bit-identical to ``predict``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._rng import key_for, standard_normal, uniform

__all__ = ["correlated_normals", "counter_uniforms", "tree_ensemble_predict"]

# Rows that walk a tree side by side in the tree predictor (independent load chains to overlap).
_LANES = 8


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
        base = (row_start + i) * d
        e = np.empty(d)
        for j in range(d):
            e[j] = standard_normal(key, base + j)
        for r in range(d):
            acc = 0.0
            for c in range(r + 1):
                acc += chol[r, c] * e[c]
            out[i, r] = acc


@njit(parallel=True, cache=True)
def counter_uniforms(seed, stream, row_start, stride, offset, out):
    """Fill ``out[i, c]`` with uniform draw ``(row_start + i) * stride + offset + c`` of a stream.

    ``stride`` must be at least ``offset + out.shape[1]`` so rows never share draws.
    """
    key = key_for(seed, stream)
    n, k = out.shape
    for i in prange(n):
        base = (row_start + i) * stride + offset
        for c in range(k):
            out[i, c] = uniform(key, base + c)


@njit(inline="always", cache=True)
def _tree_step(X, row, node, feature, threshold, missing_left, children):
    """The child of a split node that row ``row`` goes to (NaN goes the way ``missing_left`` says)."""
    x = X[row, feature[node]]
    go_right = (x > threshold[node]) | ((x != x) & (missing_left[node] == 0))
    return children[2 * node + np.int64(go_right)]


@njit(parallel=True, cache=True)
def tree_ensemble_predict(
    X, baseline, roots, is_leaf, feature, threshold, missing_left, children, value, out
):
    """Sum of leaf values over all trees, per row: ``out[i] = baseline + sum_t leaf_t(X[i])``.

    Parameters
    ----------
    X : (n, p) float64
        Feature matrix (C order); NaN goes the way ``missing_left`` says.
    baseline : float
        Added first (scikit-learn's ``_baseline_prediction``).
    roots : (n_trees,) int64
        Each tree's root node in the concatenated node arrays.
    is_leaf, feature, threshold, missing_left, value : node arrays
    children : (2 * n_nodes,) int64
        Global index of node ``k``'s left child at ``2k`` and its right child at ``2k + 1``.
    out : (n,) float64
        Written in place.

    Rows go in groups of ``_LANES`` that walk each tree side by side: the walks are independent chains of
    dependent loads, so the processor overlaps them instead of waiting on one row's next node.
    """
    n = X.shape[0]
    n_trees = roots.shape[0]
    for g in prange((n + _LANES - 1) // _LANES):
        lo = g * _LANES
        width = min(_LANES, n - lo)
        acc = np.empty(_LANES)
        nodes = np.empty(_LANES, dtype=np.int64)
        for r in range(width):
            acc[r] = 0.0
            acc[r] += baseline
        for t in range(n_trees):
            for r in range(width):
                nodes[r] = roots[t]
            active = True
            while active:
                active = False
                for r in range(width):
                    node = nodes[r]
                    if not is_leaf[node]:
                        nodes[r] = _tree_step(X, lo + r, node, feature, threshold, missing_left, children)
                        active = True
            for r in range(width):
                acc[r] += value[nodes[r]]
        for r in range(width):
            out[lo + r] = acc[r]
