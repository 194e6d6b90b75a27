"""Plain loop references for the final-stage kernels of effect learning (twinkernel/kernels/learning.py)."""

from __future__ import annotations

import numpy as np


def weighted_moments(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X'WX and X'Wy, one row at a time."""
    n, k = x.shape
    xx = np.zeros((k, k))
    xy = np.zeros(k)
    for i in range(n):
        for a in range(k):
            xy[a] += w[i] * x[i, a] * y[i]
            for c in range(k):
                xx[a, c] += w[i] * x[i, a] * x[i, c]
    return xx, xy


def cluster_meat(x: np.ndarray, r: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Σ_g s_g s_gᵀ with s_g = Σ_{i in g} x_i r_i, clusters visited in sorted order."""
    k = x.shape[1]
    meat = np.zeros((k, k))
    for g in np.unique(clusters):
        s = np.zeros(k)
        for i in np.flatnonzero(clusters == g):
            s += x[i] * r[i]
        meat += np.outer(s, s)
    return meat


def sandwich_covariance(x: np.ndarray, r: np.ndarray, clusters: np.ndarray | None) -> np.ndarray:
    """(X'X)⁻¹ meat (X'X)⁻¹ with the HC1 / cluster small-sample factor."""
    n, k = x.shape
    bread = np.linalg.inv(x.T @ x)
    if clusters is None:
        meat = (x * r[:, None] ** 2).T @ x
        factor = n / (n - k)
    else:
        meat = cluster_meat(x, r, clusters)
        g = np.unique(clusters).size
        factor = g / (g - 1) * (n - 1) / (n - k)
    return factor * bread @ meat @ bread
